/**
 * One node of a cluster sharing state through Redis (7+) or Valkey: the hub's seams
 * (`src/core/seams.ts`) for users, rooms, the pool and userId claims, plus this node's heartbeat
 * and the sweep of dead nodes. The design, keys and failure behaviour: `docs/cluster.md`.
 *
 * - **Users** (`inbox.ts`). HASH `users` names the node holding each userId. A frame for a user
 *   of this node is delivered at once; for a user elsewhere one script (`ROUTE`) reads the holder
 *   and publishes to its inbox channel, `inbox:{node}`, so a DM costs one round trip and a node
 *   only hears what is addressed to its own users.
 * - **Identity** (`claims.ts`). A newcomer claims its userId before the upgrade (`CLAIM`, set if
 *   free or held by a dead node). Held by a live node: that node is asked over its inbox to hand
 *   the session over (same token) or to probe its socket (no token), exactly as one process does
 *   it locally.
 * - **Rooms** (`rooms.ts`). ZSET `room:{name}` (members, for counts and lists) and a channel per
 *   room that a node subscribes to while it has a member there: a broadcast is serialized once,
 *   delivered here at once and published once for the other nodes.
 * - **Liveness.** A heartbeat on Redis's clock in ZSET `nodes`; every node sweeps nodes silent
 *   for `deadAfterMs` in one script, which frees their users and tells every node on channel
 *   `cluster`, where partners of the dead users get their hangup.
 *
 * Redis unreachable: this node's own users keep talking to each other; what needs Redis rejects
 * with `RedisUnavailableError` and the hub answers `error {code:"unavailable"}`. Writes that failed
 * meanwhile are written again when the link is back, and everything this node holds is
 * registered again when Redis comes back empty or had swept this node as dead.
 */
import { type ClusterAdmin, createClusterAdmin } from '../admin/cluster.ts';
import type { ClusterConfig, HistoryConfig } from '../core/config.ts';
import { createIdClock, type HistoryStore } from '../core/history.ts';
import type { HubSeams } from '../core/hub-api.ts';
import type { Logger } from '../core/log.ts';
import type { HubHost, MatchPool, RoomRegistry, UserDirectory } from '../core/seams.ts';
import { createClaims } from './claims.ts';
import { createRedisEndedCalls } from './ended-calls.ts';
import { createInbox } from './inbox.ts';
import { createRedisHistory } from './redis-history.ts';
import { createRedisPool, type RedisMatchPool } from './redis-pool.ts';
import type { RedisLink, RedisReply } from './redis.ts';
import { createRooms } from './rooms.ts';
import { HEARTBEAT, SWEEP } from './scripts.ts';

export interface ClusterOptions {
  config: ClusterConfig;
  /** `TAKEOVER_PROBE_MS`: how long another node may take to answer a probe, plus a margin. */
  takeoverProbeMs: number;
  log: Logger;
  /** Default: random. */
  nodeId?: string;
}

export interface ClusterNode {
  readonly nodeId: string;
  /** The hub's seams: users, rooms, pool, history and claims in Redis. */
  readonly seams: HubSeams;
  /** What the operator page sees of the cluster (`src/admin/cluster.ts`). */
  readonly admin: ClusterAdmin;
  /**
   * Writes the first heartbeat and subscribes; rejects if Redis is not ready within `timeoutMs`,
   * or is a sharded Redis Cluster (`refuseShardedRedis`).
   */
  start(timeoutMs: number): Promise<void>;
  /** Stops the heartbeat and leaves the cluster (call once this node's sockets are closed). */
  close(): Promise<void>;
}

/**
 * A Redis Cluster (sharded: Redis Cluster, Valkey's cluster mode, a managed "cluster mode
 * enabled") refuses the scripts here, whose keys lie in many hash slots, with CROSSSLOT: every
 * claim, membership and message would fail while the node seemed up. Refused at start instead,
 * saying so. A server that does not answer `INFO cluster` is taken for a single one.
 */
async function refuseShardedRedis(link: RedisLink) {
  const info = await link.send('INFO', 'cluster').catch(() => '');
  if (/^cluster_enabled:1\b/m.test(String(info)))
    throw new Error(
      'REDIS_URL points at a Redis Cluster (cluster_enabled:1): the nodes need one unsharded Redis or Valkey (replicas are fine)',
    );
}

