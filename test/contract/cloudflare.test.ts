import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineContractSuite } from './suite.ts';
import { defineHistorySuite } from './history.ts';
import { defineHostileSuite } from './hostile.ts';
import { launchCloudflare } from './launchers.ts';
import { gatewayOf } from '../../src/core/shard.ts';
import { TestClient, type LaunchedServer, uid } from './harness.ts';

const target = {
  name: 'Cloudflare (workerd)',
  // The platform pings, buffers and restarts: the Durable Object has no timers, no view of a
  // socket's outbound buffer, and no signals.
  capabilities: {
    serverHeartbeat: false,
    signalDrain: false,
    slowConsumerClose: false,
    closeHandshakeUnderFlood: true,
    processMemory: false,
    serverPing: false,
  },
  // Users spread over four gateways: most tests' users land on different ones. What is per
  // gateway (the per-IP cap) is tested with userIds of one gateway.
  launch: async (env: Record<string, string>): Promise<LaunchedServer> => {
    const shards = Number(env.GATEWAY_SHARDS ?? 4);
    const server = await launchCloudflare({ GATEWAY_SHARDS: String(shards), ...env });
    return {
      ...server,
      uid(label) {
        for (;;) {
          const id = uid(label);
          if (gatewayOf(id, shards) === 'gateway-0') return id;
        }
      },
    };
  },
};

defineContractSuite(target);
defineHostileSuite(target);
defineHistorySuite(target);

