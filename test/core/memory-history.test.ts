import { describe, expect, it } from 'vitest';
import { createIdClock, ID_DIGITS, idAt, timeOfId } from '../../src/core/history.ts';
import { mulberry32 as random } from '../random.ts';
import {
  createMemoryHistory,
  type MemoryHistory,
  type MemoryHistoryOptions,
  RECORD_HEADER_BYTES,
} from '../../src/core/memory-history.ts';

const T = Date.UTC(2025, 0, 1);
const HOUR = 3_600_000;

function storeOf(options: Partial<MemoryHistoryOptions> = {}): MemoryHistory {
  return createMemoryHistory({ limit: 1000, ttlMs: 24 * HOUR, maxBytes: 1 << 24, ...options });
}

/** Appends `text` to `conversation` at `now` with a fresh id; returns the id. */
function say(store: MemoryHistory, conversation: string, now: number, text = `text@${now}`) {
  const id = store.nextId(conversation, now);
  store.append(conversation, { id, text }, now);
  return id;
}

const encoder = new TextEncoder();

/** The arena bytes of a record of `text`: its header, then its UTF-8 padded to 8 bytes. */
const recordBytes = (text: string) =>
  RECORD_HEADER_BYTES + Math.ceil(encoder.encode(text).length / 8) * 8;

const ids = (messages: { id: string }[]) => messages.map((message) => message.id);

/** One, two, three and four UTF-8 bytes, and a ZWJ sequence of several code points. */
const PIECES = ['a', 'Z', ' ', '"', '\\', 'é', 'ß', 'ü', '中', '€', '😀', '🇫🇷', '🧑‍💻'];

