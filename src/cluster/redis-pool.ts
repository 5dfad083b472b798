/**
 * The availability pool shared by every node: a `MatchPool` (src/core/seams.ts) on one Redis
 * sorted set, `<prefix>pool`, member the userId, score `since` (when it entered the pool).
 *
 * `take` is one Lua script, so it is atomic across nodes: it counts the eligible members (all but
 * the requester and `exclude`), turns the draw passed in from the hub's `random()` into a rank
 * among them, steps over the ranks of the two skipped members (as `pickAmong` in
 * src/core/pool.ts does by position), reads that rank with ZRANGE and removes the requester and
 * the partner. A pick by rank in a sorted set is uniform; Redis's own SRANDMEMBER / SPOP on a
 * hashtable set is measurably not (test/cluster/redis-pool.test.ts measures both), and a
 * read-then-remove done in two round trips gives one partner to two requesters.
 *
 * `add` and `delete` are fire and forget, written in order on the link's one connection. `has` is
 * this node's own view of its users (a local mirror); `size` is the cluster-wide ZCARD as of the
 * last reply. What this node could not write while Redis was away is written again when the link
 * is back (`resync`, on every ready after the first): its available users with their `since`,
 * and the removals that failed.
 */
import type { MatchPool, Taken } from '../core/seams.ts';
import {
  defineScript,
  type RedisArg,
  type RedisLink,
  type RedisReply,
  RedisUnavailableError,
} from './redis.ts';

/**
 * KEYS[1] the pool, KEYS[2] the match counter, KEYS[3] the prefix of "taken by" keys. ARGV[1]
 * the draw in [0, 1), ARGV[2] a deadline (ms, Redis's clock), ARGV[3] the requester, ARGV[4] the
 * member to exclude (optional).
 * Returns {'late'} past the deadline (nothing done: the caller has given up), {'none', size,
 * requester in the pool (0/1)} when nobody else is available (nothing taken), else {'ok', size,
 * partner, since, requester removed (0/1), the match's number, and "{requester}\n{match}" of the
 * take that took the requester within the last minute, if it was not in the pool}.
 */
const TAKE = defineScript(`
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[2]) then
  return {'late'}
end
local pool = KEYS[1]
local size = redis.call('ZCARD', pool)
local low = redis.call('ZRANK', pool, ARGV[3])
local high = false
if ARGV[4] and ARGV[4] ~= ARGV[3] then high = redis.call('ZRANK', pool, ARGV[4]) end
if not low then
  low, high = high, false
elseif high and high < low then
  low, high = high, low
end
local eligible = size - (low and 1 or 0) - (high and 1 or 0)
if eligible <= 0 then return {'none', size, redis.call('ZSCORE', pool, ARGV[3]) and 1 or 0} end
local at = math.floor(tonumber(ARGV[1]) * eligible)
if at > eligible - 1 then at = eligible - 1 end
if at < 0 then at = 0 end
if low and at >= low then at = at + 1 end
if high and at >= high then at = at + 1 end
local picked = redis.call('ZRANGE', pool, at, at, 'WITHSCORES')
local removed = redis.call('ZREM', pool, ARGV[3])
redis.call('ZREM', pool, picked[1])
local n = redis.call('INCR', KEYS[2])
-- Who took the partner, for a request of its own that runs before it hears of this match.
redis.call('SET', KEYS[3] .. picked[1], ARGV[3] .. '\\n' .. n, 'PX', 60000)
local older = false
if removed == 0 then older = redis.call('GET', KEYS[3] .. ARGV[3]) end
return {'ok', size - 1 - removed, picked[1], picked[2], removed, n, older}
`);

/** `Taken.preempted` from the take script's "{requester}\n{match}", if any. */
function preemption(reply: RedisReply | undefined): Pick<Taken, 'preempted'> {
  if (typeof reply !== 'string') return {};
  const cut = reply.lastIndexOf('\n');
  return { preempted: { by: reply.slice(0, cut), match: Number(reply.slice(cut + 1)) } };
}

export interface PoolDraw {
  /** The partner taken, or undefined when nobody else was available (then nothing was taken). */
  readonly partner: Taken | undefined;
  /**
   * The requester was in the pool when the take ran (then removed with a partner, left there
   * without one). False: it had never been added, or another take had already taken it.
   */
  readonly requesterWasInPool: boolean;
}

export interface RedisMatchPool extends MatchPool {
  take(
    requester: string,
    exclude: string | undefined,
    random: () => number,
  ): Promise<Taken | undefined>;
  /** `take`, also telling whether the requester itself was in the pool. */
  draw(requester: string, exclude: string | undefined, random: () => number): Promise<PoolDraw>;
  /** This node's `userId` was taken by another node's `take`: forget it locally. */
  markTaken(userId: string): void;
  /** Writes this node's available users and failed removals again (done on every reconnection). */
  resync(): Promise<void>;
  /** Reads the cluster-wide size now. */
  refresh(): Promise<number>;
  /** Stops listening to the link (the link itself stays open). */
  close(): void;
}

