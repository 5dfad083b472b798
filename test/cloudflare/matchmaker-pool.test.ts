/**
 * A gateway's view of the matchmaker (`createMatchmakerPool`, src/cloudflare/pool-logic.ts)
 * over a fake RPC that runs the real rules: the mirror, writes that never reject and are retried
 * once where that is safe, takes never retried, the size read after the writes. The rules
 * themselves: matchmaker-logic.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  createMatchmakerPool,
  createPoolRules,
  type PoolRules,
  type PoolWrites,
} from '../../src/cloudflare/pool-logic.ts';
import type { MatchmakerRpc } from '../../src/cloudflare/rpc.ts';

/** Storage that keeps nothing: these tests watch the calls, not what the object writes. */
const nowhere: PoolWrites = { add() {}, delete() {}, take() {}, room() {} };

/** Rules holding `userIds` (since 1000 + position). */
function rulesOf(...userIds: string[]): PoolRules {
  const rules = createPoolRules({ members: [], matches: 0, rooms: [], notes: [] }, nowhere);
  for (const [i, userId] of userIds.entries()) rules.add(userId, 1000 + i, 'gateway-9');
  return rules;
}

/** An error as Workers RPC raises it, with its flags. */
function rpcError(flags: { remote?: boolean; overloaded?: boolean; retryable?: boolean } = {}) {
  return Object.assign(new Error('Network connection lost.'), flags);
}

/**
 * The matchmaker behind a gateway's stub: the rules, every call logged. `fail` queues failures
 * for the next calls of a method, each before the call runs or after it ran (the answer lost);
 * `hold` keeps the answers of a method until `release`.
 */
function createFakeMatchmaker(rules = rulesOf()) {
  const calls: string[] = [];
  const failures = new Map<string, { error: Error; ran: boolean }[]>();
  const held = new Map<string, (() => void)[]>();
  let stubs = 0;
  let now = 0;
  const answer = <T>(method: string, run: () => T): Promise<T> => {
    calls.push(method);
    const failure = failures.get(method)?.shift();
    if (failure && !failure.ran) return Promise.reject(failure.error);
    const value = run();
    const settle = failure ? () => Promise.reject(failure.error) : () => Promise.resolve(value);
    const waiting = held.get(method);
    if (!waiting) return settle();
    return new Promise<void>((resolve) => waiting.push(resolve)).then(settle);
  };
  const rpc: MatchmakerRpc = {
    add: (userId, since, gateway) => answer('add', () => rules.add(userId, since, gateway)),
    delete: (userId) => answer('delete', () => rules.delete(userId)),
    take: (requester, exclude, draw) =>
      answer('take', () => rules.take(requester, exclude, draw, now++)),
    size: () => answer('size', () => rules.size),
    roomOccupied: (room, occupied) =>
      answer('roomOccupied', () => rules.roomOccupied(room, occupied)),
    figures: () => answer('figures', () => ({ available: rules.size, rooms: rules.rooms })),
  };
  return {
    rules,
    calls,
    get stubs() {
      return stubs;
    },
    stub: () => {
      stubs++;
      return rpc;
    },
    fail(method: string, error: Error, ran = false) {
      failures.set(method, [...(failures.get(method) ?? []), { error, ran }]);
    },
    hold(method: string) {
      held.set(method, []);
    },
    release(method: string) {
      const waiting = held.get(method) ?? [];
      held.delete(method);
      for (const resolve of waiting) resolve();
    },
  };
}

/** A gateway's pool over `matchmaker`, its reported errors in `errors`. */
function gatewayPool(matchmaker: ReturnType<typeof createFakeMatchmaker>, gateway = 'gateway-0') {
  const errors: unknown[] = [];
  const pool = createMatchmakerPool({
    stub: matchmaker.stub,
    gateway,
    onError: (error) => errors.push(error),
  });
  return { pool, errors };
}

/** Lets the answers already given, and what they set off, run (no timers involved). */
async function settled() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

