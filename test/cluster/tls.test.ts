/**
 * A cluster over TLS (`rediss://`), as Upstash and most managed Redis serve it: a real
 * `redis-server` with a TLS port and a certificate from a test-only authority (tls/README.md).
 * A Node node (an IP address in its URL) and a Deno node (a host name) that trust that authority
 * through their runtime's own setting (`NODE_EXTRA_CA_CERTS`, `DENO_CERT`) carry a DM, its
 * history and a room message between them. A node that does not trust it never joins: it exits 1
 * and says why.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { LaunchedServer } from '../contract/harness.ts';
import { TestClient, uid } from '../contract/harness.ts';
import { launchDeno, launchNode, startOutcome } from '../contract/launchers.ts';
import { startRedis, TEST_CA_FILE, type TestRedis } from './redis-server.ts';

const ENV = { ALLOWED_ORIGINS: '*', LOG_LEVEL: 'info' };

let redis: TestRedis;
let tlsPort: number;
let nodes: LaunchedServer[] = [];
const open: TestClient[] = [];

beforeAll(async () => {
  redis = await startRedis({ tls: true });
  tlsPort = Number(new URL(redis.url).port);
  nodes = await Promise.all([
    launchNode({
      ...ENV,
      NODE_ID: 'tls-node',
      REDIS_URL: `rediss://127.0.0.1:${tlsPort}`,
      NODE_EXTRA_CA_CERTS: TEST_CA_FILE,
    }),
    launchDeno({
      ...ENV,
      NODE_ID: 'tls-deno',
      REDIS_URL: `rediss://localhost:${tlsPort}`,
      DENO_CERT: TEST_CA_FILE,
    }),
  ]);
}, 90_000);
afterAll(async () => {
  await Promise.all(nodes.map((node) => node.stop()));
  await redis?.stop();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((client) => client.close()));
});

async function connect(node: number, room?: string) {
  const client = await TestClient.open(nodes[node]!.baseUrl, { room });
  open.push(client);
  return client;
}

describe('REDIS_URL=rediss://', () => {
  it('joins both nodes over TLS, with no warning about the address', () => {
    expect(redis.url).toMatch(/^rediss:\/\/localhost:\d+$/);
    for (const node of nodes) expect(node.output()).toMatch(/"event":"cluster_joined"/);
    // An IP address is not sent as the TLS server name (RFC 6066; Node warns when it is).
    expect(nodes[0]!.output()).not.toMatch(/DEP0123|ServerName to an IP/);
  });

  it('carries a DM, its history and a room message between a Node and a Deno node', async () => {
    const room = uid('tls');
    const a = await connect(0, room);
    const b = await connect(1, room);
    await b.roundTrip();
    a.send({ type: 'chat_message', toUser: b.userId, payload: { content: 'over tls' } });
    const dm = await b.next((m) => m.type === 'chat_message', 10_000);
    expect(dm).toMatchObject({ fromUser: a.userId, payload: { content: 'over tls' } });
    b.send({
      type: 'get_direct_messages',
      messageId: 'h',
      payload: { withUser: a.userId, limit: 10 },
    });
    const history = await b.nextOfType('direct_messages', 10_000);
    expect((history.payload as { messages: { id?: string }[] }).messages.map((m) => m.id)).toEqual([
      dm.id,
    ]);
    b.send({ type: 'chat_message', room, payload: { content: 'to the room' } });
    const broadcast = await a.next((m) => m.type === 'chat_message' && m.room === room, 10_000);
    expect(broadcast).toMatchObject({ fromUser: b.userId, payload: { content: 'to the room' } });
  });

  it('does not join through a certificate it cannot verify: exits 1 naming the error', async () => {
    const outcome = await startOutcome(
      launchNode({
        ...ENV,
        NODE_ID: 'tls-untrusting',
        REDIS_URL: `rediss://localhost:${tlsPort}`,
        NODE_EXTRA_CA_CERTS: '',
      }),
    );
    // The node gives Redis 10 s to be ready, then gives up (src/cluster/join.ts).
    expect(outcome).toMatch(
      /exited with 1[\s\S]*failed to start: Redis unavailable: not ready within \d+ ms \(last error: self-signed certificate/,
    );
  }, 30_000);
});
