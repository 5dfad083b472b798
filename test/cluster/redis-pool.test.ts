/**
 * The shared availability pool against a real redis-server: the exact rank each scripted draw
 * picks, exclusions, atomicity across three nodes, uniformity, and outages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisPool,
  type PoolDraw,
  type RedisMatchPool,
} from '../../src/cluster/redis-pool.ts';
import { type RedisLink, type RedisReply, RedisUnavailableError } from '../../src/cluster/redis.ts';
import { sleep, startRedis, type TestRedis, testLinks, until } from './redis-server.ts';

let redis: TestRedis;
let admin: RedisLink;
let prefixes = 0;

const links = testLinks(() => redis.url);
const openLink = links.open;

/** A fresh key prefix, so every test has a pool of its own in the shared Redis. */
const freshPrefix = () => `t${++prefixes}:`;

/** The pool's members and scores, in rank order. */
async function contents(prefix: string, link = admin): Promise<[string, number][]> {
  const flat = (await link.send('ZRANGE', `${prefix}pool`, 0, -1, 'WITHSCORES')) as string[];
  const pairs: [string, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, Number(flat[i + 1])]);
  return pairs;
}

/** Replaces the pool's contents: `members[k]` at rank k (scores 1000 + k). */
async function seed(prefix: string, members: readonly string[]) {
  await admin.send('DEL', `${prefix}pool`);
  if (members.length > 0)
    await admin.send('ZADD', `${prefix}pool`, ...members.flatMap((m, k) => [1000 + k, m]));
}

/** Pearson's chi-square of `counts` against equal expectations. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

/** The 0.999 quantile of chi-square with 9 degrees of freedom (tables). */
const CHI2_9DF_999 = 27.88;

/**
 * The 0.999 quantile of chi-square with `df` degrees of freedom, by Wilson-Hilferty (within 0.3%
 * from 30 df on; 28.06 for 9 df against the table's 27.88).
 */
function chiSquareQuantile999(df: number): number {
  const z = 3.0902;
  const v = 2 / (9 * df);
  return df * (1 - v + z * Math.sqrt(v)) ** 3;
}

beforeAll(async () => {
  redis = await startRedis();
  admin = await openLink();
});

afterAll(async () => {
  await links.closeAll();
  await redis?.stop();
});

