import { describe, it, expect } from 'vitest';
import { createAvailabilityPool, type AvailabilityPool } from '../../src/core/pool.ts';

function poolOf(...members: string[]): AvailabilityPool {
  const pool = createAvailabilityPool();
  for (const [i, member] of members.entries()) pool.add(member, 1000 + i);
  return pool;
}

/** The member chosen for each of `steps` evenly spaced draws across [0, 1), counted per member. */
function countPicks(
  pool: AvailabilityPool,
  exclude: (string | undefined)[],
  steps: number,
): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < steps; i++) {
    const picked = pool.pick(() => i / steps, exclude);
    expect(picked).toBeDefined();
    counts[picked!] = (counts[picked!] ?? 0) + 1;
  }
  return counts;
}

describe('availability pool membership', () => {
  it('adds, reports and deletes members, keeping size in step', () => {
    const pool = createAvailabilityPool();
    expect(pool.size).toBe(0);
    pool.add('a', 1);
    pool.add('b', 2);
    expect(pool.size).toBe(2);
    expect(pool.has('a')).toBe(true);
    expect(pool.has('b')).toBe(true);
    expect(pool.has('c')).toBe(false);
    pool.delete('a');
    expect(pool.size).toBe(1);
    expect(pool.has('a')).toBe(false);
    expect(pool.has('b')).toBe(true);
  });

  it('ignores a repeated add and the delete of a non-member', () => {
    const pool = poolOf('a', 'b');
    pool.add('a', 5);
    expect(pool.size).toBe(2);
    expect(pool.since('a')).toBe(1000);
    pool.delete('zzz');
    expect(pool.size).toBe(2);
    expect(pool.members().sort()).toStrictEqual(['a', 'b']);
  });

  it('keeps every other member reachable after deleting from the middle', () => {
    const pool = poolOf('a', 'b', 'c', 'd', 'e');
    pool.delete('b');
    pool.delete('d');
    expect(pool.members().sort()).toStrictEqual(['a', 'c', 'e']);
    expect(countPicks(pool, [], 30)).toStrictEqual({ a: 10, c: 10, e: 10 });
    pool.delete('a');
    pool.delete('c');
    pool.delete('e');
    expect(pool.size).toBe(0);
    expect(pool.members()).toStrictEqual([]);
  });

  it("keeps each member's entry time through the moves that deletes make", () => {
    const pool = poolOf('a', 'b', 'c', 'd', 'e');
    pool.delete('b');
    pool.delete('a');
    expect(pool.since('a')).toBeUndefined();
    expect(pool.since('b')).toBeUndefined();
    expect(pool.since('c')).toBe(1002);
    expect(pool.since('d')).toBe(1003);
    expect(pool.since('e')).toBe(1004);
    pool.add('b', 7);
    pool.delete('c');
    expect(pool.since('b')).toBe(7);
    expect(pool.since('d')).toBe(1003);
    expect(pool.since('e')).toBe(1004);
    for (const member of ['b', 'd', 'e']) pool.delete(member);
    expect(pool.since('d')).toBeUndefined();
    pool.add('d', 9);
    expect(pool.since('d')).toBe(9);
  });
});

describe('availability pool pick', () => {
  it('returns undefined for an empty pool without needing a draw', () => {
    const pool = createAvailabilityPool();
    expect(
      pool.pick(() => {
        throw new Error('no draw expected');
      }, []),
    ).toBeUndefined();
  });

  it('returns undefined when every member is excluded', () => {
    expect(poolOf('a').pick(() => 0, ['a'])).toBeUndefined();
    expect(poolOf('a', 'b').pick(() => 0.99, ['b', 'a'])).toBeUndefined();
  });

  it('picks each member for an equal slice of [0,1) when nothing is excluded', () => {
    expect(countPicks(poolOf('a', 'b', 'c', 'd'), [], 40)).toStrictEqual({
      a: 10,
      b: 10,
      c: 10,
      d: 10,
    });
  });

  it.each([
    ['the first member', ['a']],
    ['a middle member', ['c']],
    ['the last member', ['e']],
  ])(
    'never picks an excluded member (%s) and splits [0,1) evenly among the rest',
    (_label, exclude) => {
      const members = ['a', 'b', 'c', 'd', 'e'];
      const counts = countPicks(poolOf(...members), exclude, 40);
      const expected = Object.fromEntries(
        members.filter((m) => !exclude.includes(m)).map((m) => [m, 10]),
      );
      expect(counts).toStrictEqual(expected);
    },
  );

  it.each([
    ['two adjacent members', ['b', 'c']],
    ['the first and last members', ['a', 'e']],
    ['two members given in reverse order', ['d', 'a']],
    ['the first two members', ['a', 'b']],
    ['the last two members', ['d', 'e']],
  ])(
    'never picks two excluded members (%s) and splits [0,1) evenly among the rest',
    (_label, exclude) => {
      const members = ['a', 'b', 'c', 'd', 'e'];
      const counts = countPicks(poolOf(...members), exclude, 30);
      const expected = Object.fromEntries(
        members.filter((m) => !exclude.includes(m)).map((m) => [m, 10]),
      );
      expect(counts).toStrictEqual(expected);
    },
  );

  it('treats undefined, duplicates and non-members in the exclusion list as no exclusion', () => {
    const counts = countPicks(poolOf('a', 'b', 'c'), [undefined, 'zzz', 'b', 'b'], 20);
    expect(counts).toStrictEqual({ a: 10, c: 10 });
    expect(countPicks(poolOf('a', 'b', 'c'), [undefined, 'zzz'], 30)).toStrictEqual({
      a: 10,
      b: 10,
      c: 10,
    });
  });

  it('never picks any of three or more excluded members and splits [0,1) evenly among the rest', () => {
    const members = ['a', 'b', 'c', 'd', 'e', 'f'];
    const counts = countPicks(poolOf(...members), ['e', 'zzz', 'a', 'c', 'a', undefined], 30);
    expect(counts).toStrictEqual({ b: 10, d: 10, f: 10 });
    expect(poolOf('a', 'b', 'c').pick(() => 0.5, ['c', 'b', 'a'])).toBeUndefined();
  });

  it('maps each eligible member to exactly its slice [k/n, (k+1)/n) of the draw, in pool order', () => {
    const pool = poolOf('a', 'b', 'c', 'd');
    const eligible = pool.members().filter((m) => m !== 'b');
    const n = eligible.length;
    eligible.forEach((member, k) => {
      expect(pool.pick(() => k / n, ['b'])).toBe(member);
      expect(pool.pick(() => (k + 1) / n - 1e-9, ['b'])).toBe(member);
    });
  });

  it('stays in range when random() returns its largest value', () => {
    const pool = poolOf('a', 'b', 'c');
    expect(pool.pick(() => 1 - Number.EPSILON, ['c'])).toBe('b');
    expect(pool.pick(() => 0.9999999999999999, [])).toBe('c');
  });

  it('draws random() exactly once per pick', () => {
    const pool = poolOf('a', 'b', 'c');
    let draws = 0;
    pool.pick(() => {
      draws++;
      return 0.5;
    }, ['a', 'b']);
    expect(draws).toBe(1);
  });

  it('does not remove the picked member (the hub does that when it matches)', () => {
    const pool = poolOf('a', 'b');
    expect(pool.pick(() => 0, [])).toBe('a');
    expect(pool.size).toBe(2);
  });
});
