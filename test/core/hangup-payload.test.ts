/**
 * The `hangup` payload rule (src/core/protocol.ts): at most 1 KiB of JSON. It accepts short
 * payloads on an upper bound of their JSON size, without serializing them, and measures the rest
 * on `JSON.stringify`'s output. Differentially, against the rule as it was written before
 * (`!exceedsUtf8Bytes(JSON.stringify(payload), 1024)`): the same verdict, the same issue, and the
 * same throw, for values made near the limit from every kind of JSON value and for values
 * `JSON.parse` never makes.
 */
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { exceedsUtf8Bytes } from '../../src/core/frame.ts';
import { parseClientFrame } from '../../src/core/inbound.ts';
import { Hangup, MAX_HANGUP_PAYLOAD_BYTES } from '../../src/core/protocol.ts';
import { randomSource } from '../random.ts';

const MESSAGE = `at most ${MAX_HANGUP_PAYLOAD_BYTES} bytes of JSON`;
/** The rule as it was: serialize, then measure. */
const reference = v.optional(
  v.custom<unknown>(
    (value) => !exceedsUtf8Bytes(JSON.stringify(value), MAX_HANGUP_PAYLOAD_BYTES),
    MESSAGE,
  ),
);
const payloadRule = Hangup.entries.payload;

type Verdict = { accepted: boolean; issue?: string } | { threw: string };

function verdictOf(schema: v.GenericSchema, value: unknown): Verdict {
  try {
    const result = v.safeParse(schema, value);
    return result.success
      ? { accepted: true }
      : { accepted: false, issue: result.issues[0].message.replace(/ but received[\s\S]*$/, '') };
  } catch (error) {
    return { threw: (error as Error).constructor.name };
  }
}

/** UTF-8 bytes of `value`'s JSON. */
const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value), 'utf8');

type Random = ReturnType<typeof randomSource>;

// One to six bytes of JSON each: plain, escaped, two- and three-byte, a pair, lone surrogates.
const CHARS = [
  'a',
  ' ',
  '"',
  '\\',
  '\n',
  '\u0000',
  '\u001f',
  '\u007f',
  'é',
  '€',
  '😀',
  '\ud800',
  '\udc00',
];
// The longest a double prints is 25 characters (the first); the rest are other extremes.
const NUMBERS = [
  -0.0000012345678901234567,
  -1.2345678901234567e-308,
  1.7976931348623157e308,
  5e-324,
  123456789012345680000,
  -0,
  0,
  1,
  -1,
  0.1,
  1e21,
  1e-7,
  Number.MAX_SAFE_INTEGER,
  NaN,
  Infinity,
];

function text(random: Random, length: number): string {
  const chars = random.pick([['a'], CHARS, ['\u0000'], ['😀'], ['€', 'a']]);
  let out = '';
  while (out.length < length) out += random.pick(chars);
  return out;
}

/** A JSON value of about `size` UTF-16 units of content. */
function jsonValue(random: Random, size: number, depth = 0): unknown {
  switch (depth >= 3 ? random.int(4) : random.int(6)) {
    case 0:
      return text(random, size);
    case 1:
      return random.pick(NUMBERS);
    case 2:
      return random.pick([true, false, null]);
    case 3:
      return text(random, random.int(8));
    case 4: {
      const count = 1 + random.int(40);
      return Array.from({ length: count }, () =>
        jsonValue(random, Math.floor(size / count), depth + 1),
      );
    }
    default: {
      const count = 1 + random.int(6);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < count; i++)
        out[text(random, 1 + random.int(12))] = jsonValue(
          random,
          Math.floor(size / count),
          depth + 1,
        );
      return out;
    }
  }
}

/** `{"reason": "..."}` whose JSON takes exactly `bytes` (a string of `unit`, padded with `a`). */
function reasonOf(bytes: number, unit: string): { reason: string } {
  let reason = '';
  while (jsonBytes({ reason: reason + unit }) <= bytes) reason += unit;
  while (jsonBytes({ reason }) < bytes) reason += 'a';
  return { reason };
}

/** `value` with a non-enumerable own `key`. */
function hidden<T extends object>(value: T, key: string, fn: () => unknown): T {
  return Object.defineProperty(value, key, { value: fn, enumerable: false });
}

