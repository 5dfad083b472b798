/**
 * One live connection per userId across a cluster (one Node and one Deno node, a real
 * `redis-server`): a reconnect with the token on another node takes the session over with its
 * rooms and call, also after its socket dropped mid-call (the resume window); without the token, the node holding the user probes its socket; racing
 * newcomers on both nodes get the userId once; a user back after the window, on either node, is told
 * its call is over.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type LaunchedCluster, launchCluster } from '../contract/cluster-launcher.ts';
import { TestClient, uid } from '../contract/harness.ts';

const PROBE_MS = 800;
const RESUME_MS = 1500;
let cluster: LaunchedCluster;
const open: TestClient[] = [];

async function connect(
  node: number,
  options: { userId?: string; room?: string; token?: string; autoPong?: boolean } = {},
) {
  const client = await TestClient.open(cluster.nodes[node]!.baseUrl, options);
  open.push(client);
  return client;
}

beforeAll(async () => {
  cluster = await launchCluster({
    ALLOWED_ORIGINS: '*',
    TAKEOVER_PROBE_MS: String(PROBE_MS),
    CALL_RESUME_MS: String(RESUME_MS),
    MATCHES_PER_MINUTE: '100000',
    PRESENCE_ROOM_LIMIT: '0',
  });
});
afterAll(() => cluster?.stop());
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

/** `a` on node `node` matched with `b` on the other node, both in `room`. */
async function inACall(
  node: number,
  room: string,
  options: { token?: string; autoPong?: boolean },
) {
  const a = await connect(node, { room, ...options });
  const b = await connect(1 - node, { room });
  b.send({ type: 'user_available_webrtc' });
  await b.roundTrip();
  a.send({ type: 'request_random_peer' });
  expect((await a.nextOfType('assign_role')).payload.peerId).toBe(b.userId);
  await b.nextOfType('assign_role');
  return { a, b };
}

