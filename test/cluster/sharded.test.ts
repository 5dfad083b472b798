/**
 * A node pointed at a sharded Redis (Redis Cluster, Valkey's cluster mode) refuses to start and
 * says why, rather than serving while every claim, membership and message fails with CROSSSLOT:
 * a real `redis-server` in cluster mode that serves every hash slot, as a managed "cluster mode
 * enabled" Redis does.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { launchNode, startOutcome } from '../contract/launchers.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis({ clusterMode: true });
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

it('refuses a Redis Cluster at start: exits 1 saying so', async () => {
  const outcome = await startOutcome(
    launchNode({ ALLOWED_ORIGINS: '*', NODE_ID: 'sharded', REDIS_URL: redis.url }),
  );
  expect(outcome).toMatch(
    /exited with 1[\s\S]*failed to start: REDIS_URL points at a Redis Cluster \(cluster_enabled:1\)/,
  );
}, 30_000);
