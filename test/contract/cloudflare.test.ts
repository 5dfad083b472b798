import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineContractSuite } from './suite.ts';
import { defineHistorySuite } from './history.ts';
import { defineHostileSuite } from './hostile.ts';
import { launchCloudflare } from './launchers.ts';
import { TestClient, type LaunchedServer } from './harness.ts';

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
  launch: launchCloudflare,
};

defineContractSuite(target);
defineHostileSuite(target);
defineHistorySuite(target);

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
