/**
 * One node of a cluster sharing state through Redis (7+) or Valkey: the hub's seams
 * (`src/core/seams.ts`) for users, rooms, the pool and userId claims, plus this node's heartbeat
 * and the sweep of dead nodes. The design, keys and failure behaviour: `docs/cluster.md`.
 *
 * - **Users.** HASH `users` names the node holding each userId. A frame for a user of this node
 *   is delivered at once; for a user elsewhere one script (`ROUTE`) reads the holder and
 *   publishes to its inbox channel, `inbox:{node}`, so a DM costs one round trip and a node only
 *   hears what is addressed to its own users.
 * - **Identity.** A newcomer claims its userId before the upgrade (`CLAIM`, set if free or held by
 *   a dead node). Held by a live node: that node is asked over its inbox to hand the session over
 *   (same token) or to probe its socket (no token), exactly as one process does it locally.
 * - **Rooms.** ZSET `room:{name}` (members, for counts and lists) and a channel per room that a
 *   node subscribes to while it has a member there: a broadcast is serialized once, delivered
 *   here at once and published once for the other nodes.
 * - **Liveness.** A heartbeat on Redis's clock in ZSET `nodes`; every node sweeps nodes silent
 *   for `deadAfterMs` in one script, which frees their users and tells every node on channel
 *   `cluster`, where partners of the dead users get their hangup.
 *
 * Redis unreachable: this node's own users keep talking to each other; what needs Redis rejects
 * with `RedisUnavailableError` and the hub answers `error {code:"unavailable"}`. Writes that failed
 * meanwhile are written again when the link is back, and everything this node holds is
 * registered again when Redis comes back empty or had swept this node as dead.
 */
import { createHash } from 'node:crypto';
import type { ClusterConfig, HistoryConfig } from '../core/config.ts';
import { createIdClock, type HistoryStore } from '../core/history.ts';
import type { HubSeams } from '../core/hub-api.ts';
import type { OpenRequest } from '../core/identity.ts';
import type { Logger } from '../core/log.ts';
import type {
  HubHost,
  Keep,
  MatchPool,
  RoomRegistry,
  UserClaims,
  UserDirectory,
  Yield,
} from '../core/seams.ts';
import type { SessionState } from '../core/session.ts';
import { appendArguments, createRedisHistory } from './redis-history.ts';
import { createRedisPool, type RedisMatchPool } from './redis-pool.ts';
import { type RedisArg, type RedisLink, type RedisReply, RedisUnavailableError } from './redis.ts';
import { CLAIM, HEARTBEAT, MEMBERSHIP, RELEASE, ROUTE, SWEEP } from './scripts.ts';

/**
 * How long after it is sent a script that acts for a waiting user may still run (ms, Redis's
 * clock): below the link's 1 s command timeout, after which the user was told `unavailable`.
 */
const SCRIPT_BUDGET_MS = 750;

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
  /** Writes the first heartbeat and subscribes; rejects if Redis is not ready within `timeoutMs`. */
  start(timeoutMs: number): Promise<void>;
  /** Stops the heartbeat and leaves the cluster (call once this node's sockets are closed). */
  close(): Promise<void>;
}

/** What crosses a node's inbox: one letter, then fields separated by newlines. */
const Op = {
  deliver: 'd',
  pair: 'p',
  endPair: 'e',
  ask: 'q',
  answer: 'r',
  evict: 'x',
} as const;

/** A userId's token as it crosses Redis: never the secret itself. */
const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

const randomNodeId = () =>
  `n${Date.now().toString(36)}${Math.floor(Math.random() * 2 ** 32).toString(36)}`;