describe('scripted draws', () => {
  const members = ['a', 'b', 'c', 'd', 'e'];

  /** What `draw` picks among `members` (seeded afresh) for the draw `value`. */
  async function pickFor(
    pool: RedisMatchPool,
    prefix: string,
    requester: string,
    exclude: string | undefined,
    value: number,
  ) {
    await seed(prefix, members);
    return (await pool.take(requester, exclude, () => value))?.userId;
  }

  it('maps each eligible rank k to exactly the draws [k/n, (k+1)/n)', async () => {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    const n = members.length;
    for (let k = 0; k < n; k++) {
      expect(await pickFor(pool, prefix, 'req', undefined, k / n)).toBe(members[k]);
      expect(await pickFor(pool, prefix, 'req', undefined, (k + 1) / n - 1e-9)).toBe(members[k]);
    }
    // The largest draws stay in range.
    expect(await pickFor(pool, prefix, 'req', undefined, 1 - 2 ** -53)).toBe('e');
    expect(await pickFor(pool, prefix, 'req', undefined, 1)).toBe('e');
  });

  it.each([
    ['the first member', 'a'],
    ['a middle member', 'c'],
    ['the last member', 'e'],
  ])('steps over an excluded member (%s) at its rank', async (_label, exclude) => {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    const eligible = members.filter((m) => m !== exclude);
    for (const [k, member] of eligible.entries()) {
      expect(await pickFor(pool, prefix, 'req', exclude, k / eligible.length)).toBe(member);
      expect(await pickFor(pool, prefix, 'req', exclude, (k + 1) / eligible.length - 1e-9)).toBe(
        member,
      );
    }
  });

  it.each([
    ['requester before exclude', 'b', 'd'],
    ['requester after exclude', 'd', 'b'],
    ['adjacent', 'c', 'd'],
    ['first and last', 'e', 'a'],
  ])(
    'steps over a requester in the pool and an excluded member (%s)',
    async (_label, requester, exclude) => {
      const prefix = freshPrefix();
      const pool = createRedisPool(admin, { prefix });
      const eligible = members.filter((m) => m !== exclude && m !== requester);
      for (const [k, member] of eligible.entries())
        expect(await pickFor(pool, prefix, requester, exclude, k / eligible.length)).toBe(member);
    },
  );

  it('numbers matches in the order Redis made them, whichever node asks', async () => {
    const prefix = freshPrefix();
    const one = createRedisPool(admin, { prefix });
    const two = createRedisPool(await openLink(), { prefix });
    await seed(prefix, members);
    const numbers = [
      (await two.draw('x', undefined, () => 0)).partner?.match,
      (await one.draw('y', undefined, () => 0)).partner?.match,
      (await two.draw('z', undefined, () => 0)).partner?.match,
    ];
    expect(numbers).toEqual([1, 2, 3]);
    one.close();
    two.close();
  });

  it('takes the requester and the partner out of the pool, and reports the partner since', async () => {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    await seed(prefix, members);
    const draw = await pool.draw('b', 'zzz', () => 0.5);
    expect(draw).toEqual({
      partner: { userId: 'd', since: 1003, match: 1 },
      requesterWasInPool: true,
    });

    expect(await contents(prefix)).toEqual([
      ['a', 1000],
      ['c', 1002],
      ['e', 1004],
    ]);
    expect(pool.size).toBe(3);
  });

  it('takes nothing, and keeps the requester, when nobody else is available', async () => {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    await seed(prefix, []);
    expect(await pool.draw('a', undefined, () => 0.3)).toEqual({
      partner: undefined,
      requesterWasInPool: false,
    });
    await seed(prefix, ['a']);
    expect(await pool.draw('a', undefined, () => 0.3)).toEqual({
      partner: undefined,
      requesterWasInPool: true,
    });
    await seed(prefix, ['a', 'b']);
    expect(await pool.draw('a', 'b', () => 0.99)).toEqual({
      partner: undefined,
      requesterWasInPool: true,
    });
    expect(await contents(prefix)).toEqual([
      ['a', 1000],
      ['b', 1001],
    ]);
  });

  it('never returns the requester or its current peer, over many random draws', async () => {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    const seen = new Set<string>();
    for (let i = 0; i < 300; i++) {
      await seed(prefix, ['x', 'req', 'peer', 'y']);
      const partner = await pool.take('req', 'peer', Math.random);
      expect(partner?.userId).toMatch(/^[xy]$/);
      seen.add(partner!.userId);
    }
    expect([...seen].sort()).toEqual(['x', 'y']);
    await seed(prefix, ['req', 'peer']);
    expect(await pool.take('req', 'peer', Math.random)).toBeUndefined();
    // An exclusion that is the requester itself, or absent, excludes nobody else.
    await seed(prefix, ['req', 'only']);
    expect((await pool.take('req', 'req', () => 0))?.userId).toBe('only');
  });
});

