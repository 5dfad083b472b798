/**
 * Faults in a cluster of one Node and one Deno node over a real `redis-server`, each bounded and
 * on loopback: a node SIGKILLed with its users in rooms and calls, Redis paused (SIGSTOP) for
 * 5 s, Redis SIGKILLed mid-traffic and restarted empty. What is asserted is what users see:
 * partners hung up in time, typed errors during the outage, nobody paired twice, service back
 * afterwards, and no process down.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LaunchedCluster, launchCluster } from '../contract/cluster-launcher.ts';
import { type Received, TestClient, uid } from '../contract/harness.ts';
import { launchNode } from '../contract/launchers.ts';
import { startRedis } from './redis-server.ts';

const HEARTBEAT_MS = 200;
const DEAD_AFTER_MS = 1500;
const ENV = {
  ALLOWED_ORIGINS: '*',
  NODE_HEARTBEAT_MS: String(HEARTBEAT_MS),
  NODE_DEAD_AFTER_MS: String(DEAD_AFTER_MS),
  PRESENCE_ROOM_LIMIT: '10',
  MATCHES_PER_MINUTE: '100000',
  TAKEOVER_PROBE_MS: '1000',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let cluster: LaunchedCluster;
const open: TestClient[] = [];

/** A client of node `node` (0: Node, 1: Deno), closed after the test. */
async function connect(node: number, options: { userId?: string; room?: string } = {}) {
  const client = await TestClient.open(cluster.nodes[node]!.baseUrl, options);
  open.push(client);
  return client;
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

async function healthy(node: number) {
  const res = await fetch(`${cluster.nodes[node]!.baseUrl}/health`);
  return res.status === 200;
}

/** A gauge of node `node`'s `/metrics`. */
async function gauge(node: number, name: string): Promise<number> {
  const text = await (await fetch(`${cluster.nodes[node]!.baseUrl}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
}

/** Matches `requester` with `partner`, the only available user. */
async function pair(requester: TestClient, partner: TestClient) {
  partner.send({ type: 'user_available_webrtc' });
  await partner.roundTrip();
  requester.send({ type: 'request_random_peer' });
  expect((await requester.nextOfType('assign_role')).payload).toMatchObject({
    role: 'impolite',
    peerId: partner.userId,
  });
  expect((await partner.nextOfType('assign_role')).payload).toMatchObject({
    role: 'polite',
    peerId: requester.userId,
  });
}

/** Sends a DM and returns what the sender heard first: its copy or an error (its code). */
async function dm(
  from: TestClient,
  to: string,
  content: string,
): Promise<{ type: Received['type']; payload: { code?: string } }> {
  from.send({ type: 'chat_message', toUser: to, payload: { content } });
  const reply = await from.next(
    (m) =>
      (m.type === 'chat_message' && m.fromUser === from.userId) ||
      (m.type === 'error' && m.payload.code !== 'rate_limited'),
    4000,
  );
  return reply as { type: Received['type']; payload: { code?: string } };
}

describe('a node killed with its users in rooms and calls', () => {
  beforeAll(async () => {
    cluster = await launchCluster(ENV, ['node', 'node']);
  });
  afterAll(() => cluster?.stop());

  it('hangs up their partners, frees their userIds, and empties their rooms and pool entries within the dead-node window', async () => {
    const room = uid('room');
    const a = await connect(0, { room });
    const b = await connect(1, { room });
    const c = await connect(1, { room });
    await pair(a, b);
    c.send({ type: 'user_available_webrtc' });
    await c.roundTrip();
    a.send({ type: 'get_room_members', room });
    expect((await a.nextOfType('room_members')).payload.count).toBe(3);

    const killed = Date.now();
    await cluster.nodes[1]!.kill('SIGKILL');
    const hangup = await a.nextOfType('hangup', DEAD_AFTER_MS + 4000);
    const tookMs = Date.now() - killed;
    expect(hangup).toMatchObject({ fromUser: b.userId, payload: { reason: 'peer_disconnected' } });
    // Dead after DEAD_AFTER_MS without a beat, swept within two beats after that, plus slack.
    expect(tookMs).toBeLessThan(DEAD_AFTER_MS + 2 * HEARTBEAT_MS + 1500);

    a.send({ type: 'get_room_members', room });
    expect((await a.nextOfType('room_members')).payload).toMatchObject({
      count: 1,
      members: [a.userId],
    });
    // The room's members elsewhere hear that both left, as of any departure.
    const offline = [
      await a.next((m) => m.type === 'user_status' && m.payload.status === 'offline'),
      await a.next((m) => m.type === 'user_status' && m.payload.status === 'offline'),
    ];
    expect(offline.map((m) => [m.room, (m.payload as { userId: string }).userId]).sort()).toEqual(
      [
        [room, b.userId],
        [room, c.userId],
      ].sort(),
    );
    // c was available on the dead node: nobody can be matched with it.
    a.send({ type: 'request_random_peer' });
    await a.nextOfType('no_peer_available');
    expect((await dm(a, c.userId, 'still there?')).payload).toMatchObject({
      code: 'user_not_found',
    });
    // b's userId is free: a newcomer without its token gets it, on the surviving node.
    const again = await connect(0, { userId: b.userId });
    await again.roundTrip();
    expect((await dm(a, b.userId, 'welcome back')).type).toBe('chat_message');
    expect((await again.nextOfType('chat_message')).payload.content).toBe('welcome back');
    expect(await healthy(0)).toBe(true);
  }, 20_000);
});

describe('Redis paused (SIGSTOP) for 5 s', () => {
  beforeAll(async () => {
    cluster = await launchCluster(ENV);
  });
  afterAll(() => cluster?.stop());

  it('answers what needs Redis with error unavailable within a second and a half, delivers on the same node, pairs nobody, and serves again afterwards without sweeping anyone', async () => {
    const room = uid('room');
    const a = await connect(0, { room });
    const near = await connect(0, { room });
    const b = await connect(1, { room });
    b.send({ type: 'user_available_webrtc' });
    await b.roundTrip();

    cluster.redis.pause();
    const paused = Date.now();
    try {
      let started = Date.now();
      const refused = await dm(a, b.userId, 'across');
      expect(refused).toMatchObject({ type: 'error', payload: { code: 'unavailable' } });
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await gauge(0, 'aleatoria_redis_up')).toBe(0);
      // Users of one node keep talking to each other.
      expect((await dm(a, near.userId, 'next door')).type).toBe('chat_message');
      expect((await near.nextOfType('chat_message')).payload.content).toBe('next door');
      started = Date.now();
      a.send({ type: 'request_random_peer' });
      expect((await a.nextOfType('error', 3000)).payload.code).toBe('unavailable');
      expect(Date.now() - started).toBeLessThan(1500);
      await sleep(Math.max(0, 5000 - (Date.now() - paused)));
    } finally {
      cluster.redis.resume();
    }

    // Back: the cross-node message flows again, within a few seconds.
    const deadline = Date.now() + 5000;
    for (;;) {
      const reply = await dm(a, b.userId, 'across again');
      if (reply.type === 'chat_message') break;
      expect(reply.payload.code).toBe('unavailable');
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(100);
    }
    expect(await gauge(0, 'aleatoria_redis_up')).toBe(1);
    expect(await gauge(1, 'aleatoria_cluster_nodes')).toBe(2);
    const received = (await b.nextOfType('chat_message')).payload.content;
    // The refused message was not delivered behind the sender's back.
    expect(received).toBe('across again');
    // Nobody was swept for the beats Redis could not take: b is still in the room and available.
    a.send({ type: 'get_room_members', room });
    expect((await a.nextOfType('room_members')).payload.count).toBe(3);
    a.send({ type: 'request_random_peer' });
    expect((await a.nextOfType('assign_role')).payload.peerId).toBe(b.userId);
    expect((await b.nextOfType('assign_role')).payload.peerId).toBe(a.userId);
    await b.expectNothing(300, (m) => m.type === 'assign_role' || m.type === 'hangup');
    expect(a.queue.filter((m) => m.type === 'hangup')).toEqual([]);
    expect((await Promise.all([healthy(0), healthy(1)])).every(Boolean)).toBe(true);
  }, 30_000);
});

describe('Redis killed mid-traffic and restarted empty', () => {
  beforeAll(async () => {
    cluster = await launchCluster(ENV);
  });
  afterAll(() => cluster?.stop());

  it('gives typed errors during the outage, then the nodes register their users, rooms and pool again', async () => {
    const room = uid('room');
    const a = await connect(0, { room });
    const b = await connect(1, { room });
    b.send({ type: 'user_available_webrtc' });
    await b.roundTrip();

    // Traffic across the nodes while Redis dies and comes back empty.
    const errors: unknown[] = [];
    let delivered = 0;
    let sending = true;
    const traffic = (async () => {
      for (let i = 0; sending; i++) {
        const reply = await dm(a, b.userId, `m${i}`).catch(() => undefined);
        if (reply?.type === 'chat_message') delivered++;
        else if (reply) errors.push(reply.payload.code);
        await sleep(20);
      }
    })();
    await sleep(300);
    await cluster.redis.restart();
    // Until both nodes have registered again, a message across may still miss its recipient.
    const deadline = Date.now() + 8000;
    const before = delivered;
    while (delivered < before + 20) {
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(50);
    }
    sending = false;
    await traffic;
    // Every refusal during the outage was typed: the store was away, or the user not found yet.
    expect(new Set(errors).size).toBeGreaterThan(0);
    for (const code of errors) expect(['unavailable', 'user_not_found']).toContain(code);

    a.send({ type: 'get_room_members', room });
    expect((await a.nextOfType('room_members')).payload.count).toBe(2);
    a.send({ type: 'request_random_peer' });
    expect((await a.nextOfType('assign_role')).payload.peerId).toBe(b.userId);
    expect((await b.nextOfType('assign_role')).payload.peerId).toBe(a.userId);
    await b.expectNothing(300, (m) => m.type === 'assign_role');
    // The userIds are held again: a newcomer for b without its token is refused (b answers).
    const impostor = await TestClient.open(cluster.nodes[0]!.baseUrl, { userId: b.userId });
    expect((await impostor.closed).code).toBe(4009);
    expect((await Promise.all([healthy(0), healthy(1)])).every(Boolean)).toBe(true);
  }, 30_000);
});

describe('Redis unreachable when a node starts', () => {
  it('exits 1 after its start timeout, saying why, without ever serving', async () => {
    // A port that was Redis's a moment ago and is closed now.
    const gone = await startRedis();
    const url = gone.url;
    await gone.stop();
    const started = Date.now();
    const failure = await launchNode({ REDIS_URL: url }).then(
      async (server) => {
        await server.stop();
        return 'served';
      },
      (error: unknown) => String(error),
    );
    expect(failure).toContain('server exited with 1 before starting');
    expect(failure).toContain('aleatoria: failed to start: Redis unavailable');
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 20_000);
});
