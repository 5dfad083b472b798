/**
 * Joins this process to the cluster named by `REDIS_URL`: the Redis link, then the node. Loaded
 * only when `REDIS_URL` is set, so a single process never loads the Redis client.
 */
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/log.ts';
import { type ClusterNode, createClusterNode } from './cluster.ts';
import { createRedisLink } from './redis.ts';

/** How long a starting node waits for Redis before it gives up (and the process exits 1). */
const START_TIMEOUT_MS = 10_000;

export async function joinCluster(config: Config, log: Logger): Promise<ClusterNode | undefined> {
  const cluster = config.cluster;
  if (!cluster) return undefined;
  let lastLogged = 0;
  const link = createRedisLink(cluster.redisUrl, {
    connectionName: 'aleatoria',
    onError(error) {
      // A Redis that is away reports every reconnection attempt: one line per 5 s is enough.
      const now = Date.now();
      if (now - lastLogged < 5000) return;
      lastLogged = now;
      log.warn('redis_error', { error: error.message });
    },
  });
  link.on('down', () => log.warn('redis_down', {}));
  link.on('ready', (info) => log.info('redis_ready', { restarted: info.restarted }));
  const node = createClusterNode(link, {
    config: cluster,
    takeoverProbeMs: config.takeoverProbeMs,
    log,
  });
  try {
    await node.start(START_TIMEOUT_MS);
  } catch (error) {
    await link.close();
    throw error;
  }
  log.info('cluster_joined', { node: node.nodeId, prefix: cluster.prefix });
  return node;
}
