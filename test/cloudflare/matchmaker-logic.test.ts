/**
 * The rules the one MatchmakerObject runs (src/cloudflare/pool-logic.ts), without workerd,
 * held to the Redis pool's semantics with scripted draws and a fake clock: the pick by position,
 * exclusions, numbering, "taken by" notes and `preempted`, restarts from what was written, a
 * failed write changing nothing. A gateway's side: matchmaker-pool.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  checkRoom,
  checkGateway,
  checkSince,
  checkUserId,
  clampDraw,
  createPoolRules,
  type Member,
  type PoolRules,
  type PoolWrites,
  type SavedPool,
  TAKEN_NOTE_MS,
  type TakenNote,
  type TakeWrite,
} from '../../src/cloudflare/pool-logic.ts';
import { mulberry32 as seeded } from '../random.ts';

/** What the object's SQLite would hold, written the way its `PoolWrites` write it. */
function createStore() {
  const members = new Map<string, Member>();
  const notes = new Map<string, TakenNote>();
  const takes: TakeWrite[] = [];
  const state = { matches: 0, rooms: new Set<string>(), writes: 0, fail: false };
  const writes: PoolWrites = {
    add(member) {
      if (state.fail) throw new Error('disk full');
      state.writes++;
      if (!members.has(member.userId)) members.set(member.userId, member);
    },
    delete(userId) {
      if (state.fail) throw new Error('disk full');
      state.writes++;
      members.delete(userId);
    },
    take(write) {
      if (state.fail) throw new Error('disk full');
      state.writes++;
      takes.push(write);
      if (write.requester !== undefined) members.delete(write.requester);
      members.delete(write.partner);
      state.matches = write.match;
      notes.set(write.partner, write.note);
      if (write.expireUpTo !== undefined)
        for (const [userId, note] of notes) if (note.at <= write.expireUpTo) notes.delete(userId);
    },
    room(room, occupied) {
      state.writes++;
      if (occupied) state.rooms.add(room);
      else state.rooms.delete(room);
    },
  };
  /** What a new instance reads back at `now`, as the object's constructor does. */
  const saved = (now: number): SavedPool => ({
    members: [...members.values()],
    matches: state.matches,
    rooms: [...state.rooms],
    notes: [...notes]
      .filter(([, note]) => note.at > now - TAKEN_NOTE_MS)
      .sort(([, a], [, b]) => a.at - b.at),
  });
  return { members, notes, takes, state, writes, saved };
}

type Store = ReturnType<typeof createStore>;

/** Rules over a fresh store holding `userIds` (since 1000 + position, gateway-0). */
function rulesOf(...userIds: string[]): { rules: PoolRules; store: Store } {
  const store = createStore();
  const rules = createPoolRules(store.saved(0), store.writes);
  for (const [i, userId] of userIds.entries()) rules.add(userId, 1000 + i, 'gateway-0');
  return { rules, store };
}

/** Pearson's chi-square of `counts` against equal expectations. */
function chiSquare(counts: readonly number[]): number {
  const total = counts.reduce((a, b) => a + b, 0);
  const expected = total / counts.length;
  return counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
}

/** The 0.999 quantile of chi-square with 9 degrees of freedom (tables). */
const CHI2_9DF_999 = 27.88;

describe('matchmaker rules: the pick', () => {
  it('gives each eligible member an equal slice of [0,1), never the requester or the excluded', () => {
    const counts: Record<string, number> = {};
    const steps = 50;
    for (let i = 0; i < steps; i++) {
      const { rules } = rulesOf('a', 'r', 'b', 'c', 'x', 'd', 'e');
      const taken = rules.take('r', 'x', i / steps, 0);
      counts[taken!.userId] = (counts[taken!.userId] ?? 0) + 1;
    }
    expect(counts).toStrictEqual({ a: 10, b: 10, c: 10, d: 10, e: 10 });
  });

  it('draws each of 10 eligible members equally often over 20,000 seeded takes (chi-square < 27.88, 9 df, p = 0.999)', () => {
    const members = Array.from({ length: 10 }, (_, i) => `m${i}`);
    const { rules } = rulesOf(...members, 'r', 'x');
    const random = seeded(14);
    const counts = new Map(members.map((m) => [m, 0]));
    for (let i = 0; i < 20_000; i++) {
      const taken = rules.take('r', 'x', random(), i)!;
      counts.set(taken.userId, counts.get(taken.userId)! + 1);
      // Both come back, at the end of the array: positions churn as they do in service.
      rules.add(taken.userId, i, 'gateway-1');
      rules.add('r', i, 'gateway-0');
    }
    expect([...counts.keys()].sort()).toStrictEqual(members);
    expect(chiSquare([...counts.values()])).toBeLessThan(CHI2_9DF_999);
  });

  it('never takes the requester or the excluded member, whatever the draw', () => {
    const draws = [0, 0.5, 1 - 2 ** -53, 1, 2, -1, Number.NaN, Infinity, -Infinity];
    for (let size = 1; size <= 6; size++)
      for (const requesterIn of [true, false])
        for (const excludeIn of [true, false])
          for (const draw of draws) {
            const others = Array.from({ length: size }, (_, i) => `u${i}`);
            const { rules } = rulesOf(
              ...others,
              ...(requesterIn ? ['r'] : []),
              ...(excludeIn ? ['x'] : []),
            );
            const taken = rules.take('r', 'x', draw, 0);
            expect(others).toContain(taken?.userId);
            expect(rules.has('r')).toBe(false);
            expect(rules.has('x')).toBe(excludeIn);
            expect(rules.size).toBe(size - 1 + (excludeIn ? 1 : 0));
          }
  });

  it('takes nobody, numbers nothing and writes nothing when nobody else is available', () => {
    for (const members of [[], ['r'], ['x'], ['r', 'x']]) {
      const { rules, store } = rulesOf(...members);
      const writes = store.state.writes;
      expect(rules.take('r', 'x', 0.3, 0)).toBeUndefined();
      expect(rules.size).toBe(members.length);
      expect(rules.matches).toBe(0);
      expect(store.state.writes).toBe(writes);
    }
  });

  it('treats an exclude equal to the requester, or outside the pool, as excluding nobody else', () => {
    expect(rulesOf('r', 'a').rules.take('r', 'r', 0, 0)?.userId).toBe('a');
    expect(rulesOf('a').rules.take('r', 'zzz', 0.9, 0)?.userId).toBe('a');
  });
});

