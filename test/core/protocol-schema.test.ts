/**
 * GET /protocol.json: the JSON Schema generated from the valibot schemas is current, accepts what
 * the server accepts and refuses what it refuses, and describes every message the hub really sends.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { protocolSchema } from '../../scripts/protocol-schema.ts';
import { PROTOCOL_JSON } from '../../src/web/assets.generated.ts';
import { createHub } from '../../src/core/hub.ts';

const schema = protocolSchema() as { definitions: Record<string, object> };
const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addSchema(schema, 'protocol');
const validClient = ajv.getSchema('protocol#/definitions/ClientMessage')!;
const validServer = ajv.getSchema('protocol#/definitions/ServerMessage')!;

describe('protocol JSON Schema', () => {
  it('is what the server serves (the build is current)', () => {
    expect(JSON.parse(PROTOCOL_JSON)).toEqual(schema);
  });

  it.each([
    { type: 'chat_message', room: 'Lobby', payload: { content: 'hi' } },
    {
      type: 'chat_message',
      toUser: 'bob',
      payload: { content: '😀'.repeat(4096) },
      messageId: 'm1',
    },
    { type: 'join_room', room: 'r' },
    { type: 'leave_room', room: 'r' },
    { type: 'get_rooms' },
    { type: 'user_available_webrtc' },
    { type: 'user_unavailable_webrtc' },
    { type: 'request_random_peer', payload: { currentPeerId: 'bob' } },
    { type: 'webrtc_offer', toUser: 'bob', payload: { type: 'offer', sdp: 'v=0' } },
    { type: 'webrtc_answer', toUser: 'bob', payload: { type: 'answer', sdp: 'v=0' } },
    {
      type: 'webrtc_candidate',
      toUser: 'bob',
      payload: { candidate: { candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0 } },
    },
    { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: null } },
    { type: 'hangup', toUser: 'bob' },
    { type: 'get_ice_servers' },
  ])('accepts a valid $type', (message) => {
    expect(validClient(message), JSON.stringify(validClient.errors)).toBe(true);
  });

  it.each([
    ['an unknown type', { type: 'launch_missiles' }],
    [
      'chat content over 4096 characters',
      { type: 'chat_message', room: 'Lobby', payload: { content: 'x'.repeat(4097) } },
    ],
    ['a room with a control character', { type: 'join_room', room: 'a\u0007b' }],
    ['a room of 65 characters', { type: 'join_room', room: 'r'.repeat(65) }],
    ['an offer without toUser', { type: 'webrtc_offer', payload: { type: 'offer', sdp: 'v=0' } }],
    [
      'an sdpMLineIndex below 0',
      { type: 'webrtc_candidate', toUser: 'b', payload: { candidate: null, sdpMLineIndex: -1 } },
    ],
  ])('refuses %s', (_label, message) => {
    expect(validClient(message)).toBe(false);
  });

  it('describes every message the hub sends in a session that exercises them all', async () => {
    const sent: unknown[] = [];
    let t = Date.UTC(2026, 0, 1);
    const hub = createHub(
      {
        now: () => t++,
        random: () => 0,
        send: (_conn, text) => sent.push(JSON.parse(text)),
        close: () => {},
      },
      {
        maxRoomsPerConnection: 2,
        rateLimit: { perSecond: 1000, burst: 1000 },
        rateLimitCloseAfterMs: 0,
        turn: {
          secret: 's3cret',
          turnUrls: ['turn:turn.example:3478'],
          stunUrls: ['stun:stun.example:3478'],
          ttlSeconds: 600,
          staticServers: [],
        },
      },
    );
    hub.open('a', { userId: 'alice' });
    hub.open('b', { userId: 'bob', token: 't' });
    const say = (conn: string, message: unknown) => hub.message(conn, JSON.stringify(message));
    say('a', { type: 'chat_message', room: 'Lobby', payload: { content: 'hi' } });
    say('a', { type: 'chat_message', toUser: 'bob', payload: { content: 'dm' } });
    say('a', { type: 'join_room', room: 'x' });
    say('a', { type: 'join_room', room: 'y' });
    say('a', { type: 'leave_room', room: 'x' });
    say('a', { type: 'get_rooms' });
    say('a', { type: 'request_random_peer' });
    say('b', { type: 'user_available_webrtc' });
    say('a', { type: 'request_random_peer' });
    say('a', { type: 'webrtc_offer', toUser: 'bob', payload: { type: 'offer', sdp: 'v=0' } });
    say('b', { type: 'webrtc_answer', toUser: 'alice', payload: { type: 'answer', sdp: 'v=0' } });
    say('a', { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: null } });
    say('a', { type: 'hangup', toUser: 'bob' });
    say('a', { type: 'nope' });
    hub.message('a', '{');
    hub.binary('a');
    hub.open('b2', { userId: 'bob', token: 't' });
    hub.open('c', { userId: 'alice' });
    say('a', { type: 'get_ice_servers' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const types = new Set(sent.map((message) => (message as { type: string }).type));
    expect([...types].sort()).toEqual(
      [
        'assign_role',
        'chat_message',
        'error',
        'error_response',
        'hangup',
        'ice_servers',
        'no_peer_available',
        'room_joined',
        'room_left',
        'rooms_list',
        'webrtc_answer',
        'webrtc_candidate',
        'webrtc_offer',
      ].sort(),
    );
    for (const message of sent)
      expect(validServer(message), JSON.stringify([message, validServer.errors])).toBe(true);
  });
});