describe('one connection per userId across nodes', () => {
  for (const from of [0, 1]) {
    it(`moves a session to the other node on a reconnect with its token (from node ${from}): rooms, call and messages follow`, async () => {
      const room = uid('room');
      const token = `t-${uid()}`;
      const { a, b } = await inACall(from, room, { token });
      const again = await connect(1 - from, { userId: a.userId, token, room });
      expect((await a.nextOfType('error')).payload.code).toBe('replaced');
      expect((await a.closed).code).toBe(4000);
      again.send({ type: 'get_rooms' });
      expect((await again.nextOfType('rooms_list')).payload.rooms).toEqual([room]);
      // The call goes on: the partner hears nothing of the move, and relays reach the new socket.
      b.send({ type: 'webrtc_candidate', toUser: a.userId, payload: { candidate: 'c1' } });
      expect((await again.nextOfType('webrtc_candidate')).fromUser).toBe(b.userId);
      again.send({ type: 'chat_message', room, payload: { content: 'moved' } });
      expect((await b.nextOfType('chat_message')).payload.content).toBe('moved');
      again.send({ type: 'get_room_members', room });
      expect((await again.nextOfType('room_members')).payload.count).toBe(2);
      await b.expectNothing(200, (m) => m.type === 'hangup');
      // Ending the call from the new socket reaches the partner.
      again.send({ type: 'hangup', toUser: b.userId, payload: null });
      expect((await b.nextOfType('hangup')).fromUser).toBe(a.userId);
    });
  }

  for (const from of [0, 1]) {
    it(`keeps a call whose socket dropped on node ${from} for its user back on the other node: reconnecting, online, and no hangup after the window`, async () => {
      const room = uid('room');
      const token = `t-${uid()}`;
      const { a, b } = await inACall(from, room, { token });
      a.ws.terminate();
      const status = (m: { type: string }) => m.type === 'user_status';
      expect((await b.next(status)).payload).toMatchObject({
        userId: a.userId,
        status: 'reconnecting',
      });
      const again = await connect(1 - from, { userId: a.userId, token, room });
      expect((await b.next(status)).payload).toMatchObject({ userId: a.userId, status: 'online' });
      b.send({ type: 'webrtc_candidate', toUser: a.userId, payload: { candidate: 'c2' } });
      expect((await again.nextOfType('webrtc_candidate')).fromUser).toBe(b.userId);
      // The window's timer on the first node was stopped by the move: the pair outlives it.
      await b.expectNothing(RESUME_MS + 500, (m) => m.type === 'hangup');
      again.send({ type: 'webrtc_candidate', toUser: b.userId, payload: { candidate: 'c3' } });
      expect((await b.nextOfType('webrtc_candidate')).fromUser).toBe(a.userId);
    });
  }

  for (const from of [0, 1]) {
    it(`tells a user back on the other node after the window, with its token, that its call on node ${from} is over`, async () => {
      const token = `t-${uid()}`;
      const { a, b } = await inACall(from, uid('room'), { token });
      a.ws.terminate();
      expect(await b.nextOfType('hangup', RESUME_MS + 3000)).toMatchObject({
        fromUser: a.userId,
        payload: { reason: 'peer_disconnected' },
      });
      // A newcomer with another token is not told, and leaves it for the user.
      const stranger = await connect(1 - from, { userId: a.userId, token: `t-${uid()}` });
      await stranger.expectNothing(300, (m) => m.type === 'hangup');
      await stranger.close();
      const late = await connect(1 - from, { userId: a.userId, token });
      expect(await late.nextOfType('hangup')).toMatchObject({
        fromUser: b.userId,
        toUser: a.userId,
        payload: { reason: 'peer_disconnected' },
      });
      // Told once, on whichever node: the next fresh session hears nothing.
      await late.close();
      const again = await connect(from, { userId: a.userId, token });
      await again.expectNothing(300, (m) => m.type === 'hangup');
    });
  }

  it('refuses a newcomer without the token on the other node while the old socket answers pings', async () => {
    const { a, b } = await inACall(0, uid('room'), { token: 'secret-token-1' });
    const newcomer = await connect(1, { userId: a.userId });
    expect((await newcomer.nextOfType('error')).payload.code).toBe('user_id_taken');
    expect((await newcomer.closed).code).toBe(4009);
    b.send({ type: 'chat_message', toUser: a.userId, payload: { content: 'still you?' } });
    expect((await a.nextOfType('chat_message')).payload.content).toBe('still you?');
  });

  it('gives a silent socket’s userId to a newcomer on the other node as a fresh session, hanging up its partner', async () => {
    const { a, b } = await inACall(0, uid('room'), { autoPong: false });
    const started = Date.now();
    const newcomer = await connect(1, { userId: a.userId });
    await newcomer.roundTrip();
    expect(Date.now() - started).toBeLessThan(PROBE_MS + 1500);
    expect((await a.closed).code).toBe(4000);
    expect(await b.nextOfType('hangup')).toMatchObject({
      fromUser: a.userId,
      payload: { reason: 'peer_disconnected' },
    });
    newcomer.send({ type: 'get_rooms' });
    expect((await newcomer.nextOfType('rooms_list')).payload.rooms).toEqual(['Lobby']);
    b.send({ type: 'chat_message', toUser: a.userId, payload: { content: 'who?' } });
    expect((await newcomer.nextOfType('chat_message')).payload.content).toBe('who?');
  });

  it('lets exactly one of newcomers racing on both nodes replace a silent socket', async () => {
    const { a } = await inACall(0, uid('room'), { autoPong: false });
    const outcomes = await Promise.all(
      [0, 1, 0, 1].map(async (node) => {
        const client = await connect(node, { userId: a.userId });
        return Promise.race([
          client.closed.then(({ code }) => code),
          client.roundTrip().then(() => 'served' as const),
        ]);
      }),
    );
    expect(outcomes.sort()).toEqual([4009, 4009, 4009, 'served']);
    expect((await a.closed).code).toBe(4000);
  });
});