describe('hangup payload rule', () => {
  it('decides every JSON value as serializing it does, through the schema and through a frame', () => {
    const random = randomSource(11);
    const values: unknown[] = [];
    for (let i = 0; i < 3000; i++) values.push(jsonValue(random, random.int(1400)));
    // Exactly at, one under and one over the limit, with each kind of character.
    for (const unit of CHARS)
      for (const bytes of [1022, 1023, 1024, 1025, 1026]) {
        values.push(reasonOf(bytes, unit));
        values.push(reasonOf(bytes, unit).reason);
      }
    // Where the bound is tight, each kind of leaf repeated across the limit: a string of six-byte
    // escapes, a key of them, arrays of the longest number, of empty or escaped strings, of
    // booleans and nulls, members with empty keys.
    for (const count of [169, 170, 171, 172]) {
      values.push('\u0000'.repeat(count));
      values.push({ ['\u0000'.repeat(count)]: 0 });
    }
    for (const leaf of [NUMBERS[0], '', '\u0000', 'é', false, true, null, [], {}]) {
      const fits = Math.floor((MAX_HANGUP_PAYLOAD_BYTES - 1) / (jsonBytes(leaf) + 1));
      for (const count of [fits - 1, fits, fits + 1, fits + 2]) {
        values.push(Array(count).fill(leaf));
        values.push(Object.fromEntries(Array.from({ length: count }, (_, i) => [i, leaf])));
      }
    }

    let accepted = 0;
    for (const value of values) {
      const expected = verdictOf(reference, value);
      expect(verdictOf(payloadRule, value), JSON.stringify(value)).toStrictEqual(expected);
      const frame = parseClientFrame(
        JSON.stringify({ type: 'hangup', toUser: 'bob', payload: value }),
      );
      if ('accepted' in expected && expected.accepted) {
        accepted++;
        expect(frame.ok).toBe(true);
      } else expect(frame).toMatchObject({ ok: false, details: `payload: ${MESSAGE}` });
    }
    // Both sides of the limit were exercised.
    expect(accepted).toBeGreaterThan(500);
    expect(values.length - accepted).toBeGreaterThan(500);
  });

  it('decides values JSON.parse never makes as serializing them does (or throws as it did)', () => {
    const cycle: Record<string, unknown> = { reason: 'x' };
    cycle.self = cycle;
    const deep: unknown[] = [];
    let inner = deep;
    for (let i = 0; i < 100_000; i++) inner.push((inner = []));
    class Reason {
      constructor(readonly reason: string) {}
    }
    const values: unknown[] = [
      undefined,
      null,
      () => 'bye',
      Symbol('bye'),
      10n,
      { reason: 10n },
      [10n],
      cycle,
      deep,
      new Date(0),
      new Reason('bye'),
      new Reason('x'.repeat(2000)),
      new Map([['reason', 'x'.repeat(2000)]]),
      { toJSON: () => 'x'.repeat(2000) },
      { toJSON: () => 'short' },
      { reason: 'x', toJSON: 5 },
      Object.assign(Object.create(null), { reason: 'bye' }),
      Object.assign(Object.create({ inherited: 'x'.repeat(2000) }), { reason: 'bye' }),
      [undefined, () => 1, Symbol('s')],
      { skipped: undefined, fn: () => 1, reason: 'bye' },
      { skipped: undefined, padding: 'x'.repeat(1010) },
      Object.assign(new Array(2), { 1: 'hole' }),
      Array(200),
      Array(300),
      Object.assign(['x'.repeat(1000)], { extra: 'x'.repeat(2000) }),
      new String('x'.repeat(2000)),
      new Number(1),
      new Boolean(false),
      Object(10n),
      // A toJSON, toString or valueOf that a walk over the enumerable members would not see.
      hidden({}, 'toJSON', () => 'x'.repeat(2000)),
      hidden(['a'], 'toJSON', () => 'x'.repeat(2000)),
      hidden(new String('a'), 'toString', () => 'x'.repeat(2000)),
      hidden(new Number(1), 'valueOf', () => -1.2345678901234567e-308),
    ];
    for (const value of values)
      expect(verdictOf(payloadRule, value), String(value?.constructor?.name)).toStrictEqual(
        verdictOf(reference, value),
      );
  });
});