describe('matchmaker rules: numbering and entry times', () => {
  it('numbers matches 1, 2, 3 as they are made and goes on from the last after a restart', () => {
    const { rules, store } = rulesOf('a', 'b', 'c', 'd', 'e', 'f');
    expect([0, 1, 2].map(() => rules.take('z', undefined, 0, 0)!.match)).toStrictEqual([1, 2, 3]);
    const again = createPoolRules(store.saved(0), store.writes);
    expect(again.matches).toBe(3);
    expect(again.size).toBe(3);
    expect(again.take('z', undefined, 0, 0)!.match).toBe(4);
  });

  it("reports the partner's first entry time: a second add keeps it and writes nothing", () => {
    const { rules, store } = rulesOf('a');
    const writes = store.state.writes;
    rules.add('a', 9999, 'gateway-3');
    expect(store.state.writes).toBe(writes);
    expect(store.members.get('a')).toStrictEqual({
      userId: 'a',
      since: 1000,
      gateway: 'gateway-0',
    });
    expect(rules.take('r', undefined, 0, 0)).toStrictEqual({ userId: 'a', since: 1000, match: 1 });
  });

  it('writes a delete only for a member', () => {
    const { rules, store } = rulesOf('a');
    const writes = store.state.writes;
    rules.delete('zzz');
    expect(store.state.writes).toBe(writes);
    rules.delete('a');
    expect(rules.has('a')).toBe(false);
    expect(store.members.size).toBe(0);
  });
});

describe('matchmaker rules: taken-by notes and preempted', () => {
  /** `v` takes `u` at time 0 (match 1); `w` stays in the pool. */
  function vTookU() {
    const { rules, store } = rulesOf('u', 'w');
    expect(rules.take('v', 'w', 0, 0)).toStrictEqual({ userId: 'u', since: 1000, match: 1 });
    return { rules, store };
  }

  it('tells a requester taken by another request within the minute who took it, and by which match', () => {
    const { rules } = vTookU();
    expect(rules.take('u', undefined, 0, TAKEN_NOTE_MS - 1)).toStrictEqual({
      userId: 'w',
      since: 1001,
      match: 2,
      preempted: { by: 'v', match: 1 },
    });
  });

  it('says nothing of a note 60 s old or older', () => {
    const { rules } = vTookU();
    expect(rules.take('u', undefined, 0, TAKEN_NOTE_MS)).toStrictEqual({
      userId: 'w',
      since: 1001,
      match: 2,
    });
  });

  it('says nothing when the requester was added again after it was taken', () => {
    const { rules } = vTookU();
    rules.add('u', 5, 'gateway-0');
    expect(rules.take('u', undefined, 0, 1)?.preempted).toBeUndefined();
  });

  it('says nothing to a requester nobody took', () => {
    const { rules } = rulesOf('a');
    expect(rules.take('r', undefined, 0, 0)?.preempted).toBeUndefined();
  });

  it('says nothing when nobody else is available, and keeps the note for a later take', () => {
    const { rules } = vTookU();
    rules.delete('w');
    expect(rules.take('u', undefined, 0, 1)).toBeUndefined();
    rules.add('y', 7, 'gateway-2');
    expect(rules.take('u', undefined, 0, 2)?.preempted).toStrictEqual({ by: 'v', match: 1 });
  });

  it('names the latest taker of a user taken twice', () => {
    const { rules } = vTookU();
    rules.add('u', 5, 'gateway-0');
    rules.take('t', 'w', 0, 10);
    expect(rules.take('u', undefined, 0, 20)?.preempted).toStrictEqual({ by: 't', match: 2 });
  });

  it('keeps notes through a restart within the minute, and not past it', () => {
    const { store } = vTookU();
    const soon = createPoolRules(store.saved(TAKEN_NOTE_MS - 1), store.writes);
    expect(soon.take('u', undefined, 0, TAKEN_NOTE_MS - 1)?.preempted).toStrictEqual({
      by: 'v',
      match: 1,
    });
    const late = vTookU().store;
    const after = createPoolRules(late.saved(TAKEN_NOTE_MS), late.writes);
    expect(after.take('u', undefined, 0, TAKEN_NOTE_MS)?.preempted).toBeUndefined();
  });

  it("sweeps expired notes at most once a second, in the take's own write", () => {
    const { rules, store } = rulesOf(...Array.from({ length: 8 }, (_, i) => `m${i}`));
    for (const now of [0, 500, 999, 1000, 61_000, 61_500, 62_000])
      rules.take(`r${now}`, undefined, 0, now);
    expect(store.takes.map((take) => take.expireUpTo)).toStrictEqual([
      -TAKEN_NOTE_MS,
      undefined,
      undefined,
      1000 - TAKEN_NOTE_MS,
      1000,
      undefined,
      2000,
    ]);
    // Taken at 0, 500, 999, 1000 (swept up to 1000 at 61,000) and 61,000 ... 62,000 remain.
    expect([...store.notes.values()].map((note) => note.at)).toStrictEqual([
      61_000, 61_500, 62_000,
    ]);
  });
});