function textOf(next: () => number, maxPieces: number) {
  let text = '';
  const pieces = Math.floor(next() * (maxPieces + 1));
  for (let i = 0; i < pieces; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

describe('memory history ids', () => {
  it('increase within one millisecond, across milliseconds and across conversations', () => {
    const store = storeOf();
    const given = [
      store.nextId('r:a', T),
      store.nextId('r:a', T),
      store.nextId('r:b', T),
      store.nextId('r:a', T + 1),
      store.nextId('r:b', T - 5),
    ];
    expect(given.every((id) => id.length === ID_DIGITS)).toBe(true);
    expect([...given].sort()).toEqual(given);
    expect(new Set(given).size).toBe(given.length);
    expect(given.slice(0, 3).map(timeOfId)).toEqual([T, T, T]);
    expect(timeOfId(given[3]!)).toBe(T + 1);
  });

  it('continue past `after` from a clock created with it', () => {
    const after = idAt(T + 10);
    const clock = createIdClock(after);
    const next = clock(T);
    expect(next > after).toBe(true);
    expect(clock(T + 10) > next).toBe(true);
  });

  it('read back with all 16 digits, even from a clock near 1970', () => {
    const store = storeOf();
    const id = say(store, 'r:a', 5);
    expect(id).toBe('0000000000005000');
    expect(ids(store.read('r:a', undefined, 10, 6))).toEqual([id]);
  });
});

describe('memory history reads', () => {
  it('answer newest first, only from their conversation', () => {
    const store = storeOf();
    const a = [say(store, 'r:a', T), say(store, 'r:a', T), say(store, 'r:a', T + 1)];
    say(store, 'r:b', T + 1);
    const found = store.read('r:a', undefined, 10, T + 2);
    expect(ids(found)).toEqual([...a].reverse());
    expect(found[0]).toEqual({ id: a[2], text: `text@${T + 1}` });
    expect(ids(store.read('r:a', undefined, 2, T + 2))).toEqual([a[2], a[1]]);
    expect(store.read('r:none', undefined, 10, T + 2)).toEqual([]);
  });

  it('page through 250 messages 100 at a time with `before`, each exactly once', () => {
    const store = storeOf();
    const all: string[] = [];
    for (let i = 0; i < 250; i++) all.push(say(store, 'r:a', T + Math.floor(i / 3)));
    const pages: string[][] = [];
    let before: string | undefined;
    // Bounded, so a `before` that repeats a page fails the test rather than looping forever.
    for (let n = 0; n < 5; n++) {
      const page = ids(store.read('r:a', before, 100, T + 100));
      if (page.length === 0) break;
      pages.push(page);
      before = page[page.length - 1];
    }
    expect(pages.map((page) => page.length)).toEqual([100, 100, 50]);
    expect(pages.flat()).toEqual([...all].reverse());
  });

  it('page by time with `before` from idAt', () => {
    const store = storeOf();
    const bySecond: string[][] = [];
    for (let s = 0; s < 10; s++)
      bySecond.push([0, 0, 1].map((ms) => say(store, 'r:a', T + s * 1000 + ms)));
    const found = ids(store.read('r:a', idAt(T + 5000), 100, T + 10_000));
    expect(found).toEqual(bySecond.slice(0, 5).flat().reverse());
  });

  it('give back texts exactly: empty, escapes, accents, CJK, emoji, 30,000 characters', () => {
    const store = storeOf();
    const long = '中'.repeat(30_000);
    const texts = [
      '',
      'é',
      '{"a":"\\"x\\""}',
      'naïve café 中文 €',
      '😀🇫🇷🧑‍💻',
      long,
      'x'.repeat(10_000),
    ];
    for (const text of texts) say(store, 'r:a', T, text);
    const found = store.read('r:a', undefined, 100, T).map((message) => message.text);
    expect(found).toEqual([...texts].reverse());
    expect(store.bytes).toBe(texts.reduce((sum, text) => sum + recordBytes(text), 0));
  });

  it('make room for a text too long for the scratch buffer it is measured in', () => {
    const store = storeOf({ maxBytes: 1 << 17 });
    say(store, 'r:a', T, 'x'.repeat(60_000));
    const long = `${'中'.repeat(30_000)}😀`; // 90,004 bytes: no room left at the head
    const id = say(store, 'r:b', T, long);
    expect(store.read('r:b', undefined, 10, T)).toEqual([{ id, text: long }]);
    expect([store.conversations, store.bytes]).toEqual([1, recordBytes(long)]);
  });

  it('give back a lone surrogate as U+FFFD, as UTF-8 must (JSON.stringify escapes them)', () => {
    const store = storeOf({ maxBytes: 1024 });
    say(store, 'r:a', T, 'x'.repeat(990)); // the next goes through the scratch buffer
    const texts = ['a\ud800b', '\udc00', 'z\ud83d'];
    for (const text of texts) say(store, 'r:a', T, text);
    const found = store.read('r:a', undefined, 3, T).map((message) => message.text);
    expect(found).toEqual(['z\ufffd', '\ufffd', 'a\ufffdb']);
  });
});

describe('memory history bounds', () => {
  it('trims each conversation to its last `limit` messages', () => {
    const store = storeOf({ limit: 3 });
    const a = Array.from({ length: 7 }, (_, i) => say(store, 'r:a', T + i));
    const b = [say(store, 'r:b', T + 7), say(store, 'r:b', T + 8)];
    expect(ids(store.read('r:a', undefined, 10, T + 9))).toEqual(a.slice(-3).reverse());
    expect(ids(store.read('r:b', undefined, 10, T + 9))).toEqual([...b].reverse());
    expect(store.messages).toBe(5);
  });

  it('forgets messages older than ttlMs: unread at once, uncounted after the next append', () => {
    const store = storeOf({ ttlMs: HOUR });
    const old = say(store, 'r:a', T);
    const young = say(store, 'r:a', T + 1000);
    expect(ids(store.read('r:a', undefined, 10, T + HOUR))).toEqual([young, old]);
    expect(ids(store.read('r:a', undefined, 10, T + HOUR + 1))).toEqual([young]);
    expect(store.messages).toBe(2);
    say(store, 'r:b', T + HOUR + 1);
    expect(store.messages).toBe(2);
    expect(ids(store.read('r:a', undefined, 10, T + HOUR + 1))).toEqual([young]);
  });

  it("keeps a quiet room's history until it expires, whatever happens elsewhere", () => {
    const store = storeOf({ ttlMs: HOUR });
    const quiet = say(store, 'r:quiet', T);
    for (let i = 1; i < 60; i++) say(store, 'r:busy', T + i * 60_000 - 1);
    expect(ids(store.read('r:quiet', undefined, 10, T + HOUR - 1))).toEqual([quiet]);
    expect(store.conversations).toBe(2);
  });

  it("keeps a quiet room's history while a busy room's trimmed messages pass the arena", () => {
    const store = storeOf({ limit: 3, maxBytes: 4096 });
    const quiet = say(store, 'r:quiet', T, 'still here');
    const busy: string[] = [];
    for (let i = 0; i < 2000; i++) {
      busy.push(say(store, 'r:busy', T + i, `${i}`.padEnd(100 + (i % 50), '.')));
      expect(store.bytes).toBeLessThanOrEqual(4096);
    }
    expect(store.read('r:quiet', undefined, 10, T + 2000)).toEqual([
      { id: quiet, text: 'still here' },
    ]);
    expect(ids(store.read('r:busy', undefined, 10, T + 2000))).toEqual(busy.slice(-3).reverse());
    expect(store.messages).toBe(4);
  });

  it('evicts the oldest messages overall once live ones fill the arena', () => {
    const text = 'x'.repeat(100);
    const keys = ['r:a', 'r:b'];
    // Room for 8 records of 120 bytes, and not a 9th.
    const maxBytes = 8.5 * recordBytes(text);
    const store = storeOf({ maxBytes });
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      sent.push(say(store, keys[i % 2]!, T + i, text));
      expect(store.bytes).toBeLessThanOrEqual(maxBytes);
      expect(store.messages).toBe(Math.min(i + 1, 8));
    }
    const kept = keys.flatMap((key) => ids(store.read(key, undefined, 100, T + 40))).sort();
    expect(kept).toEqual(sent.slice(-8));
  });

  it('evicts a whole older conversation before a newer one loses anything', () => {
    const text = 'y'.repeat(200);
    const store = storeOf({ maxBytes: 8 * recordBytes(text) });
    for (let i = 0; i < 6; i++) say(store, 'r:a', T + i, text);
    const b = Array.from({ length: 8 }, (_, i) => say(store, 'r:b', T + 10 + i, text));
    expect(store.read('r:a', undefined, 100, T + 20)).toEqual([]);
    expect(ids(store.read('r:b', undefined, 100, T + 20))).toEqual([...b].reverse());
    expect(store.conversations).toBe(1);
    expect(store.bytes).toBe(8 * recordBytes(text));
  });

  it('keeps no message larger than the arena, and makes room for one that just fits', () => {
    const store = storeOf({ maxBytes: 1024 });
    const small = [say(store, 'r:a', T, 'one'), say(store, 'r:a', T + 1, 'two')];
    say(store, 'r:a', T + 2, 'z'.repeat(1024 - RECORD_HEADER_BYTES + 1));
    say(store, 'r:b', T + 2, '😀'.repeat(300));
    expect(ids(store.read('r:a', undefined, 10, T + 3))).toEqual([...small].reverse());
    expect([store.messages, store.conversations]).toEqual([2, 1]);
    const whole = 'w'.repeat(1024 - RECORD_HEADER_BYTES);
    const big = say(store, 'r:b', T + 3, whole);
    expect(store.read('r:b', undefined, 10, T + 4)).toEqual([{ id: big, text: whole }]);
    expect(store.read('r:a', undefined, 10, T + 4)).toEqual([]);
    expect([store.messages, store.conversations, store.bytes]).toEqual([1, 1, 1024]);
  });

  it('returns messages, conversations and bytes to 0 once everything expired', () => {
    const store = storeOf({ limit: 2, ttlMs: HOUR });
    for (let i = 0; i < 9; i++) say(store, `r:${i % 3}`, T + i);
    say(store, 'd:a\nb', T + 4);
    expect(store.messages).toBe(7);
    expect(store.conversations).toBe(4);
    expect(store.bytes).toBeGreaterThan(0);
    // A message delivered later than ttlMs after it was stamped expires with all the others.
    const late = store.nextId('r:0', T + 10);
    store.append('r:0', { id: late, text: 'late' }, T + 10 + HOUR + 1);
    expect([store.messages, store.conversations, store.bytes]).toEqual([0, 0, 0]);
  });
});

describe('memory history arena', () => {
  it('wraps around many times with texts of every width, reading them back intact', () => {
    const next = random(1);
    const store = storeOf({ maxBytes: 4096 });
    const sent: { id: string; text: string }[] = [];
    let written = 0;
    for (let i = 0; i < 20_000; i++) {
      const text = textOf(next, 60);
      written += recordBytes(text);
      sent.push({ id: say(store, `r:${i % 3}`, T + i, text), text });
      const found = store.read(`r:${i % 3}`, undefined, 2, T + i);
      expect(found[0]).toEqual(sent[i]);
      expect(store.bytes).toBeLessThanOrEqual(4096);
    }
    expect(written).toBeGreaterThan(100 * 4096);
    for (let c = 0; c < 3; c++) {
      const found = store.read(`r:${c}`, undefined, 1000, T + 20_000);
      const mine = sent.filter((_, i) => i % 3 === c);
      expect(found).toEqual(mine.slice(-found.length).reverse());
    }
  });

  it('grows past its first megabyte as live messages need it, never past maxBytes', () => {
    const maxBytes = 5 << 20;
    const store = storeOf({ maxBytes, limit: 100_000 });
    const text = 'm'.repeat(250);
    say(store, 'r:a', T, text);
    expect(store.bytes).toBe(recordBytes(text));
    const sent: string[] = [];
    for (let i = 0; i < 30_000; i++) {
      sent.push(say(store, `r:${i % 10}`, T + i, text));
      expect(store.bytes).toBeLessThanOrEqual(maxBytes);
    }
    // Every message is live, so all that fits a 5 MiB arena is kept: the oldest overall go.
    const fit = Math.floor(maxBytes / recordBytes(text));
    expect(store.messages).toBeGreaterThan(fit - 10);
    expect(store.messages).toBeLessThanOrEqual(fit);
    const kept = Array.from({ length: 10 }, (_, c) =>
      store.read(`r:${c}`, undefined, 1e6, T + 1e5),
    );
    expect(ids(kept.flat()).sort()).toEqual(sent.slice(-store.messages));
    expect(kept.flat().every((message) => message.text === text)).toBe(true);
  });

  it('reuses the slots of dead conversations without mixing their records up', () => {
    const store = storeOf({ limit: 2, ttlMs: HOUR, maxBytes: 2048 });
    for (let round = 0; round < 50; round++) {
      const now = T + round * 2 * HOUR;
      const keys = Array.from({ length: 5 + (round % 7) }, (_, k) => `r:${round}-${k}`);
      const sent = keys.map((key) => [say(store, key, now, key), say(store, key, now, `${key}!`)]);
      say(store, keys[0]!, now, 'trims the first');
      expect(store.conversations).toBe(keys.length);
      keys.forEach((key, k) => {
        const found = store.read(key, undefined, 10, now);
        if (k === 0) expect(found.map((m) => m.text)).toEqual(['trims the first', `${key}!`]);
        else
          expect(found).toEqual([
            { id: sent[k]![1], text: `${key}!` },
            { id: sent[k]![0], text: key },
          ]);
      });
      expect(store.read(`r:${round - 1}-0`, undefined, 10, now)).toEqual([]);
    }
  });

  // Sized by the arena (kept for a day), then by age too (600 ms, one message a millisecond).
  it.each([
    { appends: 200_000, ttlMs: 24 * HOUR, perMs: 2 },
    { appends: 100_000, ttlMs: 600, perMs: 1 },
  ])('keeps exactly the newest that fit, over $appends appends (ttl $ttlMs ms)', (run) => {
    const next = random(run.ttlMs);
    const limit = 5;
    const store = storeOf({ limit, ttlMs: run.ttlMs, maxBytes: 64 << 10 });
    const model = new Map<string, { id: string; text: string }[]>();
    for (let i = 0; i < run.appends; i++) {
      // Half the traffic in 10 busy conversations, whose trimmed records then fill the arena.
      const key = `r:${Math.floor(next() * (next() < 0.5 ? 10 : 500))}`;
      const now = T + Math.floor(i / run.perMs);
      const text = textOf(next, next() < 0.01 ? 2000 : 40);
      const id = say(store, key, now, text);
      const sent = model.get(key) ?? [];
      sent.push({ id, text });
      if (sent.length > limit) sent.shift();
      model.set(key, sent);
      // The newest always fits, and what is kept of a conversation is its newest, in order.
      const found = store.read(key, undefined, limit, now);
      const newest = sent.slice(-found.length).reverse();
      const same = (m: { id: string; text: string }, k: number) =>
        m.id === newest[k]!.id && m.text === newest[k]!.text;
      // Compared by hand first: 200,000 deep `toEqual`s would take most of the run.
      if (found[0]?.id !== id || !found.every(same)) expect(found).toEqual(newest);
      if (i % 10_000 === 9_999) expectExactly(store, model, now, run.ttlMs > HOUR);
    }
  });
});

/**
 * The arena evicts the oldest records overall (and the expired are older still): what it keeps is
 * every message still within its conversation's `limit`, from the oldest it kept on.
 */
function expectExactly(
  store: MemoryHistory,
  model: Map<string, { id: string; text: string }[]>,
  now: number,
  bySize: boolean,
) {
  const found = new Map(
    [...model.keys()].map((key) => [key, store.read(key, undefined, 100, now)]),
  );
  const oldest = ids([...found.values()].flat()).sort()[0] ?? '9';
  let live = 0;
  let conversations = 0;
  for (const [key, sent] of model) {
    const expected = sent.filter(({ id }) => id >= oldest).reverse();
    expect(found.get(key)).toEqual(expected);
    live += expected.reduce((sum, { text }) => sum + recordBytes(text), 0);
    if (expected.length > 0) conversations++;
  }
  expect(store.conversations).toBe(conversations);
  expect(store.messages).toBe([...found.values()].flat().length);
  expect(store.bytes).toBeLessThanOrEqual(64 << 10);
  // A live record is evicted only while live ones fill half the arena: trimmed ones are compacted
  // away first. A quarter leaves room for the wrap's waste and for trims since the last eviction.
  if (bySize) expect(live).toBeGreaterThan((64 << 10) / 4);
}