describe('the local mirror and the cluster-wide size', () => {
  it('has() knows this node own available users; size counts every node', async () => {
    const prefix = freshPrefix();
    const one = createRedisPool(await openLink(), { prefix });
    const two = createRedisPool(await openLink(), { prefix });
    one.add('a', 1);
    one.add('b', 2);
    two.add('c', 3);
    // A second add keeps the first since.
    one.add('a', 99);
    await until(async () => (await one.refresh()) === 3, 2000, 'three members');
    expect(one.has('a')).toBe(true);
    expect(one.has('c')).toBe(false);
    expect(two.has('c')).toBe(true);
    expect(await contents(prefix)).toEqual([
      ['a', 1],
      ['b', 2],
      ['c', 3],
    ]);
    one.delete('b');
    await until(() => one.size === 2, 2000, 'size 2 after a delete');
    expect(one.has('b')).toBe(false);
    // `two` takes `one`'s user: `one` hears of it from the pairing (markTaken).
    expect(await two.take('c', undefined, () => 0)).toMatchObject({ userId: 'a', since: 1 });
    expect(two.has('c')).toBe(false);
    expect(two.size).toBe(0);
    one.markTaken('a');
    await until(() => !one.has('a'), 2000, 'a forgotten after markTaken');
    one.close();
    two.close();
  });

  it('keeps a user added again after the take that took it: it is in the pool, and a delete removes it', async () => {
    const prefix = freshPrefix();
    const one = createRedisPool(await openLink(), { prefix });
    const two = createRedisPool(await openLink(), { prefix });
    one.add('u', 1);
    await until(async () => (await one.refresh()) === 1, 2000, 'u in the pool');
    // `two` takes u; u announces itself again before `one` hears of the take.
    expect(await two.take('r', undefined, () => 0)).toMatchObject({ userId: 'u', since: 1 });
    one.add('u', 5);
    one.markTaken('u');
    await until(async () => (await contents(prefix)).length === 1, 2000, 'u back in Redis');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(one.has('u')).toBe(true);
    // Unavailable again: the removal reaches Redis (a user forgotten here would stay there).
    one.delete('u');
    await until(async () => (await contents(prefix)).length === 0, 2000, 'u removed');
    one.close();
    two.close();
  });
});

/** One entry in the pool: a user from its add until a take removes it. */
interface Round {
  readonly userId: string;
  readonly since: number;
  /** Who removed it: the user's own take ("self") or the requester that got it as partner. */
  readonly removedBy: string[];
}

interface SimulationResult {
  takes: number;
  matches: number;
  nobody: number;
  violations: string[];
  rounds: Map<string, Round>;
  msPerTake: number;
}

type Draw = (
  pool: RedisMatchPool,
  link: RedisLink,
  prefix: string,
  requester: string,
  exclude: string | undefined,
) => Promise<PoolDraw>;

const atomicDraw: Draw = (pool, _link, _prefix, requester, exclude) =>
  pool.draw(requester, exclude, Math.random);

/**
 * `users` users spread over the `nodes` pools, each cycling for `durationMs`: enter the pool,
 * wait a little, ask for a partner (excluding a random other user), and again. A ledger of
 * rounds (user, since) records who removed each entry: an entry removed twice is a partner given
 * to two requesters, or a requester matched while also taken.
 */