export interface RedisPoolOptions {
  /** Key prefix, shared by every node of one cluster. Default `aleatoria:`. */
  prefix?: string;
  /**
   * How long after it is sent a `take` may still run (ms, Redis's clock). Past it the script does
   * nothing, so a take that Redis runs after the caller gave up (a stall, SIGSTOP) removes nobody.
   * Keep it below the link's command timeout. Default 750.
   */
  takeBudgetMs?: number;
  /** Failed fire-and-forget writes (add, delete), for logging. Default: ignored. */
  onError?(error: unknown): void;
}

export function createRedisPool(link: RedisLink, options: RedisPoolOptions = {}): RedisMatchPool {
  const key = `${options.prefix ?? 'aleatoria:'}pool`;
  /** Counts the matches made, for their numbers (`Taken.match`). */
  const matchesKey = `${options.prefix ?? 'aleatoria:'}matches`;
  /** `taken:{user}`: who took a user out of the pool, and by which match (a minute). */
  const takenPrefix = `${options.prefix ?? 'aleatoria:'}taken:`;
  const budget = options.takeBudgetMs ?? 750;
  const onError = options.onError ?? (() => {});
  /** This node's available users and their `since`. */
  const local = new Map<string, { since: number; added: number }>();
  /**
   * Counts `add`s. A take or a pairing that tells this node one of its users was taken forgets the
   * user only if it was not added again since the take was asked for: that later add is in Redis
   * after the take, so the user is available again.
   */
  let adds = 0;
  /** Forgets `userId` unless it was added again after the `adds`th add. */
  const forget = (userId: string, asOf: number) => {
    const entry = local.get(userId);
    if (entry && entry.added <= asOf) local.delete(userId);
  };
  /** Users removed here whose ZREM may not have reached Redis, each with its latest attempt. */
  const unremoved = new Map<string, object>();
  let size = 0;

  const setSize = (reply: RedisReply) => {
    if (typeof reply === 'number') size = reply;
  };
  const refresh = () =>
    link.send('ZCARD', key).then((reply) => {
      setSize(reply);
      return size;
    });
  const refreshQuietly = () => {
    refresh().catch(() => {});
  };

  function zadd(userId: string, since: number): Promise<void> {
    return link.send('ZADD', key, 'NX', since, userId).then(() => {}, onError);
  }

  /** ZREM `userId`; the mark stays until this attempt (or a later one, or an add) settles it. */
  function zrem(userId: string): Promise<RedisReply> {
    const attempt = {};
    unremoved.set(userId, attempt);
    return link.send('ZREM', key, userId).then((reply) => {
      if (unremoved.get(userId) === attempt) unremoved.delete(userId);
      return reply;
    });
  }

  async function resync() {
    const writes: Promise<RedisReply>[] = [];
    for (const userId of [...unremoved.keys()]) writes.push(zrem(userId));
    for (const [userId, { since }] of local)
      writes.push(link.send('ZADD', key, 'NX', since, userId));
    const results = await Promise.allSettled(writes);
    refreshQuietly();
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  const offReady = link.on('ready', (info) => {
    if (!info.first) resync().catch(onError);
  });

  async function draw(
    requester: string,
    exclude: string | undefined,
    random: () => number,
  ): Promise<PoolDraw> {
    const asOf = adds;
    const value = random();
    const at = Number.isFinite(value) && value > 0 ? value : 0;
    const args: RedisArg[] = [String(at), String(Math.floor(link.redisNow() + budget)), requester];
    if (exclude !== undefined) args.push(exclude);
    const reply = (await link.run(TAKE, [key, matchesKey, takenPrefix], args)) as RedisReply[];
    switch (reply[0]) {
      case 'ok': {
        setSize(reply[1]!);
        const userId = String(reply[2]);
        forget(requester, asOf);
        forget(userId, asOf);
        return {
          partner: {
            userId,
            since: Number(reply[3]),
            match: Number(reply[5]),
            ...preemption(reply[6]),
          },
          requesterWasInPool: reply[4] === 1,
        };
      }
      case 'none':
        setSize(reply[1]!);
        return { partner: undefined, requesterWasInPool: reply[2] === 1 };
      case 'late':
        throw new RedisUnavailableError('Redis unavailable: the match ran after its deadline');
      default:
        throw new Error(`unexpected reply from the take script: ${JSON.stringify(reply)}`);
    }
  }

  return {
    get size() {
      return size;
    },
    has: (userId) => local.has(userId),
    add(userId, since) {
      local.set(userId, { since: local.get(userId)?.since ?? since, added: ++adds });
      unremoved.delete(userId);
      // Always written, with this `since`: another node's take may have removed this user without
      // this node hearing yet. NX keeps the first `since` of a user still there.
      const written = zadd(userId, since);
      refreshQuietly();
      return written;
    },
    delete(userId) {
      // Not available here (never added, taken, or removed already): nothing to write. Every
      // disconnect asks, so this keeps a round trip off each one.
      if (!local.delete(userId)) return;
      const written = zrem(userId).then(() => {}, onError);
      refreshQuietly();
      return written;
    },
    draw,
    async take(requester, exclude, random) {
      return (await draw(requester, exclude, random)).partner;
    },
    markTaken(userId) {
      // The take ran before this node heard of it: ask Redis, after any add sent before now.
      const asOf = adds;
      link.send('ZSCORE', key, userId).then((score) => {
        if (score === null) forget(userId, asOf);
      }, onError);
    },
    resync,
    refresh,
    close() {
      offReady();
    },
  };
}
