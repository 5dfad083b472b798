/**
 * The operator page of a cluster: every node writes its own `/metrics` exposition to Redis at each
 * heartbeat (STRING `node:{id}:exposition`, expiring after `NODE_DEAD_AFTER_MS`, so a dead node's
 * goes by itself), and the node asked for the page adds up those of the live nodes (ZSET `nodes`),
 * its own taken fresh. That sum is what Prometheus gets scraping every node; a row per node comes
 * from the same texts. Rooms and the pool span nodes, so their counts come from Redis, as for
 * `GET /stats`. Written only while `ADMIN_TOKEN` is set.
 */
import { addExpositions } from '../cloudflare/expositions.ts';
import type { RedisLink, RedisReply } from '../cluster/redis.ts';
import { type AdminSnapshot, topRooms } from './figures.ts';

export interface ClusterAdminOptions {
  link: RedisLink;
  /** `REDIS_PREFIX`. */
  prefix: string;
  nodeId: string;
  heartbeatMs: number;
  /** How long a node's exposition outlives its last write. */
  deadAfterMs: number;
}

export interface ClusterAdmin {
  /** Writes `exposition()` now and at every heartbeat, for the other nodes' operator pages. */
  start(exposition: () => string): void;
  /** Stops writing, and takes this node's exposition away (the node leaves the cluster). */
  stop(): Promise<void>;
  /** The cluster's figures, with `own` (this node's exposition now) in place of the one written. */
  snapshot(own: string): Promise<Omit<AdminSnapshot, 'history'>>;
}

/** A flat [field, value, field, value...] reply as pairs. */
function pairs(reply: RedisReply): [string, string][] {
  const flat = Array.isArray(reply) ? reply : [];
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), String(flat[i + 1])]);
  return out;
}

export function createClusterAdmin(options: ClusterAdminOptions): ClusterAdmin {
  const { link, prefix: p, nodeId } = options;
  const expositionKey = (node: string) => `${p}node:${node}:exposition`;
  let timer: ReturnType<typeof setInterval> | undefined;

  return {
    start(exposition) {
      const write = () =>
        void link
          .send('SET', expositionKey(nodeId), exposition(), 'PX', options.deadAfterMs)
          .catch(() => {});
      write();
      timer = setInterval(write, options.heartbeatMs);
      (timer as { unref?: () => void }).unref?.();
    },
    async stop() {
      if (timer === undefined) return;
      clearInterval(timer);
      await link.send('DEL', expositionKey(nodeId));
    },
    async snapshot(own) {
      const [nodes, time, rooms, available, members] = await Promise.all([
        link.send('ZRANGE', `${p}nodes`, 0, -1, 'WITHSCORES'),
        link.send('TIME'),
        link.send('HLEN', `${p}rooms`),
        link.send('ZCARD', `${p}pool`),
        // Every room's count: what the page costs, once per poll, while it is open.
        link.send('HGETALL', `${p}rooms`),
      ]);
      const beats = pairs(nodes);
      const texts = beats.length
        ? ((await link.send('MGET', ...beats.map(([node]) => expositionKey(node)))) as (
            | string
            | null
          )[])
        : [];
      // Ages on Redis's clock, the heartbeats' own.
      const [seconds, micros] = (time as string[]).map(Number) as [number, number];
      const now = seconds * 1000 + Math.floor(micros / 1000);
      const rows = beats.map(([node, beat], i) => ({
        id: node,
        metrics: node === nodeId ? own : (texts[i] ?? ''),
        ageMs: node === nodeId ? 0 : Math.max(0, now - Number(beat)),
      }));
      // Not listed (swept while away from Redis, or Redis came back empty): still one of them.
      if (!rows.some((row) => row.id === nodeId)) rows.push({ id: nodeId, metrics: own, ageMs: 0 });
      return {
        metrics: addExpositions(rows.map((row) => row.metrics)),
        shared: { rooms: rooms as number, available: available as number },
        rooms: topRooms(pairs(members).map(([room, count]) => [room, Number(count)])),
        nodes: rows,
      };
    },
  };
}