async function simulate(
  nodes: { pool: RedisMatchPool; link: RedisLink }[],
  prefix: string,
  users: number,
  durationMs: number,
  draw: Draw,
): Promise<SimulationResult> {
  const rounds = new Map<string, Round>();
  const violations: string[] = [];
  const result = { takes: 0, matches: 0, nobody: 0, takeMs: 0 };
  let nextSince = 1_700_000_000_000;
  const names = Array.from({ length: users }, (_, i) => `u${i}`);
  const nodeOf = (userId: string) => nodes[Number(userId.slice(1)) % nodes.length]!;
  const roundKey = (userId: string, since: number) => `${userId}@${since}`;
  const remove = (userId: string, since: number, by: string) => {
    const round = rounds.get(roundKey(userId, since));
    if (!round) violations.push(`${by} removed ${userId}@${since}, which was never added`);
    else {
      round.removedBy.push(by);
      if (round.removedBy.length > 1)
        violations.push(`${userId}@${since} removed by ${round.removedBy.join(' and ')}`);
    }
  };
  const end = Date.now() + durationMs;

  async function cycle(userId: string) {
    const { pool, link } = nodeOf(userId);
    let since: number | undefined;
    while (Date.now() < end) {
      if (since === undefined) {
        since = nextSince++;
        rounds.set(roundKey(userId, since), { userId, since, removedBy: [] });
        // The user's own node writes the add before its take: one connection, in order.
        pool.add(userId, since);
      }
      await sleep(Math.random() * 4);
      const other = names[Math.floor(Math.random() * users)]!;
      const exclude = Math.random() < 0.5 && other !== userId ? other : undefined;
      const started = performance.now();
      const outcome = await draw(pool, link, prefix, userId, exclude);
      result.takeMs += performance.now() - started;
      result.takes++;
      const { partner } = outcome;
      if (partner) {
        result.matches++;
        if (partner.userId === userId) violations.push(`${userId} was given itself`);
        if (partner.userId === exclude)
          violations.push(`${userId} was given ${exclude}, its excluded peer`);
        remove(partner.userId, partner.since, userId);
        // The partner's node hears of the pairing.
        nodeOf(partner.userId).pool.markTaken(partner.userId);
      } else result.nobody++;
      if (outcome.requesterWasInPool) {
        // Removed with a partner; left in the pool (same round) without one.
        if (partner) {
          remove(userId, since, 'self');
          since = undefined;
        }
      } else {
        // Another requester took this entry first: its round is over.
        since = undefined;
      }
      await sleep(Math.random() * 2);
    }
  }

  await Promise.all(names.map(cycle));
  return {
    ...result,
    violations,
    rounds,
    msPerTake: result.takeMs / Math.max(1, result.takes),
  };
}

describe('atomicity across three nodes', () => {
  async function threeNodes(prefix: string) {
    return Promise.all(
      [1, 2, 3].map(async () => {
        const link = await openLink();
        return { link, pool: createRedisPool(link, { prefix }) };
      }),
    );
  }

  it('never gives one entry to two requesters, nor matches a requester already taken; the pool ends consistent', async () => {
    const prefix = freshPrefix();
    const nodes = await threeNodes(prefix);
    const run = await simulate(nodes, prefix, 300, 3000, atomicDraw);
    console.log(
      `3 nodes, 300 users, 3 s: ${run.takes} takes, ${run.matches} matches, ${run.nobody} with nobody, ` +
        `${run.msPerTake.toFixed(2)} ms per take (concurrent), ${run.violations.length} violations`,
    );
    expect(run.violations).toEqual([]);
    expect(run.matches).toBeGreaterThan(1000);
    // Every round nobody removed is in the pool with its since, and nothing else is.
    const open = [...run.rounds.values()]
      .filter((round) => round.removedBy.length === 0)
      .map((round): [string, number] => [round.userId, round.since])
      .sort((a, b) => a[1] - b[1]);
    expect(await contents(prefix)).toEqual(open);
    const size = await nodes[0]!.pool.refresh();
    expect(size).toBe(open.length);
    // Each node's mirror holds exactly its own users still in the pool.
    const inPool = new Set(open.map(([userId]) => userId));
    for (const [i, node] of nodes.entries())
      for (let u = 0; u < 300; u++)
        expect(node.pool.has(`u${u}`)).toBe(u % 3 === i && inPool.has(`u${u}`));
    for (const node of nodes) node.pool.close();
  }, 20_000);

  it('the ledger catches a take done in two round trips (read the rank, then remove)', async () => {
    const prefix = freshPrefix();
    const nodes = await threeNodes(prefix);
    // The race of the original server: read, pick in the client, remove, not atomically.
    const twoStep: Draw = async (_pool, link, prefix, requester, exclude) => {
      const key = `${prefix}pool`;
      const wasIn = (await link.send('ZREM', key, requester)) === 1;
      const all = (await link.send('ZRANGE', key, 0, -1, 'WITHSCORES')) as string[];
      const candidates: [string, number][] = [];
      for (let i = 0; i < all.length; i += 2)
        if (all[i] !== exclude) candidates.push([all[i]!, Number(all[i + 1])]);
      if (candidates.length === 0) {
        if (wasIn) await link.send('ZADD', key, 'NX', 0, requester);
        return { partner: undefined, requesterWasInPool: false };
      }
      const [userId, since] = candidates[Math.floor(Math.random() * candidates.length)]!;
      await link.send('ZREM', key, userId);
      return { partner: { userId, since, match: 0 }, requesterWasInPool: wasIn };
    };
    const run = await simulate(nodes, prefix, 300, 1500, twoStep);
    console.log(
      `two-step take: ${run.takes} takes, ${run.violations.length} violations, e.g. ${run.violations[0]}`,
    );
    expect(run.violations.length).toBeGreaterThan(0);
    for (const node of nodes) node.pool.close();
  }, 20_000);
});

