/**
 * A cluster as one contract target: a real `redis-server` and several server processes sharing
 * it (`REDIS_URL`), each on its own port. Reading `baseUrl` gives the next node in turn, so a
 * test that opens clients one after the other spreads them over every node.
 */
import { startRedis, type TestRedis } from '../cluster/redis-server.ts';
import type { LaunchedServer } from './harness.ts';
import { launchDeno, launchNode } from './launchers.ts';

export type NodeRuntime = 'node' | 'deno';

export interface LaunchedCluster extends LaunchedServer {
  readonly nodes: readonly LaunchedServer[];
  readonly redis: TestRedis;
}

const launchers = { node: launchNode, deno: launchDeno };

export async function launchCluster(
  env: Record<string, string>,
  runtimes: readonly NodeRuntime[] = ['node', 'deno'],
  redis?: TestRedis,
): Promise<LaunchedCluster> {
  const ownRedis = redis === undefined;
  const server = redis ?? (await startRedis());
  const nodes: LaunchedServer[] = [];
  try {
    for (const [i, runtime] of runtimes.entries())
      nodes.push(
        await launchers[runtime]({
          NODE_ID: `${runtime}${i}`,
          ...env,
          REDIS_URL: server.url,
        }),
      );
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    if (ownRedis) await server.stop();
    throw error;
  }
  let turn = 0;
  return {
    nodes,
    redis: server,
    get baseUrl() {
      return nodes[turn++ % nodes.length]!.baseUrl;
    },
    async kill(signal) {
      const results = await Promise.all(nodes.map((node) => node.kill(signal)));
      return {
        code: results.find((r) => r.code !== 0)?.code ?? 0,
        elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
      };
    },
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
      if (ownRedis) await server.stop();
    },
    output: () => nodes.map((node) => node.output()).join('\n'),
    rss: () => nodes.reduce((sum, node) => sum + (node.rss?.() ?? 0), 0),
    cpuSeconds: () => nodes.reduce((sum, node) => sum + (node.cpuSeconds?.() ?? 0), 0),
  };
}