describe('Cloudflare: gateways', () => {
  let server: LaunchedServer;
  beforeAll(async () => {
    server = await target.launch({ ALLOWED_ORIGINS: '*' });
  });
  afterAll(() => server?.stop());

  it('spreads users over the gateways by userId, the same gateway every time, and they reach each other', async () => {
    const clients = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        TestClient.open(server.baseUrl, { userId: `gw-${i}`, room: 'gw' }),
      ),
    );
    const gatewayOf = (client: TestClient) => String(client.upgradeHeaders['x-aleatoria-gateway']);
    const gateways = new Set(clients.map(gatewayOf));
    // 12 userIds over 4 gateways: every gateway holds some (FNV-1a spreads these evenly).
    expect([...gateways].sort()).toStrictEqual([
      'gateway-0',
      'gateway-1',
      'gateway-2',
      'gateway-3',
    ]);
    const [a, b] = [clients[0]!, clients.find((c) => gatewayOf(c) !== gatewayOf(clients[0]!))!];
    // The same userId lands on the same gateway again (a takeover stays local).
    await a.close();
    const again = await TestClient.open(server.baseUrl, { userId: a.userId, room: 'gw' });
    expect(gatewayOf(again)).toBe(gatewayOf(a));
    // A DM, a relay and a room message across gateways.
    again.send({ type: 'chat_message', toUser: b.userId, payload: { content: 'across' } });
    expect(await b.next((m) => m.type === 'chat_message' && m.incoming === true)).toMatchObject({
      payload: { content: 'across' },
    });
    b.send({ type: 'webrtc_candidate', toUser: again.userId, payload: { candidate: 'c' } });
    expect((await again.nextOfType('webrtc_candidate')).fromUser).toBe(b.userId);
    again.send({ type: 'chat_message', room: 'gw', payload: { content: 'to all' } });
    for (const client of clients.slice(1))
      expect((await client.nextOfType('chat_message')).payload.content).toBe('to all');
    // A burst across gateways arrives whole and in order (one stub per gateway).
    for (let n = 0; n < 60; n++)
      again.send({ type: 'webrtc_candidate', toUser: b.userId, payload: { candidate: `${n}` } });
    const burst: string[] = [];
    while (burst.length < 60)
      burst.push(
        String(
          ((await b.nextOfType('webrtc_candidate')).payload as { candidate: string }).candidate,
        ),
      );
    expect(burst).toStrictEqual(Array.from({ length: 60 }, (_, n) => `${n}`));
    // A pair across gateways.
    b.send({ type: 'user_available_webrtc' });
    await b.roundTrip();
    again.send({ type: 'request_random_peer' });
    expect((await again.nextOfType('assign_role')).payload.peerId).toBe(b.userId);
    await b.nextOfType('assign_role');
    // The figures add every gateway up: one room (its members on four gateways), one pair.
    const stats = await (await fetch(`${server.baseUrl}/stats`)).json();
    expect(stats).toStrictEqual({ online: 12, available: 0, rooms: 1 });
    const metrics = await (await fetch(`${server.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/^aleatoria_connections 12$/m);
    expect(metrics).toMatch(/^aleatoria_rooms 1$/m);
    expect(metrics).toMatch(/^aleatoria_pairs 1$/m);
    expect(metrics).toMatch(/^aleatoria_matches_total 1$/m);
    await Promise.all([again, ...clients.slice(1)].map((client) => client.close()));
  }, 60_000);
});

describe('Cloudflare: hibernation', () => {
  let server: LaunchedServer;
  beforeAll(async () => {
    server = await target.launch({ LOG_LEVEL: 'info' });
  });
  afterAll(() => server?.stop());

  it('keeps rooms, the pool, pairs and DMs working for sockets connected before the object was evicted', async () => {
    const base = server.baseUrl;
    const open = (name: string) => TestClient.open(base, { userId: `hib-${name}`, room: 'before' });
    const [a, b, c, d] = [await open('a'), await open('b'), await open('c'), await open('d')];
    // Before: a and b in a call, c waiting in the pool, everyone in room "before", a also in "extra".
    a.send({ type: 'join_room', room: 'extra' });
    await a.nextOfType('room_joined');
    // d's rooms take more than the 2 KB an attachment holds: its state must go to storage and back.
    const longRooms = Array.from(
      { length: 30 },
      (_, i) => `${String(i).padStart(2, '0')}-${'é'.repeat(61)}`,
    );
    for (const room of longRooms) {
      d.send({ type: 'join_room', room });
      await d.nextOfType('room_joined');
    }
    b.send({ type: 'user_available_webrtc' });
    await b.roundTrip();
    a.send({ type: 'request_random_peer' });
    expect((await a.nextOfType('assign_role')).payload.peerId).toBe('hib-b');
    await b.nextOfType('assign_role');
    c.send({ type: 'user_available_webrtc' });
    await c.roundTrip();
    a.send({ type: 'chat_message', room: 'before', payload: { content: 'before sleeping' } });
    const said = await a.nextOfType('chat_message');
    for (const member of [b, c, d]) await member.nextOfType('chat_message');

    const restored = () => (server.output().match(/"event":"hub_restored"/g) ?? []).length;
    const restoredBefore = restored();
    // Silence: workerd evicts an idle hibernatable object after about 10 s; the next frame wakes it.
    await new Promise((r) => setTimeout(r, 13_000));
    d.send({ type: 'get_rooms' });
    await d.nextOfType('rooms_list');
    for (let i = 0; restored() === restoredBefore && i < 100; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(restored()).toBe(restoredBefore + 1);

    // Rooms survived.
    a.send({ type: 'get_rooms' });
    expect((await a.nextOfType('rooms_list')).payload.rooms).toEqual(['before', 'extra']);
    d.send({ type: 'get_rooms' });
    expect((await d.nextOfType('rooms_list')).payload.rooms).toEqual(['before', ...longRooms]);
    // History: kept in the object's storage, it outlived the instance.
    b.send({ type: 'get_recent_messages', room: 'before' });
    expect((await b.nextOfType('recent_messages')).payload.messages).toStrictEqual([said]);
    a.send({ type: 'chat_message', room: 'before', payload: { content: 'still here?' } });
    for (const member of [a, b, c, d]) {
      const message = await member.nextOfType('chat_message');
      expect(message.payload.content).toBe('still here?');
      expect(message.id! > said.id!).toBe(true);
    }
    // DMs.
    d.send({ type: 'chat_message', toUser: 'hib-c', payload: { content: 'dm' } });
    expect((await c.nextOfType('chat_message')).incoming).toBe(true);
    // The pool: c is still available, a and b (matched) are not.
    d.send({ type: 'request_random_peer' });
    expect((await d.nextOfType('assign_role')).payload.peerId).toBe('hib-c');
    // The pair: b leaving still ends a's call.
    b.ws.terminate();
    expect(await a.nextOfType('hangup', 5000)).toMatchObject({
      fromUser: 'hib-b',
      payload: { reason: 'peer_disconnected' },
    });
    await Promise.all([a.close(), c.close(), d.close()]);
  }, 60_000);
});

describe('Cloudflare: history across a restart of wrangler dev', () => {
  it('keeps room and direct history in the state directory', async () => {
    const state = mkdtempSync(join(tmpdir(), 'aleatoria-history-'));
    const env = { WRANGLER_PERSIST_TO: state, RATE_LIMIT_PER_SECOND: '1000' };
    try {
      let server = await target.launch(env);
      const a = await TestClient.open(server.baseUrl, { userId: 'keep-a', room: 'kept' });
      const b = await TestClient.open(server.baseUrl, { userId: 'keep-b', room: 'kept' });
      a.send({ type: 'chat_message', room: 'kept', payload: { content: 'in the room' } });
      const inRoom = await b.nextOfType('chat_message');
      a.send({ type: 'chat_message', toUser: 'keep-b', payload: { content: 'just us' } });
      const direct = await b.next((m) => m.type === 'chat_message' && m.incoming === true);
      await server.stop();

      server = await target.launch(env);
      try {
        const back = await TestClient.open(server.baseUrl, { userId: 'keep-b', room: 'kept' });
        back.send({ type: 'get_recent_messages', room: 'kept' });
        expect((await back.nextOfType('recent_messages')).payload.messages).toStrictEqual([inRoom]);
        back.send({ type: 'get_direct_messages', payload: { withUser: 'keep-a' } });
        expect((await back.nextOfType('direct_messages')).payload.messages).toStrictEqual([direct]);
        await back.close();
      } finally {
        await server.stop();
      }
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  }, 240_000);
});