describe('uniformity', () => {
  /** `draws` sequential takes by a requester outside the pool, each partner put back; counts. */
  async function takeCounts(members: readonly string[], draws: number) {
    const prefix = freshPrefix();
    const pool = createRedisPool(admin, { prefix });
    await seed(prefix, members);
    const counts = new Map(members.map((m) => [m, 0]));
    const started = performance.now();
    for (let i = 0; i < draws; i++) {
      const partner = await pool.take('requester', undefined, Math.random);
      counts.set(partner!.userId, counts.get(partner!.userId)! + 1);
      // Back in with its since (written before the next take, on the same connection).
      pool.add(partner!.userId, partner!.since);
    }
    const msPerTake = (performance.now() - started) / draws;
    pool.close();
    return { counts: [...counts.values()], msPerTake };
  }

  it('draws each of 10 members equally often over 20,000 takes (chi-square < 27.88, 9 df, p = 0.999)', async () => {
    const members = Array.from({ length: 10 }, (_, i) => `member-${i}`);
    const { counts, msPerTake } = await takeCounts(members, 20_000);
    const chi2 = chiSquare(counts);
    console.log(
      `10 members, 20000 takes: counts ${counts.join(' ')}, chi-square ${chi2.toFixed(2)} ` +
        `(< ${CHI2_9DF_999}), ${msPerTake.toFixed(3)} ms per take (sequential, loopback)`,
    );
    expect(counts.reduce((a, b) => a + b, 0)).toBe(20_000);
    expect(chi2).toBeLessThan(CHI2_9DF_999);
  }, 20_000);

  /**
   * Why a rank in a sorted set and not SRANDMEMBER: Redis picks a random hashtable bucket (then
   * samples a few keys near it), so members in crowded buckets come up less often. With 10
   * members the table is small enough that the sampling covers it (measured once on Redis 7.0:
   * chi-square 2 to 12 for 9 df, not skewed); from about a hundred members on it is far off
   * (measured once: 100 members, 1,396 for 99 df; 1,000 members, 15,027 for 999 df). 200
   * members are a hashtable set on every Redis 7.x (7.2+ keeps up to 128 in a listpack).
   */
  it('stays uniform over 200 members where SRANDMEMBER on the same members is measurably skewed', async () => {
    const members = Array.from({ length: 200 }, (_, i) => `member-${i}`);
    const draws = 20_000;
    const critical = chiSquareQuantile999(members.length - 1);
    const { counts } = await takeCounts(members, draws);
    const chi2 = chiSquare(counts);

    const setKey = `${freshPrefix()}set`;
    await admin.send('SADD', setKey, ...members);
    const encoding = await admin.send('OBJECT', 'ENCODING', setKey);
    const setCounts = new Map(members.map((m) => [m, 0]));
    for (let batch = 0; batch < draws / 1000; batch++) {
      const picks = await Promise.all(
        Array.from({ length: 1000 }, () => admin.send('SRANDMEMBER', setKey)),
      );
      for (const pick of picks as RedisReply[])
        setCounts.set(String(pick), setCounts.get(String(pick))! + 1);
    }
    const setChi2 = chiSquare([...setCounts.values()]);
    console.log(
      `200 members, ${draws} draws, 0.999 critical ${critical.toFixed(1)} (199 df): ` +
        `take chi-square ${chi2.toFixed(1)}; SRANDMEMBER (${encoding}) chi-square ${setChi2.toFixed(1)}, ` +
        `counts ${Math.min(...setCounts.values())}..${Math.max(...setCounts.values())}`,
    );
    expect(chi2).toBeLessThan(critical);
    expect(encoding).toBe('hashtable');
    expect(setChi2).toBeGreaterThan(critical);
  }, 20_000);
});

