/**
 * A rolling deploy of a cluster: a node told to stop (SIGTERM) closes its sockets with 1012 as a
 * single process does, but the calls of its users who hold a token wait for them as after a
 * dropped socket, and move with them to the node they reconnect to. The node stays up (inbox,
 * heartbeat) until every held call has moved or SHUTDOWN_TIMEOUT_MS ends; a call still held then
 * is hung up before the node leaves. Drained nodes of both runtimes, a surviving Node node, and a
 * real `redis-server`; and one process, which has nobody to hand a call to and leaves at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LaunchedServer, type Received, TestClient, uid } from '../contract/harness.ts';
import { launchDeno, launchNode } from '../contract/launchers.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

const SHUTDOWN_MS = 3000;
const ENV = {
  ALLOWED_ORIGINS: '*',
  // Longer than the drain: a call not moved by then is hung up by the node's leaving, not its timer.
  CALL_RESUME_MS: '20000',
  SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_MS),
  MATCHES_PER_MINUTE: '100000',
  PRESENCE_ROOM_LIMIT: '0',
};

let redis: TestRedis;
/** The node that stays up. */
let staying: LaunchedServer;
const launched: LaunchedServer[] = [];
const open: TestClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  staying = await launchNode({ ...ENV, REDIS_URL: redis.url, NODE_ID: 'staying' });
});
afterAll(async () => {
  await Promise.all([staying, ...launched].map((node) => node?.stop()));
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

async function connect(node: LaunchedServer, options: { userId?: string; token?: string } = {}) {
  const client = await TestClient.open(node.baseUrl, options);
  open.push(client);
  return client;
}

/** `a` matched with `b`, the only available user. */
async function pair(a: TestClient, b: TestClient) {
  b.send({ type: 'user_available_webrtc' });
  await b.roundTrip();
  a.send({ type: 'request_random_peer' });
  expect((await a.nextOfType('assign_role')).payload.peerId).toBe(b.userId);
  expect((await b.nextOfType('assign_role')).payload.peerId).toBe(a.userId);
}

/** A user of `node` (holding `token`, if given) in a call with a user of the node that stays. */
async function callFrom(node: LaunchedServer, token?: string) {
  const user = await connect(node, token === undefined ? {} : { token });
  const peer = await connect(staying);
  await pair(user, peer);
  return [user, peer] as const;
}

const statusOf = (userId: string) => (m: Received) =>
  m.type === 'user_status' && (m.payload as { userId?: string }).userId === userId;
const isHangup = (m: { type: string }) => m.type === 'hangup';

for (const [runtime, launch] of [
  ['node', launchNode],
  ['deno', launchDeno],
] as const) {
  describe(`a ${runtime} node drained by SIGTERM`, () => {
    async function leaving(name: string) {
      const node = await launch({ ...ENV, REDIS_URL: redis.url, NODE_ID: `${runtime}-${name}` });
      launched.push(node);
      return node;
    }

    it('keeps the calls of users with a token for them on another node, hangs up the others, and hangs up what did not move before it leaves', async () => {
      const node = await leaving('deadline');
      const token = `t-${uid()}`;
      const [moving, movingPeer] = await callFrom(node, token);
      const goneToken = `t-${uid()}`;
      const [gone, gonePeer] = await callFrom(node, goneToken);
      const [tokenless, tokenlessPeer] = await callFrom(node);

      const signalled = Date.now();
      const exit = node.kill('SIGTERM');
      expect((await moving.closed).code).toBe(1012);
      expect((await gone.closed).code).toBe(1012);
      // Without a token nobody can come back to the call: it ends at once, as before.
      expect(await tokenlessPeer.nextOfType('hangup', 1500)).toMatchObject({
        fromUser: tokenless.userId,
        payload: { reason: 'peer_disconnected' },
      });
      for (const [peer, user] of [
        [movingPeer, moving],
        [gonePeer, gone],
      ] as const)
        expect((await peer.next(statusOf(user.userId), 1500)).payload).toMatchObject({
          status: 'reconnecting',
        });

      // Back on the node that stays, with its token: the call goes on there.
      const again = await connect(staying, { userId: moving.userId, token });
      expect((await movingPeer.next(statusOf(moving.userId))).payload).toMatchObject({
        status: 'online',
      });
      movingPeer.send({ type: 'webrtc_candidate', toUser: moving.userId, payload: null });
      expect((await again.nextOfType('webrtc_candidate')).fromUser).toBe(movingPeer.userId);

      // Not back by the end of the drain: hung up before the node leaves.
      const hangup = await gonePeer.next(isHangup, SHUTDOWN_MS + 2000);
      const hungUpAfter = Date.now() - signalled;
      expect(hangup).toMatchObject({
        fromUser: gone.userId,
        payload: { reason: 'peer_disconnected' },
      });
      expect(hungUpAfter).toBeGreaterThanOrEqual(SHUTDOWN_MS - 200);
      const { code, elapsedMs } = await exit;
      expect(code).toBe(0);
      expect(elapsedMs).toBeLessThan(SHUTDOWN_MS + 1000);

      // The moved call outlives the node it was on; its partner hears of nobody leaving.
      await movingPeer.expectNothing(500, isHangup);
      again.send({ type: 'hangup', toUser: movingPeer.userId, payload: null });
      expect((await movingPeer.nextOfType('hangup')).fromUser).toBe(moving.userId);
      // The userId that did not come back is free on the node that stays...
      const newcomer = await connect(staying, { userId: gone.userId });
      await newcomer.roundTrip();
      await newcomer.close();
      // ...and its user, back there late with its token, is told its call is over.
      const late = await connect(staying, { userId: gone.userId, token: goneToken });
      expect(await late.nextOfType('hangup')).toMatchObject({
        fromUser: gonePeer.userId,
        payload: { reason: 'peer_disconnected' },
      });
    }, 20_000);

    it('leaves as soon as every held call has moved', async () => {
      const node = await leaving('early');
      const token = `t-${uid()}`;
      const [moving, peer] = await callFrom(node, token);
      const exit = node.kill('SIGTERM');
      await moving.closed;
      await peer.next(statusOf(moving.userId), 1500);
      // Back after a reconnect delay, as the SDK's backoff draws it.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const back = Date.now();
      await connect(staying, { userId: moving.userId, token });
      expect((await peer.next(statusOf(moving.userId))).payload).toMatchObject({
        status: 'online',
      });
      const { code } = await exit;
      expect(code).toBe(0);
      expect(Date.now() - back).toBeLessThan(SHUTDOWN_MS / 2);
      await peer.expectNothing(300, isHangup);
    }, 20_000);
  });
}

describe('one process drained by SIGTERM', () => {
  it('does not wait for a call held for a dropped user: nobody could take it over', async () => {
    const node = await launchNode({ ...ENV, SHUTDOWN_TIMEOUT_MS: '8000' });
    launched.push(node);
    const dropped = await connect(node, { token: `t-${uid()}` });
    const peer = await connect(node);
    await pair(dropped, peer);
    dropped.ws.terminate();
    expect((await peer.next(statusOf(dropped.userId))).payload).toMatchObject({
      status: 'reconnecting',
    });
    const { code, elapsedMs } = await node.kill('SIGTERM');
    expect(code).toBe(0);
    expect(elapsedMs).toBeLessThan(2000);
  });
});