const randomNodeId = () =>
  `n${Date.now().toString(36)}${Math.floor(Math.random() * 2 ** 32).toString(36)}`;

export function createClusterNode(link: RedisLink, options: ClusterOptions): ClusterNode {
  const { config, log } = options;
  const nodeId = options.nodeId ?? config.nodeId ?? randomNodeId();
  const p = config.prefix;
  const key = {
    users: `${p}users`,
    rooms: `${p}rooms`,
    nodes: `${p}nodes`,
    myUsers: `${p}node:${nodeId}:users`,
    myMembers: `${p}node:${nodeId}:members`,
    room: (room: string) => `${p}room:${room}`,
  };
  const channel = {
    inboxPrefix: `${p}inbox:`,
    mine: `${p}inbox:${nodeId}`,
    roomPrefix: `${p}room:`,
    cluster: `${p}cluster`,
  };

  let host: HubHost | undefined;
  let localUsers: UserDirectory | undefined;
  let localRooms: RoomRegistry | undefined;
  let pool: RedisMatchPool | undefined;
  /** History's settings, once the hub has asked for the store (it does when `HISTORY` is on). */
  let historyConfig: HistoryConfig | undefined;
  let historyStore: HistoryStore | undefined;
  let nodesSeen = 0;
  let timers: ReturnType<typeof setInterval>[] = [];
  let closed = false;
  let beaten = false;

  const admin = createClusterAdmin({
    link,
    prefix: p,
    nodeId,
    heartbeatMs: config.heartbeatMs,
    deadAfterMs: config.deadAfterMs,
  });

  const warn = (event: string) => (error: unknown) =>
    log.warn(event, { error: error instanceof Error ? error.message : String(error) });

  const claims = createClaims({
    link,
    nodeId,
    key,
    inboxPrefix: channel.inboxPrefix,
    deadAfterMs: config.deadAfterMs,
    takeoverProbeMs: options.takeoverProbeMs,
    host: () => host,
    warn,
  });
  const inbox = createInbox({
    link,
    prefix: p,
    usersKey: key.users,
    inboxPrefix: channel.inboxPrefix,
    claims,
    host: () => host,
    localUsers: () => localUsers,
    pool: () => pool,
    historyConfig: () => historyConfig,
    nextId: (conversation) => historyStore!.nextId(conversation, Date.now()) as Promise<string>,
    log,
    warn,
  });
  // Routes wait for the end of the turn to go as one script, but never behind a later command
  // (a pool take, a room message): Redis runs the node's commands in the order they were made.
  link.beforeEachCommand(inbox.flush);

  const rooms = createRooms({
    link,
    nodeId,
    key,
    roomPrefix: channel.roomPrefix,
    host: () => host,
    localRooms: () => localRooms,
    warn,
  });

  /**
   * "dead\n{node}\n{user}...\n\n{room}\n{user}...": a node swept, its users, then the rooms they
   * were in (an empty line between: no userId is empty).
   */
  function onCluster(message: string) {
    const lines = message.split('\n');
    const [event, node] = lines;
    if (event !== 'dead' || node === undefined) return;
    const blank = lines.indexOf('', 2);
    const gone = lines.slice(2, blank < 0 ? undefined : blank);
    log.warn('cluster_node_swept', { node, users: gone.length });
    if (node === nodeId) {
      // Swept while away from Redis: everything this node holds is written again.
      void register().catch(warn('cluster_register_failed'));
      return;
    }
    const left: [string, string][] = [];
    for (let i = blank + 1; blank >= 0 && i + 1 < lines.length; i += 2)
      if (lines[i] !== '') left.push([lines[i]!, lines[i + 1]!]);
    host?.usersGone(new Set(gone), left);
  }

  /** Writes everything this node holds again (Redis came back empty, or swept this node). */
  async function register() {
    if (!host) return;
    const writes: Promise<unknown>[] = [];
    claims.rewrite();
    rooms.writeAgain();
    for (const session of [...host.sessions()]) {
      const userId = session.userId;
      writes.push(
        claims.claim(userId, '').then((owner) => {
          // Claimed elsewhere while this node could not say it held the user.
          if (owner !== undefined) host?.evict(userId);
          else for (const room of session.rooms) rooms.write(room, userId, true);
        }),
      );
    }
    if (pool) writes.push(pool.resync());
    await Promise.all(writes);
    log.info('cluster_registered', { node: nodeId, users: writes.length });
  }

  async function beat() {
    claims.claimAgain();
    const added = await link.run(HEARTBEAT, [key.nodes], [nodeId]);
    if (added === 1 && beaten) {
      log.warn('cluster_heartbeat_lost', { node: nodeId });
      await register();
    }
    beaten = true;
  }

  async function sweep() {
    const dead = (await link.run(
      SWEEP,
      [key.nodes],
      [config.deadAfterMs, p, Math.floor(config.deadAfterMs / 2)],
    )) as RedisReply[];
    nodesSeen = (await link.send('ZCARD', key.nodes)) as number;
    if (dead.length > 0) log.warn('cluster_swept', { nodes: dead.join(',') });
  }

  /** The whole cluster's users, rooms and available users, for `GET /stats`. */
  async function figures() {
    const [connections, rooms, available] = await Promise.all([
      link.send('HLEN', key.users),
      link.send('HLEN', key.rooms),
      link.send('ZCARD', `${p}pool`),
    ]);
    return {
      connections: connections as number,
      rooms: rooms as number,
      available: available as number,
    };
  }

  /**
   * History in Redis Streams. Redis away: messages are still named (by this node's clock, which
   * Redis's ids follow closely) so that users of one node keep chatting; they are not kept.
   */
  const history = (config: HistoryConfig): HistoryStore => {
    historyConfig = config;
    const store = createRedisHistory(link, config, { prefix: p });
    const clock = createIdClock();
    const failed = () => host?.metrics.inc('aleatoria_state_failures_total');
    historyStore = {
      namesWhenKept: true,
      nextId: (conversation, now) =>
        (store.nextId(conversation, now) as Promise<string>).catch(() => {
          failed();
          return clock(now);
        }),
      append: (conversation, message, now) =>
        (store.append(conversation, message, now) as Promise<void>).catch(failed),
      read: store.read,
    };
    return historyStore;
  };

  const poolSeam = (_local: MatchPool): MatchPool => {
    pool = createRedisPool(link, { prefix: p, onError: warn('cluster_pool_write_failed') });
    return pool;
  };

  return {
    nodeId,
    admin,
    seams: {
      users: inbox.users,
      rooms: rooms.seam,
      pool: poolSeam,
      history,
      endedCalls: () => createRedisEndedCalls(link, p, warn),
      claims: (hub) => {
        host = hub;
        localUsers = hub.local;
        localRooms = hub.localRooms;
        return claims.seam;
      },
      stats: figures,
      gauges: () => ({
        aleatoria_cluster_nodes: nodesSeen,
        aleatoria_redis_up: link.ready && !link.stalled ? 1 : 0,
      }),
    },
    async start(timeoutMs) {
      link.onMessage((name, message) => {
        if (name === channel.mine) inbox.onMessage(message);
        else if (name === channel.cluster) onCluster(message);
        else if (name.startsWith(channel.roomPrefix))
          rooms.onMessage(name.slice(channel.roomPrefix.length), message);
      });
      link.on('ready', (info) => {
        if (info.first || closed) return;
        void beat()
          .then(() => register())
          .catch(warn('cluster_register_failed'));
      });
      await link.whenReady(timeoutMs);
      await refuseShardedRedis(link);
      await Promise.all([link.subscribe(channel.mine), link.subscribe(channel.cluster)]);
      await beat();
      await sweep().catch(warn('cluster_sweep_failed'));
      // Sweeps are spread over the nodes' phases; any node may sweep any dead one.
      const jitter = Math.floor(Math.random() * config.heartbeatMs);
      timers = [
        setInterval(() => void beat().catch(() => {}), config.heartbeatMs),
        setInterval(() => {
          void sweep().catch(() => {});
          claims.expireAdmitted();
        }, config.heartbeatMs + jitter),
      ];
      for (const timer of timers) (timer as { unref?: () => void }).unref?.();
    },
    async close() {
      closed = true;
      for (const timer of timers) clearInterval(timer);
      pool?.close();
      // Leaving cleanly: nothing of this node is left for a sweep to find.
      await Promise.allSettled([
        admin.stop(),
        link.send('ZREM', key.nodes, nodeId),
        link.send('DEL', key.myUsers, key.myMembers),
      ]);
      await link.close();
    },
  };
}