describe('outages', () => {
  it('rejects a take with unavailable within 1.5 s while Redis is stopped, and takes nobody', async () => {
    const own = await startRedis();
    try {
      const link = await openLink(own.url);
      const prefix = freshPrefix();
      const pool = createRedisPool(link, { prefix });
      for (const [k, userId] of ['a', 'b', 'c', 'd'].entries()) pool.add(userId, 10 + k);
      // A node that has matched before: its script is cached in Redis, EVALSHA runs as sent.
      expect(await pool.take('d', undefined, () => 0)).toMatchObject({ userId: 'a', since: 10 });
      own.pause();
      const started = Date.now();
      const outcome = await pool.take('b', undefined, () => 0).catch((error: unknown) => error);
      const elapsed = Date.now() - started;
      expect(outcome).toBeInstanceOf(RedisUnavailableError);
      expect((outcome as RedisUnavailableError).code).toBe('unavailable');
      expect(elapsed).toBeLessThan(1500);
      // Fire and forget while stopped: no throw, nothing hangs.
      pool.add('e', 14);
      pool.delete('e');
      expect(pool.has('b')).toBe(true);
      own.resume();
      // Redis runs the stalled take when it wakes, past its deadline: it takes nobody.
      await until(
        () =>
          link.send('PING').then(
            () => true,
            () => false,
          ),
        3000,
        'Redis awake',
      );
      expect(await contents(prefix, link)).toEqual([
        ['b', 11],
        ['c', 12],
      ]);
      expect(await pool.take('b', undefined, () => 0)).toMatchObject({ userId: 'c', since: 12 });
      pool.close();
    } finally {
      await own.stop();
    }
  }, 20_000);

  it('works again after Redis restarts empty: the link reconnects and the node writes its users back', async () => {
    const own = await startRedis();
    try {
      const link = await openLink(own.url);
      const prefix = freshPrefix();
      const pool = createRedisPool(link, { prefix });
      pool.add('a', 1);
      pool.add('b', 2);
      pool.add('c', 3);
      pool.delete('c');
      await until(async () => (await pool.refresh()) === 2, 2000, 'two members');
      const restarted = new Promise<void>((resolve) =>
        link.on('ready', (info) => info.restarted && resolve()),
      );
      await own.restart();
      // Until the link is back: unavailable at once, never a hang. (On a busy machine the link
      // may be back already by the time the new server answers the launcher's PING.)
      if (!link.ready) {
        const during = await pool.take('a', undefined, () => 0).catch((error: unknown) => error);
        expect(during).toBeInstanceOf(RedisUnavailableError);
      }
      pool.add('d', 4);
      await restarted;
      await until(
        async () => (await pool.refresh().catch(() => 0)) === 3,
        3000,
        'the node users written back',
      );
      expect(await contents(prefix, link)).toEqual([
        ['a', 1],
        ['b', 2],
        ['d', 4],
      ]);
      expect(await pool.take('a', undefined, () => 0.99)).toMatchObject({ userId: 'd', since: 4 });
      expect(await contents(prefix, link)).toEqual([['b', 2]]);
      pool.close();
    } finally {
      await own.stop();
    }
  }, 20_000);
});
