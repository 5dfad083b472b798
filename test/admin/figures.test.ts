/**
 * The operator page's pure parts: `ADMIN_TOKEN` in the configuration, the figures read off a real
 * exposition of `src/core/metrics.ts`, and the largest rooms.
 */
import { describe, expect, it } from 'vitest';
import { figuresFrom, TOP_ROOMS, topRooms } from '../../src/admin/figures.ts';
import { ConfigError, parseConfig } from '../../src/core/config.ts';
import { createMetrics } from '../../src/core/metrics.ts';

describe('ADMIN_TOKEN', () => {
  it('is off unless set, and refused when short', () => {
    expect(parseConfig({}).adminToken).toBeUndefined();
    expect(parseConfig({ ADMIN_TOKEN: '  0123456789abcdef  ' }).adminToken).toBe(
      '0123456789abcdef',
    );
    expect(() => parseConfig({ ADMIN_TOKEN: 'short' })).toThrow(ConfigError);
    expect(() => parseConfig({ ADMIN_TOKEN: 'short' })).toThrow(/ADMIN_TOKEN/);
  });
});

describe('figuresFrom', () => {
  it('reads the gauges, the match counter and the histogram off the exposition', () => {
    const metrics = createMetrics();
    metrics.inc('aleatoria_matches_total', '', 3);
    for (const seconds of [0.05, 0.7, 400]) metrics.observeMatch(seconds);
    const text = metrics.render({
      aleatoria_connections: 7,
      aleatoria_rooms: 2,
      aleatoria_pool_size: 1,
      aleatoria_pairs: 3,
    });
    const figures = figuresFrom({ metrics: text, rooms: [] }, 1234);
    expect(figures).toMatchObject({
      at: 1234,
      connections: 7,
      rooms: 2,
      pool: 1,
      pairs: 3,
      matches: 3,
      history: null,
      nodes: [],
    });
    expect(figures.timeToMatch.count).toBe(3);
    expect(figures.timeToMatch.sum).toBeCloseTo(400.75);
    expect(figures.timeToMatch.buckets.map((bucket) => bucket.count)).toEqual([
      1, 1, 2, 2, 2, 2, 2, 2, 2, 3,
    ]);
    expect(figures.timeToMatch.buckets.at(-1)!.le).toBeNull();
    // What processes cannot add up comes from the shared store when given.
    const shared = figuresFrom({ metrics: text, rooms: [], shared: { rooms: 5, available: 4 } }, 0);
    expect([shared.rooms, shared.pool]).toEqual([5, 4]);
  });

  it('gives each node its row from its own exposition', () => {
    const node = createMetrics();
    node.inc('aleatoria_matches_total');
    const metrics = node.render({ aleatoria_connections: 4, aleatoria_pairs: 1 });
    expect(
      figuresFrom({ metrics, rooms: [], nodes: [{ id: 'a', metrics, ageMs: 120 }] }, 0).nodes,
    ).toEqual([{ id: 'a', connections: 4, pairs: 1, matches: 1, ageMs: 120 }]);
  });
});

describe('topRooms', () => {
  it('keeps the largest rooms, largest first, then by name, without empty ones', () => {
    const counts: [string, number][] = Array.from({ length: 20 }, (_, i) => [`r${i}`, i % 7]);
    const top = topRooms(counts);
    expect(top).toHaveLength(TOP_ROOMS);
    expect(top.slice(0, 3)).toEqual([
      { room: 'r13', members: 6 },
      { room: 'r6', members: 6 },
      { room: 'r12', members: 5 },
    ]);
    expect(topRooms([['empty', 0]])).toEqual([]);
  });
});
