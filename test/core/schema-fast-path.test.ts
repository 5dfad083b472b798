/**
 * The generated fast path (src/core/schema-fast-path.ts) against valibot, differentially: every
 * client message schema gets thousands of frames, made from the schema itself (values at and past
 * each limit, wrong types, missing and extra fields, nulls, reordered keys, control characters,
 * surrogate pairs) plus hand-written ones, and both must agree on accept/reject and, where they
 * accept, output the same value with the same key order. A schema type added to protocol.ts is
 * sampled here without touching this file.
 */
import * as v from 'valibot';
import { describe, expect, it, vi } from 'vitest';
import { parseClientFrame } from '../../src/core/inbound.ts';
import { CLIENT_MESSAGE_SCHEMAS } from '../../src/core/protocol.ts';
import {
  compileFastPath,
  DECLINED,
  type FastPath,
  fastPathSource,
} from '../../src/core/schema-fast-path.ts';

import { randomSource } from '../random.ts';

const CONFIG = { abortEarly: true } as const;

type Random = ReturnType<typeof randomSource>;

/** Marks an entry to leave out of an object. */
const ABSENT = Symbol('absent');

/** An object with exactly these own keys, in this order (`__proto__` included, as JSON.parse makes it). */
function objectOf(pairs: Array<[string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of pairs)
    Object.defineProperty(out, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  return out;
}

const CHARS = [
  'a',
  'Z',
  '0',
  ' ',
  '-',
  'é',
  '€',
  '😀',
  '\u0000',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\ud800',
  '"',
  '\\',
];

/** A string of `length` UTF-16 units: plain, or with some awkward characters (multi-byte, surrogates, controls). */
function text(random: Random, length: number): string {
  if (length <= 0) return '';
  if (random.chance(0.7)) return 'x'.repeat(length);
  let out = 'x'.repeat(length);
  for (let i = 0; i < 3; i++) {
    const at = random.int(length);
    out = `${out.slice(0, at)}${random.pick(CHARS)}${out.slice(at + 1)}`;
  }
  // A surrogate pair may be cut in two at the end: a lone surrogate is awkward too.
  return out.slice(0, length);
}

/** A value unrelated to the schema at hand. */
function garbage(random: Random, depth = 0): unknown {
  switch (random.int(depth > 2 ? 12 : 16)) {
    case 0:
      return null;
    case 1:
      return undefined;
    case 2:
      return random.pick([
        0,
        -0,
        -1,
        1.5,
        65535,
        65536,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        1e21,
      ]);
    case 3:
      return '';
    case 4:
      return text(random, random.pick([1, 5, 128, 129, 2049]));
    case 5:
      return random.chance(0.5);
    case 6:
      return 'candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host';
    case 7:
      return 'offer';
    case 8:
      return '\u0000';
    case 9:
      return { toString: 'x' };
    case 10:
      return objectOf([['__proto__', { polluted: true }]]);
    case 11:
      return random.int(10);
    case 12:
      return [garbage(random, depth + 1), garbage(random, depth + 1)];
    case 13:
      return objectOf([
        ['candidate', garbage(random, depth + 1)],
        ['sdpMid', garbage(random, depth + 1)],
      ]);
    case 14:
      return objectOf([['content', garbage(random, depth + 1)]]);
    default:
      return objectOf([['reason', text(random, random.pick([3, 1100]))]]);
  }
}

interface Node {
  type: string;
  pipe?: Node[];
  entries?: Record<string, Node>;
  options?: unknown[];
  wrapped?: Node;
  literal?: unknown;
  requirement?: unknown;
}

/** A value for `node`: mostly close to valid, at or just past its limits, sometimes anything. */
function sample(node: Node, random: Random, depth = 0): unknown {
  if (random.chance(0.04) || depth > 6) return garbage(random);
  if (node.pipe) {
    const limits = node.pipe.filter((item) => typeof item.requirement === 'number');
    const base = node.pipe[0]!;
    if (limits.length > 0 && (base.type === 'string' || base.type === 'number')) {
      const limit = random.pick(limits).requirement as number;
      const near = limit + random.pick([-1, 0, 0, 1]);
      if (base.type === 'number') return random.chance(0.8) ? near : random.pick([1.5, -1, 7]);
      // Bytes are counted in UTF-8: a long multi-byte string crosses `maxBytes` well before its length.
      if (random.chance(0.1)) return '€'.repeat(Math.max(0, Math.ceil(near / 3)));
      return text(random, Math.max(0, random.chance(0.7) ? near : random.int(12)));
    }
    return sample(base, random, depth);
  }
  switch (node.type) {
    case 'string':
      return text(random, random.pick([0, 1, 3, 12]));
    case 'number':
      return random.pick([0, 1, 2, -1, 0.5, Number.NaN, 65535]);
    case 'boolean':
      return random.chance(0.5);
    case 'literal':
      return random.chance(0.9) ? node.literal : garbage(random);
    case 'picklist':
      return random.chance(0.85)
        ? random.pick(node.options!)
        : random.pick(['bogus', 'Offer', null, 1]);
    case 'optional':
    case 'nullish':
    case 'nullable':
      if (random.chance(0.25)) return random.chance(0.5) ? null : undefined;
      return sample(node.wrapped!, random, depth + 1);
    case 'union':
      return sample(random.pick(node.options as Node[]), random, depth + 1);
    case 'object':
    case 'loose_object': {
      const pairs: Array<[string, unknown]> = [];
      for (const [key, entry] of Object.entries(node.entries!)) {
        const optional = ['optional', 'nullish'].includes(entry.type);
        if (random.chance(optional ? 0.5 : 0.03)) continue;
        const value = sample(entry, random, depth + 1);
        // An undefined-valued key is present (valibot tests `in`): keep some, drop most.
        if (value === undefined && random.chance(0.8)) continue;
        pairs.push([key, value]);
      }
      if (random.chance(0.3))
        pairs.push([
          random.pick(['extra', 'id', '0', '__proto__', 'constructor', 'prototype', 'toString']),
          garbage(random, depth + 1),
        ]);
      if (random.chance(0.3)) pairs.reverse();
      if (random.chance(0.02)) return pairs.map(([, value]) => value);
      return objectOf(pairs);
    }
    default:
      // custom, unknown, and whatever a later schema uses.
      return random.chance(0.1)
        ? 'x'.repeat(random.pick([1010, 1030]))
        : garbage(random, depth + 1);
  }
}

/** `value` written out with its keys in order and its types, to compare outputs exactly. */
function exact(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(exact).join(',')}]`;
  const proto = Object.getPrototypeOf(value) === Object.prototype ? '' : '(proto)';
  return `${proto}{${Object.keys(value)
    .map((key) => `${JSON.stringify(key)}:${exact((value as Record<string, unknown>)[key])}`)
    .join(',')}}`;
}

/** Both on `input`: the same verdict and, if accepted, the same output. Returns the verdict. */
function agree(schema: v.GenericSchema, fast: FastPath, input: unknown): boolean {
  const reference = v.safeParse(schema, input, CONFIG);
  const output = fast(input);
  const accepted = output !== DECLINED;
  if (accepted !== reference.success || (accepted && exact(output) !== exact(reference.output)))
    expect.fail(
      `fast path ${accepted ? `accepted as ${exact(output)}` : 'declined'}, valibot ${
        reference.success ? `accepted as ${exact(reference.output)}` : 'rejected'
      }: ${exact(input)}`,
    );
  if (accepted) expect(output).toStrictEqual(reference.output);
  return accepted;
}

const HAND_WRITTEN: unknown[] = [
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    messageId: '1',
    payload: {
      candidate: {
        candidate: 'candidate:1 1 udp 1 127.0.0.1 1 typ host',
        sdpMid: '0',
        sdpMLineIndex: 0,
      },
    },
  },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: {
      candidate:
        'candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Ab1c network-cost 999',
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'Ab1c',
    },
  },
  { type: 'webrtc_candidate', toUser: 'bob', payload: null },
  { type: 'webrtc_candidate', toUser: 'bob' },
  { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: '' } },
  { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: null, sdpMid: null } },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: { candidate: { candidate: 'c', sdpMLineIndex: 65536 } },
  },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: { candidate: { candidate: 'c', sdpMLineIndex: 1.5 } },
  },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: { candidate: { candidate: 'c', sdpMLineIndex: -1 } },
  },
  { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: 7 } },
  { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: 'x'.repeat(2049) } },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: { candidate: { candidate: 'x'.repeat(2049) } },
  },
  { type: 'webrtc_candidate', toUser: 'bob', payload: [] },
  { type: 'webrtc_candidate', toUser: 'bob', payload: 'candidate:1' },
  { type: 'webrtc_candidate', toUser: 'b\u0000b', payload: null },
  { type: 'webrtc_candidate', toUser: 'b\u0085b', payload: null },
  { type: 'webrtc_candidate', toUser: '', payload: null },
  { type: 'webrtc_candidate', toUser: 'x'.repeat(129), payload: null },
  {
    type: 'webrtc_candidate',
    toUser: 'x'.repeat(128),
    payload: null,
    fromUser: null,
    incoming: null,
  },
  { type: 'webrtc_candidate', toUser: 'bob', payload: null, incoming: 'yes' },
  {
    type: 'webrtc_candidate',
    toUser: 'bob',
    payload: { extra: 1, candidate: 'c', more: { deep: [1] } },
    extra: true,
  },
  { type: 'webrtc_offer', toUser: 'bob', payload: { type: 'offer', sdp: 'v=0' } },
  { type: 'webrtc_offer', toUser: 'bob', payload: { type: 'Offer', sdp: 'v=0' } },
  { type: 'webrtc_offer', toUser: 'bob', payload: { sdp: '€'.repeat(20_000) } },
  { type: 'webrtc_offer', toUser: 'bob', payload: { sdp: '€'.repeat(20_001) } },
  { type: 'webrtc_answer', toUser: 'bob', payload: { type: null, sdp: '' } },
  { type: 'webrtc_answer', toUser: 'bob', payload: { type: 'answer' } },
  { type: 'chat_message', room: 'Lobby', payload: { content: 'hi' } },
  { type: 'chat_message', toUser: 'bob', payload: { content: 'hi', extra: 1 }, messageId: 'm1' },
  { type: 'chat_message', room: 'Lobby', toUser: 'bob', payload: { content: 'hi' } },
  { type: 'chat_message', payload: { content: 'hi' } },
  { type: 'chat_message', room: null, toUser: 'bob', payload: { content: 'hi' } },
  { type: 'chat_message', room: 'Lobby', payload: { content: '' } },
  { type: 'chat_message', room: 'Lobby', payload: { content: '😀'.repeat(4096) } },
  { type: 'chat_message', room: 'Lobby', payload: { content: '😀'.repeat(4097) } },
  { type: 'chat_message', room: 'Lobby', payload: null },
  { type: 'chat_message', room: 'L\u007fobby', payload: { content: 'hi' } },
  { type: 'hangup', toUser: 'bob', payload: { reason: 'bench' } },
  { type: 'hangup', toUser: 'bob', payload: 'x'.repeat(1022) },
  { type: 'hangup', toUser: 'bob', payload: 'x'.repeat(1023) },
  { type: 'hangup', toUser: 'bob', payload: null },
  { type: 'request_random_peer', messageId: 'q1' },
  { type: 'request_random_peer', payload: { currentPeerId: '' } },
  { type: 'request_random_peer', payload: { currentPeerId: 'a\u0001' } },
  { type: 'request_random_peer', payload: [] },
  { type: 'user_available_webrtc', payload: { anything: [1, 2] } },
  { type: 'user_available_webrtc', payload: 'x' },
  { type: 'join_room', room: 'r'.repeat(64) },
  { type: 'join_room', room: 'r'.repeat(65) },
  { type: 'get_rooms', messageId: 'x'.repeat(129) },
  JSON.parse(
    '{"type":"get_rooms","payload":{"__proto__":{"polluted":true},"constructor":1,"a":2}}',
  ),
];

describe('the generated fast path', () => {
  it('exists for every client message type on this runtime', () => {
    for (const schema of CLIENT_MESSAGE_SCHEMAS.values())
      expect(compileFastPath(schema)).toBeTypeOf('function');
  });

  it('agrees with valibot on hand-written frames of every shape', () => {
    let accepted = 0;
    for (const input of HAND_WRITTEN) {
      const type = (input as { type: string }).type;
      const schema = CLIENT_MESSAGE_SCHEMAS.get(type)!;
      if (agree(schema, compileFastPath(schema)!, input)) accepted++;
    }
    expect(accepted).toBeGreaterThan(15);
    expect(accepted).toBeLessThan(HAND_WRITTEN.length - 15);
  });

  it.each([...CLIENT_MESSAGE_SCHEMAS.keys()])(
    'agrees with valibot on 3,000 frames made from the %s schema',
    (type) => {
      const schema = CLIENT_MESSAGE_SCHEMAS.get(type)!;
      const fast = compileFastPath(schema)!;
      const random = randomSource([...type].reduce((sum, c) => sum * 31 + c.charCodeAt(0), 7));
      let accepted = 0;
      const runs = 3000;
      for (let i = 0; i < runs; i++) {
        const input = sample(schema as unknown as Node, random);
        if (agree(schema, fast, input)) accepted++;
        // The same frame as a client sends it: through JSON (which drops undefined and NaN).
        const json = JSON.stringify(input);
        if (json !== undefined) agree(schema, fast, JSON.parse(json));
      }
      // Both verdicts, many times each: the samples reach past the schema's edges on both sides.
      expect(accepted).toBeGreaterThan(runs * 0.1);
      expect(accepted).toBeLessThan(runs * 0.9);
    },
  );

  it('mirrors each kind it generates code for, where the protocol does not tell them apart', () => {
    // Bare numbers (NaN), optional vs nullish, union order with overlapping options, literals.
    const schema = v.object({
      n: v.optional(v.number()),
      o: v.optional(v.string()),
      u: v.optional(
        v.union([v.looseObject({ a: v.string() }), v.object({ a: v.string(), b: v.number() })]),
      ),
      l: v.optional(v.union([v.literal(0), v.literal(Number.NaN), v.literal(true)])),
      p: v.optional(v.picklist([1, 'one', Number.NaN])),
      m: v.pipe(
        v.unknown(),
        v.check((value) => value !== 'forbidden'),
      ),
    });
    const fast = compileFastPath(schema)!;
    const random = randomSource(3);
    const values = [ABSENT, null, undefined, Number.NaN, 0, -0, 1, 'one', true, 'forbidden'];
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const u = random.pick([ABSENT, { a: 'x' }, { a: 'x', b: 1, c: 2 }, { b: 1 }, 'a']);
      const input = objectOf(
        [
          ['n', random.pick(values)],
          ['o', random.pick([...values, 's'])],
          ['u', u],
          ['l', random.pick(values)],
          ['p', random.pick(values)],
          ['m', random.pick(values)],
        ].filter(([, value]) => value !== ABSENT) as Array<[string, unknown]>,
      );
      if (agree(schema, fast, input)) accepted++;
    }
    expect(accepted).toBeGreaterThan(20);
    expect(accepted).toBeLessThan(2980);
  });

  it('hands what it does not mirror to valibot (defaults, transformations, strict objects, variants)', () => {
    const schema = v.object({
      a: v.optional(v.string(), 'fallback-default'),
      b: v.pipe(
        v.string(),
        v.transform((s) => s.length),
        v.minValue(2),
      ),
      c: v.nullish(v.strictObject({ d: v.number() })),
      e: v.optional(
        v.variant('k', [
          v.object({ k: v.literal('x') }),
          v.object({ k: v.literal('y'), n: v.number() }),
        ]),
      ),
      f: v.optional(v.pipe(v.string(), v.email())),
    });
    const fast = compileFastPath(schema)!;
    const random = randomSource(11);
    let accepted = 0;
    for (let i = 0; i < 2000; i++) {
      const input = objectOf(
        [
          ['a', random.pick([ABSENT, 'x', 1, undefined])],
          ['b', random.pick(['', 'ab', 'abc', 3, ABSENT])],
          ['c', random.pick([ABSENT, null, { d: 1 }, { d: 1, z: 2 }, { d: '1' }])],
          ['e', random.pick([ABSENT, { k: 'x' }, { k: 'y', n: 1 }, { k: 'y' }, { k: 'z' }])],
          ['f', random.pick([ABSENT, 'a@b.example', 'nope'])],
        ].filter(([, value]) => value !== ABSENT) as Array<[string, unknown]>,
      );
      if (agree(schema, fast, input)) accepted++;
    }
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(1900);
  });

  it('writes field names as string literals, never as code', () => {
    const schema = v.looseObject({
      'a"];throw 1;//': v.string(),
      '\u2028': v.optional(v.number()),
    });
    expect(fastPathSource(schema)).toContain(JSON.stringify('a"];throw 1;//'));
    const fast = compileFastPath(schema)!;
    agree(schema, fast, { 'a"];throw 1;//': 'ok', '\u2028': 1, more: 2 });
    agree(schema, fast, { '\u2028': 1 });
  });

  it('is absent where the runtime forbids generating code, and valibot decides alone', () => {
    vi.stubGlobal('Function', () => {
      throw new EvalError('Code generation from strings disallowed for this context');
    });
    try {
      expect(compileFastPath(CLIENT_MESSAGE_SCHEMAS.get('hangup')!)).toBeUndefined();
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('parseClientFrame with the fast path', () => {
  it('answers every frame as it does with fast paths where none could be generated (Workers)', async () => {
    vi.resetModules();
    vi.stubGlobal('Function', () => {
      throw new EvalError('Code generation from strings disallowed for this context');
    });
    let valibotOnly: typeof parseClientFrame;
    try {
      ({ parseClientFrame: valibotOnly } = await import('../../src/core/inbound.ts'));
    } finally {
      vi.unstubAllGlobals();
    }
    const random = randomSource(9);
    for (const [type, schema] of CLIENT_MESSAGE_SCHEMAS) {
      for (let i = 0; i < 100; i++) {
        const json = JSON.stringify(sample(schema as unknown as Node, random));
        const text = json?.startsWith('{')
          ? json
          : `{"type":"${type}","payload":${json ?? 'null'}}`;
        const expected = parseClientFrame(text);
        const actual = valibotOnly(text);
        expect(exact(actual)).toBe(exact(expected));
      }
    }
  });

  it('gives what valibot alone gives for frames as the bench and clients send them', () => {
    const random = randomSource(5);
    for (const [type, schema] of CLIENT_MESSAGE_SCHEMAS) {
      for (let i = 0; i < 300; i++) {
        const json = JSON.stringify(sample(schema as unknown as Node, random));
        if (json === undefined) continue;
        const text = json.startsWith('{') ? json : `{"type":"${type}","payload":${json}}`;
        const result = parseClientFrame(text);
        const reference = v.safeParse(schema, JSON.parse(text), CONFIG);
        // Frames whose `type` was mutated go to another schema or none: only this one's verdict counts.
        if (JSON.parse(text)?.type !== type) continue;
        expect(result.ok).toBe(reference.success);
        if (result.ok) expect(exact(result.message)).toBe(exact(reference.output));
      }
    }
  });
});
