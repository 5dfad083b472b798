import { describe, expect, it } from 'vitest';
import { createIdClock, ID_DIGITS, idAt, timeOfId } from '../../src/core/history.ts';
import {
  CONVERSATION_OVERHEAD_BYTES,
  createMemoryHistory,
  ENTRY_OVERHEAD_BYTES,
  type MemoryHistory,
  type MemoryHistoryOptions,
} from '../../src/core/memory-history.ts';

const T = Date.UTC(2025, 0, 1);
const HOUR = 3_600_000;

function storeOf(options: Partial<MemoryHistoryOptions> = {}): MemoryHistory {
  return createMemoryHistory({ limit: 1000, ttlMs: 24 * HOUR, maxBytes: 1e9, ...options });
}

/** Appends `text` to `conversation` at `now` with a fresh id; returns the id. */
function say(store: MemoryHistory, conversation: string, now: number, text = `text@${now}`) {
  const id = store.nextId(conversation, now);
  store.append(conversation, { id, text }, now);
  return id;
}

/** The estimate for what `store` holds, counted from what it answers. */
function expectedBytes(store: MemoryHistory, keys: string[], now: number) {
  let bytes = 0;
  for (const key of keys) {
    const found = store.read(key, undefined, 1e9, now);
    if (found.length > 0) bytes += key.length + CONVERSATION_OVERHEAD_BYTES;
    for (const { text } of found) bytes += text.length + ID_DIGITS + ENTRY_OVERHEAD_BYTES;
  }
  return bytes;
}

const ids = (messages: { id: string }[]) => messages.map((message) => message.id);

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

  it('evicts the oldest messages overall to stay within maxBytes', () => {
    const text = 'x'.repeat(100);
    const perMessage = text.length + ID_DIGITS + ENTRY_OVERHEAD_BYTES;
    const keys = ['r:a', 'r:b'];
    const maxBytes = 2 * (3 + CONVERSATION_OVERHEAD_BYTES) + 10.5 * perMessage;
    const store = storeOf({ maxBytes });
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      sent.push(say(store, keys[i % 2]!, T + i, text));
      expect(store.bytes).toBeLessThanOrEqual(maxBytes);
      expect(store.bytes).toBe(expectedBytes(store, keys, T + i));
    }
    const kept = keys.flatMap((key) => ids(store.read(key, undefined, 100, T + 40))).sort();
    expect(kept).toEqual(sent.slice(-10));
    expect(store.messages).toBe(10);
  });

  it('evicts a whole older conversation before a newer one loses anything', () => {
    const text = 'y'.repeat(200);
    const perMessage = text.length + ID_DIGITS + ENTRY_OVERHEAD_BYTES;
    const maxBytes = 2 * (3 + CONVERSATION_OVERHEAD_BYTES) + 8 * perMessage;
    const store = storeOf({ maxBytes });
    for (let i = 0; i < 6; i++) say(store, 'r:a', T + i, text);
    const b = Array.from({ length: 8 }, (_, i) => say(store, 'r:b', T + 10 + i, text));
    expect(store.read('r:a', undefined, 100, T + 20)).toEqual([]);
    expect(ids(store.read('r:b', undefined, 100, T + 20))).toEqual([...b].reverse());
    expect(store.conversations).toBe(1);
    expect(store.bytes).toBe(expectedBytes(store, ['r:b'], T + 20));
  });

  it('skips messages trimmed by count when they reach the head of the eviction order', () => {
    const aCost = `text@${T}`.length + ID_DIGITS + ENTRY_OVERHEAD_BYTES;
    const big = 'z'.repeat(1000);
    // Exactly what should remain: r:a's last 3 messages and r:b's big one.
    const maxBytes =
      2 * (3 + CONVERSATION_OVERHEAD_BYTES) +
      3 * aCost +
      big.length +
      ID_DIGITS +
      ENTRY_OVERHEAD_BYTES;
    const store = storeOf({ limit: 3, maxBytes });
    const a = [say(store, 'r:a', T)];
    const b0 = say(store, 'r:b', T + 1, 'b0');
    for (let i = 2; i < 7; i++) a.push(say(store, 'r:a', T + i));
    // In append order: b0 (the oldest live), then r:a's trimmed a1 and a2, then its last 3.
    expect(store.messages).toBe(4);
    const b1 = say(store, 'r:b', T + 7, big);
    expect(ids(store.read('r:a', undefined, 10, T + 8))).toEqual(a.slice(-3).reverse());
    expect(ids(store.read('r:b', undefined, 10, T + 8))).toEqual([b1]);
    expect(ids(store.read('r:b', undefined, 10, T + 8))).not.toContain(b0);
    expect(store.messages).toBe(4);
    expect(store.bytes).toBe(maxBytes);
    expect(store.bytes).toBe(expectedBytes(store, ['r:a', 'r:b'], T + 8));
  });

  it('returns messages, conversations and bytes to 0 once everything expired', () => {
    const store = storeOf({ limit: 2, ttlMs: HOUR });
    for (let i = 0; i < 9; i++) say(store, `r:${i % 3}`, T + i);
    say(store, 'd:a\nb', T + 4);
    expect(store.messages).toBe(7);
    expect(store.conversations).toBe(4);
    // A message delivered later than ttlMs after it was stamped expires with all the others.
    const late = store.nextId('r:0', T + 10);
    store.append('r:0', { id: late, text: 'late' }, T + 10 + HOUR + 1);
    expect([store.messages, store.conversations, store.bytes]).toEqual([0, 0, 0]);
  });
});