describe("a gateway's view of the matchmaker", () => {
  it('resolves an add once the matchmaker has it, holds the user in its mirror, then reads the size', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('a', 1000);
    expect(matchmaker.rules.has('a')).toBe(true);
    expect(matchmaker.calls).toStrictEqual(['add', 'size']);
    await settled();
    expect([pool.has('a'), pool.has('b'), pool.size]).toStrictEqual([true, false, 1]);
  });

  it('does not send the add of a session restored on a wake: a user taken while the gateway slept stays taken', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('a', 1000, true);
    await settled();
    expect(matchmaker.calls).toStrictEqual([]);
    expect(pool.has('a')).toBe(true);
    // Its pairing (which woke the gateway) says it was taken.
    pool.markTaken('a');
    expect(pool.has('a')).toBe(false);
    expect(matchmaker.rules.has('a')).toBe(false);
  });

  it('sends every add, even of a user its mirror holds (another gateway may have taken it)', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('a', 1000);
    matchmaker.rules.take('v', undefined, 0, 0);
    await pool.add('a', 2000);
    expect(matchmaker.rules.take('w', undefined, 0, 1)).toMatchObject({ userId: 'a', since: 2000 });
  });

  it('retries a failed add once, never rejects, and reports a second failure', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool, errors } = gatewayPool(matchmaker);
    matchmaker.fail('add', rpcError({ retryable: true }));
    await pool.add('a', 1000);
    expect(matchmaker.rules.has('a')).toBe(true);
    expect(errors).toStrictEqual([]);
    const twice = rpcError();
    matchmaker.fail('add', rpcError());
    matchmaker.fail('add', twice);
    await expect(pool.add('b', 1000)).resolves.toBeUndefined();
    expect(errors).toStrictEqual([twice]);
    expect(matchmaker.calls.filter((call) => call === 'add')).toHaveLength(4);
  });

  it('asks for a new stub after a failed call', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('a', 1);
    await pool.add('b', 2);
    expect(matchmaker.stubs).toBe(1);
    matchmaker.fail('add', rpcError());
    await pool.add('c', 3);
    expect(matchmaker.stubs).toBe(2);
  });

  it('does not retry an overloaded matchmaker, nor a call it refused itself', async () => {
    for (const flags of [{ overloaded: true, retryable: false }, { remote: true }]) {
      const matchmaker = createFakeMatchmaker();
      const { pool, errors } = gatewayPool(matchmaker);
      const error = rpcError(flags);
      matchmaker.fail('add', error);
      await pool.add('a', 1000);
      expect(errors).toStrictEqual([error]);
      expect(matchmaker.calls).toStrictEqual(['add']);
    }
  });

  it('does not retry an add once the user was removed, and removes it', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool, errors } = gatewayPool(matchmaker);
    const error = rpcError();
    matchmaker.fail('add', error, true);
    matchmaker.hold('add');
    const adding = pool.add('a', 1000);
    const removing = pool.delete('a');
    matchmaker.release('add');
    await Promise.all([adding, removing]);
    expect(matchmaker.calls.filter((call) => call !== 'size')).toStrictEqual(['add', 'delete']);
    expect([pool.has('a'), matchmaker.rules.has('a')]).toStrictEqual([false, false]);
    expect(errors).toStrictEqual([error]);
  });

  it('sends no delete for a user it does not hold, and retries a failed one once', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool, errors } = gatewayPool(matchmaker);
    expect(pool.delete('nobody')).toBeUndefined();
    await pool.add('a', 1000);
    matchmaker.fail('delete', rpcError(), true);
    await pool.delete('a');
    expect(matchmaker.calls.filter((call) => call === 'delete')).toHaveLength(2);
    expect([pool.has('a'), matchmaker.rules.has('a'), errors.length]).toStrictEqual([
      false,
      false,
      0,
    ]);
  });

  it("takes with the caller's draw, forgetting the requester and a partner of its own", async () => {
    const matchmaker = createFakeMatchmaker(rulesOf('x', 'y', 'z'));
    const { pool } = gatewayPool(matchmaker);
    await pool.add('r', 1);
    await pool.add('z', 2);
    const draws = [0.99];
    const taken = await pool.take('r', 'y', () => draws.shift()!);
    expect(taken).toStrictEqual({ userId: 'z', since: 1002, match: 1 });
    expect(draws).toStrictEqual([]);
    expect([pool.has('r'), pool.has('z')]).toStrictEqual([false, false]);
    await settled();
    expect(pool.size).toBe(2);
  });

  it('leaves its mirror as it was when nobody else is available', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('r', 1);
    expect(await pool.take('r', undefined, () => 0.5)).toBeUndefined();
    expect([pool.has('r'), matchmaker.rules.has('r')]).toStrictEqual([true, true]);
  });

  it('keeps a requester added again while its take was on its way', async () => {
    const matchmaker = createFakeMatchmaker(rulesOf('a'));
    const { pool } = gatewayPool(matchmaker);
    await pool.add('r', 1);
    matchmaker.hold('take');
    const taking = pool.take('r', undefined, () => 0);
    const adding = pool.add('r', 2);
    matchmaker.release('take');
    await Promise.all([taking, adding]);
    expect([pool.has('r'), matchmaker.rules.has('r')]).toStrictEqual([true, true]);
  });

  it('rejects a take whose call failed, reports it, and never sends it again', async () => {
    for (const ran of [false, true]) {
      const matchmaker = createFakeMatchmaker(rulesOf('a'));
      const { pool, errors } = gatewayPool(matchmaker);
      await pool.add('r', 1);
      const error = rpcError({ retryable: true });
      matchmaker.fail('take', error, ran);
      await expect(pool.take('r', undefined, () => 0)).rejects.toBe(error);
      expect(errors).toStrictEqual([error]);
      expect(matchmaker.calls.filter((call) => call === 'take')).toHaveLength(1);
      // Whether it ran is unknown here: the user stays available (a later delete is harmless).
      expect(pool.has('r')).toBe(true);
    }
  });

  it('forgets a user whose pairing arrived, unless an add of it is still on its way', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    await pool.add('a', 1);
    pool.markTaken('a');
    expect(pool.has('a')).toBe(false);
    matchmaker.hold('add');
    const adding = pool.add('b', 2);
    pool.markTaken('b');
    expect(pool.has('b')).toBe(true);
    matchmaker.release('add');
    await adding;
    pool.markTaken('b');
    expect(pool.has('b')).toBe(false);
  });

  it('reads the size one call at a time, once more after writes that came meanwhile', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool } = gatewayPool(matchmaker);
    matchmaker.hold('size');
    await pool.add('a', 1);
    await pool.add('b', 2);
    await pool.add('c', 3);
    expect(matchmaker.calls.filter((call) => call === 'size')).toHaveLength(1);
    matchmaker.release('size');
    await settled();
    expect(matchmaker.calls.filter((call) => call === 'size')).toHaveLength(2);
    expect(pool.size).toBe(3);
  });

  it('keeps the last size when reading it fails, and reads it again after the next write', async () => {
    const matchmaker = createFakeMatchmaker();
    const { pool, errors } = gatewayPool(matchmaker);
    await pool.add('a', 1);
    await settled();
    matchmaker.fail('size', rpcError());
    await pool.add('b', 2);
    await settled();
    expect([pool.size, errors.length]).toStrictEqual([1, 0]);
    await pool.add('c', 3);
    await settled();
    expect(pool.size).toBe(3);
  });
});
