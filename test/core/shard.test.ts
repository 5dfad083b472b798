import { describe, expect, it } from 'vitest';
import { gatewayOf, shardOf } from '../../src/core/shard.ts';

describe('shardOf', () => {
  it('is FNV-1a of the UTF-16 code units: the published test vectors, mod the count', () => {
    // FNV-1a 32-bit: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
    expect(shardOf('', 2 ** 32 - 1)).toBe(0x811c9dc5 % (2 ** 32 - 1));
    expect(shardOf('a', 2 ** 32 - 1)).toBe(0xe40c292c % (2 ** 32 - 1));
    expect(shardOf('foobar', 2 ** 32 - 1)).toBe(0xbf9cf968 % (2 ** 32 - 1));
    expect(gatewayOf('foobar', 8)).toBe(`gateway-${0xbf9cf968 % 8}`);
  });

  it('spreads userIds evenly over the shards (chi-square, 8 shards, 40,000 ids)', () => {
    const shards = 8;
    const counts = new Array<number>(shards).fill(0);
    for (let i = 0; i < 40_000; i++) counts[shardOf(`user-${i}-${(i * 7919) % 1000}`, shards)]!++;
    const expected = 40_000 / shards;
    const chi = counts.reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
    // 7 degrees of freedom: 24.32 is the 0.999 quantile.
    expect(chi).toBeLessThan(24.32);
  });

  it('puts one userId on the same shard every time, and only on one', () => {
    for (const id of ['a', 'user-1', 'é', '😀']) {
      const first = shardOf(id, 4);
      expect(first).toBeGreaterThanOrEqual(0);
      expect(first).toBeLessThan(4);
      expect(shardOf(id, 4)).toBe(first);
    }
  });
});
