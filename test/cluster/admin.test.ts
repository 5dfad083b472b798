/**
 * The operator page's figures of a cluster (one Node and one Deno node, a real `redis-server`):
 * either node answers with one row per node, each with that node's own connections as its own
 * `/metrics` says them, and totals that add the rows up; a node that leaves loses its row.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type LaunchedCluster, launchCluster } from '../contract/cluster-launcher.ts';
import { TestClient, uid } from '../contract/harness.ts';

const TOKEN = 'cluster-operator-token';
let cluster: LaunchedCluster;
const open: TestClient[] = [];

beforeAll(async () => {
  cluster = await launchCluster({
    ALLOWED_ORIGINS: '*',
    ADMIN_TOKEN: TOKEN,
    // Each node writes its figures at every heartbeat: often, so the test need not wait long.
    NODE_HEARTBEAT_MS: '200',
    NODE_DEAD_AFTER_MS: '1000',
  });
});
afterAll(async () => {
  await Promise.all(open.map((client) => client.close()));
  await cluster?.stop();
});

interface Row {
  id: string;
  connections: number;
  pairs: number;
  matches: number;
  ageMs: number | null;
}

async function figures(node: number): Promise<{ connections: number; nodes: Row[] }> {
  const res = await fetch(`${cluster.nodes[node]!.baseUrl}/admin/figures`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(res.status).toBe(200);
  return res.json() as Promise<{ connections: number; nodes: Row[] }>;
}

/** `aleatoria_connections` of one node's own `/metrics`. */
async function ownConnections(node: number): Promise<number> {
  const text = await (await fetch(`${cluster.nodes[node]!.baseUrl}/metrics`)).text();
  return Number(/^aleatoria_connections (\d+)$/m.exec(text)?.[1]);
}

/** Polls node `node`'s figures until their rows are `expected` (id -> connections). */
async function rowsBecome(node: number, expected: Record<string, number>) {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    const now = await figures(node);
    last = now.nodes;
    const rows = now.nodes.map((row) => [row.id, row.connections]).sort();
    if (JSON.stringify(rows) === JSON.stringify(Object.entries(expected).sort())) return now;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`rows never became ${JSON.stringify(expected)}: ${JSON.stringify(last)}`);
}

it('has one row per node with its connections, seen from either node', async () => {
  const room = uid('room');
  for (const node of [0, 0, 1])
    open.push(await TestClient.open(cluster.nodes[node]!.baseUrl, { room }));
  // The launcher names the nodes by runtime and place.
  const expected = { node0: 2, deno1: 1 };
  for (const node of [0, 1]) {
    const seen = await rowsBecome(node, expected);
    expect(seen.connections).toBe(3);
    for (const row of seen.nodes) {
      expect(row.ageMs).toBeGreaterThanOrEqual(0);
      expect(row.ageMs).toBeLessThan(1000);
    }
  }
  expect([await ownConnections(0), await ownConnections(1)]).toEqual([2, 1]);

  await open.pop()!.close();
  await rowsBecome(0, { node0: 2, deno1: 0 });
});

it('drops the row of a node that left the cluster', async () => {
  await cluster.nodes[1]!.kill('SIGTERM');
  const seen = await rowsBecome(0, { node0: 2 });
  expect(seen.connections).toBe(2);
});
