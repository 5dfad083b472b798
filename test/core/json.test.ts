import { describe, it, expect } from 'vitest';
import { MAX_JSON_DEPTH, parseJson, valueDepthExceeds } from '../../src/core/json.ts';

const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth: number) => '{"a":'.repeat(depth - 1) + '{}' + '}'.repeat(depth - 1);

describe('valueDepthExceeds', () => {
  it('counts arrays and objects alike', () => {
    expect(valueDepthExceeds(JSON.parse(nestedArrays(3)), 3)).toBe(false);
    expect(valueDepthExceeds(JSON.parse(nestedArrays(4)), 3)).toBe(true);
    expect(valueDepthExceeds(JSON.parse(nestedObjects(3)), 3)).toBe(false);
    expect(valueDepthExceeds(JSON.parse(nestedObjects(4)), 3)).toBe(true);
    expect(valueDepthExceeds({ a: [{ b: [1] }] }, 4)).toBe(false);
    expect(valueDepthExceeds({ a: [{ b: [1] }] }, 3)).toBe(true);
  });

  it('measures the deepest point, not the number of containers', () => {
    const wide = Array.from({ length: 100 }, () => [[1]]);
    expect(valueDepthExceeds(wide, 3)).toBe(false);
    expect(valueDepthExceeds([...wide, [[[1]]]], 3)).toBe(true);
  });

  it('takes strings, however many brackets they hold, as leaves', () => {
    expect(valueDepthExceeds({ a: `${'['.repeat(100)}${'{'.repeat(100)}` }, 1)).toBe(false);
  });

  it('walks a key named __proto__ like any other', () => {
    expect(valueDepthExceeds(JSON.parse('{"__proto__":[[[[1]]]]}'), 3)).toBe(true);
  });
});

describe('parseJson', () => {
  it('accepts nesting of exactly MAX_JSON_DEPTH (32)', () => {
    expect(MAX_JSON_DEPTH).toBe(32);
    const result = parseJson(nestedArrays(32));
    expect(result.ok).toBe(true);
    expect(parseJson(nestedObjects(32))).toStrictEqual({
      ok: true,
      value: JSON.parse(nestedObjects(32)),
    });
  });

  it('refuses nesting of 33 with reason "depth"', () => {
    expect(parseJson(nestedArrays(33))).toStrictEqual({ ok: false, reason: 'depth' });
    expect(parseJson(nestedObjects(33))).toStrictEqual({ ok: false, reason: 'depth' });
  });

  it('refuses 50k-deep input without throwing', () => {
    let result: ReturnType<typeof parseJson> | undefined;
    expect(() => {
      result = parseJson(nestedArrays(50_000));
    }).not.toThrow();
    expect(result).toStrictEqual({ ok: false, reason: 'depth' });
    // Unbalanced: not JSON at all.
    expect(parseJson('['.repeat(50_000))).toStrictEqual({ ok: false, reason: 'syntax' });
  });

  it('accepts a wide, shallow frame with more containers than MAX_JSON_DEPTH', () => {
    const wide = JSON.stringify({
      type: 'chat_message',
      payload: { items: Array.from({ length: 100 }, (_, i) => ({ i, tags: [i] })) },
    });
    expect(parseJson(wide)).toStrictEqual({ ok: true, value: JSON.parse(wide) });
  });

  it('checks the depth when brackets inside strings push the count past the limit', () => {
    const text = JSON.stringify({ note: '{['.repeat(40), deep: JSON.parse(nestedArrays(33)) });
    expect(parseJson(text)).toStrictEqual({ ok: false, reason: 'depth' });
    const shallow = JSON.stringify({ note: '{['.repeat(40), ok: [[1]] });
    expect(parseJson(shallow)).toStrictEqual({ ok: true, value: JSON.parse(shallow) });
  });

  it('returns the parsed value for valid JSON', () => {
    expect(parseJson('{"type":"get_rooms","n":[1,2,{"x":null}]}')).toStrictEqual({
      ok: true,
      value: { type: 'get_rooms', n: [1, 2, { x: null }] },
    });
    expect(parseJson('"[[[["')).toStrictEqual({ ok: true, value: '[[[[' });
  });

  it.each([['{'], ['{"a":}'], ["{'a':1}"], [''], ['undefined'], ['{"a":1}}']])(
    'reports %j as a syntax error without throwing',
    (text) => {
      expect(parseJson(text)).toStrictEqual({ ok: false, reason: 'syntax' });
    },
  );
});