/** A newcomer's claim as `prepare` settled it, waiting for `open`. */
interface Settled {
  readonly refused: boolean;
  readonly state?: SessionState;
}

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
  /** What `prepare` settled for each upgrade request, for its `open`. */
  const settled = new WeakMap<OpenRequest, Settled>();
  /** UserIds claimed for a newcomer here that has not opened yet, with when. */
  const admitted = new Map<string, number>();
  /** Claims being settled for newcomers here, by userId. */
  const claiming = new Map<string, Promise<void>>();
  /** Questions asked of other nodes (`ask`), by id, waiting for their answers. */
  const asked = new Map<number, (answer: Yield | undefined) => void>();
  let nextQuestion = 0;
  /** Writes that failed while Redis was away, written again when it is back. */
  const unreleased = new Set<string>();
  const unclaimed = new Set<string>();
  const unwritten = new Map<string, { room: string; userId: string; join: boolean }>();
  /** Each room this node has members in: its channel's subscription, settled once subscribed. */
  const subscribing = new Map<string, Promise<void>>();
  let nodesSeen = 0;
  let timers: ReturnType<typeof setInterval>[] = [];
  let closed = false;
  let beaten = false;

  const warn = (event: string) => (error: unknown) =>
    log.warn(event, { error: error instanceof Error ? error.message : String(error) });

  const deadline = () => Math.floor(link.redisNow() + SCRIPT_BUDGET_MS);
  /**
   * Publishes `header` + `frame` to the inbox of whoever holds `userId` (keeping `frame` in history
   * if `keep` and history is on); resolves with whether a node holds the user.
   */
  function route(userId: string, header: string, frame = '', keep?: Keep) {
    const keys = [key.users];
    const args: RedisArg[] = [userId, header, channel.inboxPrefix, deadline(), frame];
    if (keep && historyConfig) {
      const kept = appendArguments(p, historyConfig, keep.conversation, keep.message);
      keys.push(kept.key);
      args.push(kept.args[0], kept.args[1], kept.args[3], kept.args[4]);
    }
    return link.run(ROUTE, keys, args).then((heard) => {
      if (heard === -1) throw new RedisUnavailableError('Redis unavailable: routed too late');
      return (heard as number) > 0;
    });
  }

  const membership = (room: string, userId: string) => `${room}\n${userId}`;
  /** Writes a membership; resolves once written, or failed (then kept to write again). */
  function writeMembership(room: string, userId: string, join: boolean): Promise<void> {
    const member = membership(room, userId);
    unwritten.delete(member);
    return link
      .run(
        MEMBERSHIP,
        [key.room(room), key.myMembers, key.rooms],
        [userId, member, Date.now(), room, join ? '1' : '0'],
      )
      .then(
        () => {},
        (error) => {
          unwritten.set(member, { room, userId, join });
          warn('cluster_membership_failed')(error);
        },
      );
  }

  function release(userId: string) {
    unreleased.delete(userId);
    link.run(RELEASE, [key.users, key.myUsers], [userId, nodeId]).catch((error) => {
      unreleased.add(userId);
      warn('cluster_release_failed')(error);
    });
  }

  let claimCount = 0;
  /**
   * Claims `userId` for this node, replacing the claim `replacing` (another node's that yielded);
   * resolves with the claim of the live node holding it instead, if any.
   */
  const claim = (userId: string, replacing: string) =>
    link
      .run(
        CLAIM,
        [key.users, key.nodes, key.myUsers],
        [userId, `${nodeId}/${(++claimCount).toString(36)}`, replacing, config.deadAfterMs, nodeId],
      )
      .then((owner) => (typeof owner === 'string' ? owner : undefined));
  /** The node of a claim ("{node}/{n}"). */
  const nodeOf = (claimed: string) => claimed.slice(0, claimed.indexOf('/') >>> 0);

  /** Asks `node` to yield `userId` to a newcomer; undefined when it did not answer in time. */
  async function ask(node: string, userId: string, token: string | undefined) {
    const id = ++nextQuestion;
    const question = JSON.stringify({ id, from: nodeId, userId, token: token && digest(token) });
    const answer = new Promise<Yield | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), options.takeoverProbeMs + 1500);
      const settle = (value: Yield | undefined) => {
        clearTimeout(timer);
        asked.delete(id);
        resolve(value);
      };
      asked.set(id, settle);
    });
    const heard = await link
      .send('PUBLISH', `${channel.inboxPrefix}${node}`, `${Op.ask}\n${question}`)
      .catch(() => 0);
    // Nobody listens on that inbox: the node is gone, whatever its last heartbeat says.
    if (heard === 0) asked.get(id)?.(undefined);
    return answer;
  }

  async function settle(request: OpenRequest): Promise<Settled> {
    const { userId, token } = request;
    const owner = await claim(userId, '');
    if (owner === undefined) return { refused: false };
    const holder = nodeOf(owner);
    const answer = await ask(holder, userId, token);
    if (answer?.outcome === 'alive') return { refused: true };
    // Another newcomer may have claimed it meanwhile: only the holder that yielded is replaced.
    if ((await claim(userId, owner)) !== undefined) return { refused: true };
    if (answer === undefined) {
      // The holder never answered: whatever socket it still has is not the user's any more.
      link
        .send('PUBLISH', `${channel.inboxPrefix}${holder}`, `${Op.evict}\n${userId}`)
        .catch(() => {});
    }
    return { refused: false, state: answer?.outcome === 'handed' ? answer.state : undefined };
  }

  const claims = (hub: HubHost): UserClaims => {
    host = hub;
    localUsers = hub.local;
    localRooms = hub.localRooms;
    return {
      prepare(request) {
        const { userId } = request;
        const settling = settle(request).then(
          (result) => {
            settled.set(request, result);
            if (!result.refused) admitted.set(userId, Date.now());
          },
          (error) => {
            // Redis away: the newcomer is served here; its claim is written once Redis is back.
            unclaimed.add(userId);
            warn('cluster_claim_failed')(error);
          },
        );
        claiming.set(userId, settling);
        void settling.then(() => {
          if (claiming.get(userId) === settling) claiming.delete(userId);
        });
        return settling;
      },
      open(request) {
        admitted.delete(request.userId);
        const result = settled.get(request);
        if (result === undefined) return { refused: false };
        return result.refused ? { refused: true } : { refused: false, state: result.state };
      },
      released: release,
    };
  };

  const users = (local: UserDirectory): UserDirectory => ({
    deliver(userId, text, keep) {
      if (local.deliver(userId, text, keep)) return true;
      return route(userId, `${Op.deliver}\n${userId}\n`, text, keep);
    },
    pair(userId, partner, announce, match) {
      if (host?.has(userId)) return local.pair(userId, partner, announce, match);
      return route(userId, `${Op.pair}\n${userId}\n${partner}\n${match}\n`, announce);
    },
    endPair(userId, formerPartner, hangup) {
      if (host?.has(userId)) return local.endPair(userId, formerPartner, hangup);
      const header = `${Op.endPair}\n${userId}\n${formerPartner}\n`;
      return route(userId, header, hangup ?? '').then(() => {});
    },
  });

  const rooms = (local: RoomRegistry): RoomRegistry => ({
    get size() {
      return local.size;
    },
    join(room, member) {
      let subscribed = subscribing.get(room);
      if (local.count(room) === 0 || !subscribed) {
        subscribed = link
          .subscribe(`${channel.roomPrefix}${room}`)
          .catch(warn('cluster_subscribe_failed'));
        subscribing.set(room, subscribed);
      }
      local.join(room, member);
      const written = writeMembership(room, member.userId, true);
      return Promise.all([subscribed, written]).then(() => {});
    },
    leave(room, member) {
      local.leave(room, member);
      if (local.count(room) === 0) {
        subscribing.delete(room);
        link.unsubscribe(`${channel.roomPrefix}${room}`).catch(warn('cluster_unsubscribe_failed'));
      }
      return writeMembership(room, member.userId, false);
    },
    broadcast(room, text, except, keep) {
      // Kept (the append goes out first) before any other node can hear it: the link writes
      // commands in order, so a member elsewhere that reads history finds it.
      const reached = local.broadcast(room, text, except, keep);
      link.send('PUBLISH', `${channel.roomPrefix}${room}`, `${nodeId}\n${text}`).catch(() => {
        host?.metrics.inc('aleatoria_state_failures_total');
      });
      return reached;
    },
    count: (room) => link.send('ZCARD', key.room(room)) as Promise<number>,
    members: (room, limit) =>
      link.send('ZRANGE', key.room(room), 0, limit - 1) as Promise<string[]>,
  });

  /** Counts frames delivered here that another node sent (as the hub counts its own). */
  function countOut(text: string, reached: number) {
    if (reached > 0)
      host?.metrics.inc(
        'aleatoria_messages_out_total',
        text.slice(9, text.indexOf('"', 9)),
        reached,
      );
  }

  function onInbox(message: string) {
    const op = message[0];
    const fields = (count: number) => {
      // The last field is the rest of the message (a frame may hold newlines in its strings).
      const parts: string[] = [];
      let from = 2;
      for (let i = 1; i < count; i++) {
        const end = message.indexOf('\n', from);
        parts.push(message.slice(from, end));
        from = end + 1;
      }
      parts.push(message.slice(from));
      return parts;
    };
    switch (op) {
      case Op.deliver: {
        const [userId, text] = fields(2) as [string, string];
        localUsers?.deliver(userId, text);
        return;
      }
      case Op.pair: {
        const [userId, partner, match, announce] = fields(4) as [string, string, string, string];
        pool?.markTaken(userId);
        const found = localUsers?.pair(userId, partner, announce, Number(match)) === true;
        if (!found && host) {
          // Gone between the draw and the pairing: the requester's call is over before it began.
          const hangup = host.envelopes.hangup(userId, partner, 'peer_disconnected');
          route(partner, `${Op.endPair}\n${partner}\n${userId}\n`, hangup).catch(() => {});
        }
        host?.flush();
        return;
      }
      case Op.endPair: {
        const [userId, former, hangup] = fields(3) as [string, string, string];
        localUsers?.endPair(userId, former, hangup === '' ? undefined : hangup);
        host?.flush();
        return;
      }
      case Op.ask: {
        const question = JSON.parse(message.slice(2)) as {
          id: number;
          from: string;
          userId: string;
          token?: string;
        };
        // A claim of this node for the userId may have won in Redis before its answer is back here.
        const answer = (claiming.get(question.userId) ?? Promise.resolve()).then(
          (): Promise<Yield> => {
            // A newcomer here claimed the userId and is about to open: it counts as alive.
            if (admitted.has(question.userId)) return Promise.resolve({ outcome: 'alive' });
            if (!host) return Promise.resolve({ outcome: 'gone' });
            return host.yieldUser(question.userId, (token) => question.token === digest(token));
          },
        );
        void answer
          .then((yielded) => {
            host?.flush();
            return link.send(
              'PUBLISH',
              `${channel.inboxPrefix}${question.from}`,
              `${Op.answer}\n${JSON.stringify({ id: question.id, ...yielded })}`,
            );
          })
          .catch(warn('cluster_answer_failed'));
        return;
      }
      case Op.answer: {
        const { id, ...yielded } = JSON.parse(message.slice(2)) as Yield & { id: number };
        asked.get(id)?.(yielded as Yield);
        return;
      }
      case Op.evict: {
        const [userId] = fields(1) as [string];
        void link
          .send('HGET', key.users, userId)
          .then((owner) => {
            if (typeof owner !== 'string' || nodeOf(owner) !== nodeId) host?.evict(userId);
          })
          .catch(warn('cluster_evict_failed'));
        return;
      }
      default:
        log.warn('cluster_unknown_op', { op });
    }
  }

  function onRoom(room: string, message: string) {
    const cut = message.indexOf('\n');
    // Published by this node: its members had it at once.
    if (message.slice(0, cut) === nodeId || !localRooms) return;
    const text = message.slice(cut + 1);
    countOut(text, localRooms.broadcast(room, text));
  }

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
    unclaimed.clear();
    for (const userId of [...unreleased]) release(userId);
    for (const { room, userId, join } of [...unwritten.values()])
      writeMembership(room, userId, join);
    for (const session of [...host.sessions()]) {
      const userId = session.userId;
      writes.push(
        claim(userId, '').then((owner) => {
          // Claimed elsewhere while this node could not say it held the user.
          if (owner !== undefined) host?.evict(userId);
          else for (const room of session.rooms) writeMembership(room, userId, true);
        }),
      );
    }
    if (pool) writes.push(pool.resync());
    await Promise.all(writes);
    log.info('cluster_registered', { node: nodeId, users: writes.length });
  }

  /** Claims again the userIds whose claim failed, for the users still here. */
  function claimAgain() {
    for (const userId of [...unclaimed]) {
      unclaimed.delete(userId);
      if (!host?.has(userId)) continue;
      claim(userId, '').then(
        (owner) => {
          if (owner !== undefined) host?.evict(userId);
        },
        () => unclaimed.add(userId),
      );
    }
  }

  async function beat() {
    if (unclaimed.size > 0) claimAgain();
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
    return {
      nextId: (conversation, now) =>
        (store.nextId(conversation, now) as Promise<string>).catch(() => {
          failed();
          return clock(now);
        }),
      append: (conversation, message, now) =>
        (store.append(conversation, message, now) as Promise<void>).catch(failed),
      read: store.read,
    };
  };

  const poolSeam = (_local: MatchPool): MatchPool => {
    pool = createRedisPool(link, { prefix: p, onError: warn('cluster_pool_write_failed') });
    return pool;
  };

  return {
    nodeId,
    seams: {
      users,
      rooms,
      pool: poolSeam,
      history,
      claims,
      stats: figures,
      gauges: () => ({
        aleatoria_cluster_nodes: nodesSeen,
        aleatoria_redis_up: link.ready && !link.stalled ? 1 : 0,
      }),
    },
    async start(timeoutMs) {
      link.onMessage((name, message) => {
        if (name === channel.mine) onInbox(message);
        else if (name === channel.cluster) onCluster(message);
        else if (name.startsWith(channel.roomPrefix))
          onRoom(name.slice(channel.roomPrefix.length), message);
      });
      link.on('ready', (info) => {
        if (info.first || closed) return;
        void beat()
          .then(() => register())
          .catch(warn('cluster_register_failed'));
      });
      await link.whenReady(timeoutMs);
      await Promise.all([link.subscribe(channel.mine), link.subscribe(channel.cluster)]);
      await beat();
      await sweep().catch(warn('cluster_sweep_failed'));
      // Sweeps are spread over the nodes' phases; any node may sweep any dead one.
      const jitter = Math.floor(Math.random() * config.heartbeatMs);
      timers = [
        setInterval(() => void beat().catch(() => {}), config.heartbeatMs),
        setInterval(() => {
          void sweep().catch(() => {});
          expireAdmitted();
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
        link.send('ZREM', key.nodes, nodeId),
        link.send('DEL', key.myUsers, key.myMembers),
      ]);
      await link.close();
    },
  };

  /** Drops claims won for newcomers that never opened, so the userId is not held for nobody. */
  function expireAdmitted() {
    const old = Date.now() - 30_000;
    for (const [userId, at] of admitted) {
      if (at > old) continue;
      admitted.delete(userId);
      if (!host?.has(userId)) release(userId);
    }
  }
}
