import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { iceServersFor, turnCredential, type TurnOptions } from '../../src/core/turn.ts';

const options: TurnOptions = {
  secret: 'north-wind',
  turnUrls: ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349'],
  stunUrls: ['stun:stun.example.com:3478'],
  ttlSeconds: 3600,
  staticServers: [{ urls: 'stun:static.example.com' }],
};

describe('TURN credentials (coturn REST API)', () => {
  it('signs the username with HMAC-SHA1 of the secret, in base64', async () => {
    const expected = createHmac('sha1', 'north-wind').update('1700003600:alice').digest('base64');
    expect(await turnCredential('north-wind', '1700003600:alice')).toBe(expected);
  });

  it('gives "<expiry>:<userId>" with expiry = now + TURN_TTL, and the static and STUN servers first', async () => {
    const reply = await iceServersFor(options, 'alice', 1_700_000_000_123);
    expect(reply.ttl).toBe(3600);
    expect(reply.iceServers.slice(0, 2)).toEqual([
      { urls: 'stun:static.example.com' },
      { urls: ['stun:stun.example.com:3478'] },
    ]);
    const turn = reply.iceServers[2]!;
    expect(turn.urls).toEqual(options.turnUrls);
    expect(turn.username).toBe('1700003600:alice');
    expect(turn.credential).toBe(
      createHmac('sha1', 'north-wind').update('1700003600:alice').digest('base64'),
    );
  });

  it('expires: a credential from an hour ago names an expiry in the past', async () => {
    const now = 1_700_000_000_000;
    const old = (await iceServersFor(options, 'alice', now - 3_601_000)).iceServers[2]!;
    expect(Number(old.username!.split(':')[0])).toBeLessThan(now / 1000);
  });

  it('hands out no TURN server (ttl 0) without a secret', async () => {
    const reply = await iceServersFor({ ...options, secret: undefined }, 'alice', 0);
    expect(reply).toEqual({
      iceServers: [{ urls: 'stun:static.example.com' }, { urls: ['stun:stun.example.com:3478'] }],
      ttl: 0,
    });
  });
});
