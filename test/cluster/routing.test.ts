/**
 * Frames for users on another node, sent in bursts (one Node and one Deno node, a real
 * `redis-server`): what a node routes within one turn of its event loop goes to Redis as one
 * script and reaches each other node as one inbox message (`src/cluster/inbox.ts`). Whatever the
 * batching, every frame arrives once, in the order its sender sent it, a frame for nobody is
 * answered `user_not_found` on its own, chat is kept in history, and a DM is not overtaken by a
 * room message its sender sent after it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Received } from '../contract/harness.ts';
import { type LaunchedCluster, launchCluster } from '../contract/cluster-launcher.ts';
import { TestClient, uid } from '../contract/harness.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

const ENV = {
  ALLOWED_ORIGINS: '*',
  RATE_LIMIT_PER_SECOND: '100000',
  RATE_LIMIT_BURST: '100000',
  PRESENCE_ROOM_LIMIT: '0',
};
const SENDERS = 4;
const PER_SENDER = 120;

let redis: TestRedis;
const clusters: LaunchedCluster[] = [];
const open: TestClient[] = [];

async function connect(cluster: LaunchedCluster, node: number, room?: string) {
  const client = await TestClient.open(cluster.nodes[node]!.baseUrl, { room });
  open.push(client);
  return client;
}

/** What `client` finds in history of its DMs with `withUser` (up to 100). */
async function history(client: TestClient, withUser: string): Promise<Received[]> {
  client.send({ type: 'get_direct_messages', messageId: 'h', payload: { withUser, limit: 100 } });
  const answer = await client.nextOfType('direct_messages', 10_000);
  return (answer.payload as { messages: Received[] }).messages;
}

/** Collects `count` messages of `type` from `client`, in arrival order. */
async function collect(client: TestClient, type: Received['type'], count: number) {
  const got: Received[] = [];
  while (got.length < count) got.push(await client.next((m) => m.type === type, 10_000));
  return got;
}