describe('matchmaker rules: a write that fails changes nothing', () => {
  it('leaves the pool, the numbering and the notes as they were when a take cannot be written', () => {
    const { rules, store } = rulesOf('a', 'b');
    store.state.fail = true;
    expect(() => rules.take('a', undefined, 0, 0)).toThrow('disk full');
    expect([rules.size, rules.matches, rules.has('a'), rules.has('b')]).toStrictEqual([
      2,
      0,
      true,
      true,
    ]);
    store.state.fail = false;
    expect(rules.take('a', undefined, 0, 0)).toStrictEqual({ userId: 'b', since: 1001, match: 1 });
  });

  it('keeps out a member whose add cannot be written, and in one whose delete cannot', () => {
    const { rules, store } = rulesOf('a');
    store.state.fail = true;
    expect(() => rules.add('b', 1, 'gateway-0')).toThrow('disk full');
    expect(() => rules.delete('a')).toThrow('disk full');
    expect([rules.has('a'), rules.has('b'), rules.size]).toStrictEqual([true, false, 1]);
  });
});

describe('matchmaker rules: rooms with members', () => {
  it('counts rooms by name: a repeat changes nothing, writing only changes, through a restart', () => {
    const { rules, store } = rulesOf();
    rules.roomOccupied('lobby', true);
    rules.roomOccupied('lobby', true);
    rules.roomOccupied('music', true);
    rules.roomOccupied('music', false);
    rules.roomOccupied('music', false);
    rules.roomOccupied('never', false);
    expect(rules.rooms).toBe(1);
    expect(store.state.writes).toBe(3);
    const again = createPoolRules(store.saved(0), store.writes);
    expect(again.rooms).toBe(1);
    again.roomOccupied('lobby', false);
    expect(again.rooms).toBe(0);
  });
});

describe('matchmaker rules: what a gateway may send', () => {
  it('turns any draw into a position in [0, 1)', () => {
    expect(
      [0, 0.25, -0.5, 1, 7, Number.NaN, Infinity, '0.5', undefined].map(clampDraw),
    ).toStrictEqual([0, 0.25, 0, 1 - 2 ** -53, 1 - 2 ** -53, 0, 1 - 2 ** -53, 0, 0]);
  });

  it('accepts userIds the protocol accepts and refuses anything else', () => {
    expect(checkUserId('guest-1a2b', 'userId')).toBe('guest-1a2b');
    expect(checkUserId('x'.repeat(128), 'userId')).toHaveLength(128);
    for (const bad of ['', 'x'.repeat(129), 'a\nb', 42, undefined, null, { id: 'a' }])
      expect(() => checkUserId(bad, 'requester')).toThrow('requester is not a userId');
  });

  it('refuses a gateway name, a time or a room name that is not one', () => {
    expect(checkGateway('gateway-3')).toBe('gateway-3');
    for (const bad of ['', 'g'.repeat(65), 3]) expect(() => checkGateway(bad)).toThrow(TypeError);
    expect(checkSince(1_700_000_000_000)).toBe(1_700_000_000_000);
    for (const bad of [Number.NaN, Infinity, '1', undefined])
      expect(() => checkSince(bad)).toThrow(TypeError);
    expect(checkRoom('Lobby')).toBe('Lobby');
    for (const bad of ['', 'r'.repeat(65), 1, undefined])
      expect(() => checkRoom(bad)).toThrow(TypeError);
  });
});