beforeAll(async () => {
  redis = await startRedis();
  clusters.push(await launchCluster(ENV, ['node', 'deno'], redis));
  clusters.push(
    await launchCluster({ ...ENV, HISTORY: 'off', REDIS_PREFIX: 'off:' }, ['node', 'deno'], redis),
  );
}, 120_000);
afterAll(async () => {
  await Promise.all(clusters.map((cluster) => cluster.stop()));
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

describe('routing bursts between nodes', () => {
  for (const from of [0, 1]) {
    it(`delivers every relayed frame of a burst once and in order (node ${from} to node ${1 - from}), and answers the one for nobody alone`, async () => {
      const cluster = clusters[0]!;
      const senders = await Promise.all(
        Array.from({ length: SENDERS }, () => connect(cluster, from)),
      );
      const receivers = await Promise.all(
        Array.from({ length: SENDERS }, () => connect(cluster, 1 - from)),
      );
      const nobody = uid('nobody');
      // Every sender writes to every receiver, interleaved, all in one go: the node has many
      // frames for the other node within each turn of its event loop.
      for (let n = 0; n < PER_SENDER; n++)
        for (const [s, sender] of senders.entries()) {
          const to = receivers[(s + n) % SENDERS]!;
          sender.send({
            type: 'webrtc_candidate',
            toUser: to.userId,
            payload: { candidate: `${s}:${n}` },
          });
          if (n === PER_SENDER / 2)
            sender.send({
              type: 'webrtc_candidate',
              toUser: nobody,
              messageId: `lost-${s}`,
              payload: {},
            });
        }
      for (const receiver of receivers) {
        const got = await collect(receiver, 'webrtc_candidate', PER_SENDER);
        const bySender = new Map<string, number[]>();
        for (const m of got) {
          const [s, n] = String((m.payload as { candidate: string }).candidate).split(':');
          expect(m.fromUser).toBe(senders[Number(s)]!.userId);
          bySender.set(s!, [...(bySender.get(s!) ?? []), Number(n)]);
        }
        // Each sender's frames to this receiver, each once, in the order they were sent.
        for (const ns of bySender.values()) expect(ns).toStrictEqual([...ns].sort((a, b) => a - b));
        expect(got).toHaveLength(PER_SENDER);
        await receiver.expectNothing(100, (m) => m.type === 'webrtc_candidate');
      }
      for (const [s, sender] of senders.entries()) {
        const refusal = await sender.next((m) => m.type === 'error', 10_000);
        expect(refusal).toMatchObject({
          messageId: `lost-${s}`,
          payload: { code: 'user_not_found' },
        });
        await sender.expectNothing(50, (m) => m.type === 'error');
      }
    });
  }

  it('keeps a burst of chat DMs across nodes in history, in order, with any text intact', async () => {
    const cluster = clusters[0]!;
    const a = await connect(cluster, 0);
    const b = await connect(cluster, 1);
    const contents = Array.from(
      { length: 60 },
      (_, i) => `m${i} línea\nnext "q" \u{1f600} \\ ${'x'.repeat(i)}`,
    );
    for (const content of contents)
      a.send({ type: 'chat_message', toUser: b.userId, payload: { content } });
    const got = await collect(b, 'chat_message', contents.length);
    expect(got.map((m) => (m.payload as { content: string }).content)).toStrictEqual(contents);
    const kept = await history(b, a.userId);
    expect(kept.map((m) => (m.payload as { content: string }).content)).toStrictEqual(contents);
    expect(kept.map((m) => m.id)).toStrictEqual(got.map((m) => m.id));
  });

  it('routes a burst mixing relays and kept chat DMs in order, each chat kept once under the id it arrived with', async () => {
    const cluster = clusters[0]!;
    const a = await connect(cluster, 0);
    const b = await connect(cluster, 1);
    // One script carries both kinds: a relay's fields stop at its stream index, a chat's go on.
    const sent: string[] = [];
    for (let n = 0; n < 90; n++) {
      const text = `${n % 3 === 0 ? 'chat' : 'relay'} ${n}`;
      sent.push(text);
      if (n % 3 === 0)
        a.send({ type: 'chat_message', toUser: b.userId, payload: { content: text } });
      else a.send({ type: 'webrtc_candidate', toUser: b.userId, payload: { candidate: text } });
    }
    const got: Received[] = [];
    while (got.length < sent.length)
      got.push(
        await b.next((m) => m.type === 'chat_message' || m.type === 'webrtc_candidate', 10_000),
      );
    const textOf = (m: Received) => {
      const payload = m.payload as { content?: string; candidate?: string };
      return payload.content ?? payload.candidate;
    };
    expect(got.map(textOf)).toStrictEqual(sent);
    const kept = await history(b, a.userId);
    const chats = got.filter((m) => m.type === 'chat_message');
    expect(kept.map(textOf)).toStrictEqual(chats.map(textOf));
    expect(kept.map((m) => m.id)).toStrictEqual(chats.map((m) => m.id));
  });

  it('does not let a room message overtake a relay its sender sent before it (history off: no id to wait for)', async () => {
    const cluster = clusters[1]!;
    const room = uid('room');
    const a = await connect(cluster, 0, room);
    const b = await connect(cluster, 1, room);
    await b.roundTrip();
    for (let round = 0; round < 20; round++) {
      a.send({ type: 'webrtc_candidate', toUser: b.userId, payload: { candidate: `c${round}` } });
      a.send({ type: 'chat_message', room, payload: { content: `r${round}` } });
      const first = await b.next((m) => m.type === 'webrtc_candidate' || m.type === 'chat_message');
      expect(first).toMatchObject({
        type: 'webrtc_candidate',
        payload: { candidate: `c${round}` },
      });
      await b.next((m) => m.type === 'chat_message');
    }
  });
});
