/**
 * Chat history in this process's memory: the {@link HistoryStore} of a single server.
 *
 * Texts live off the JS heap, UTF-8 in one ring arena, and each conversation keeps its messages'
 * ids and places in a `Float64Array` ring, so a kept message is no JS object: kept strings made
 * the collector's work grow with the history (each survives scavenges, is promoted, then dies in
 * old space), which cost more than the chat itself. Bounds: the last `limit` messages of each
 * conversation, none older than `ttlMs`, and `maxBytes` of arena (at most 2 GiB), evicting the
 * oldest messages overall first. The arena is allocated on the first message and doubles as the
 * history needs it. Append is amortized O(1), a read O(log n + limit); there are no timers: expiry
 * happens on the next append, and reads skip what has expired meanwhile.
 */
import type { HistoryLimits, HistoryStore, StoredMessage } from './history.ts';
import { createIdClock } from './history.ts';

/**
 * A record in the arena: its conversation's slot (int32), the UTF-8 length (int32), the id
 * (float64: ids are below 2^53), then the text, padded so that every record is 8-byte aligned.
 */
export const RECORD_HEADER_BYTES = 16;

/** The arena's first size, doubled as needed up to `maxBytes` and 2 GiB (positions are int32). */
const [FIRST_ARENA_BYTES, MAX_ARENA_BYTES] = [1 << 20, 0x7fff_fff8];

/** Texts of up to this many UTF-8 bytes are measured in one reused buffer, longer in their own. */
const SCRATCH_BYTES = 1 << 16;

export interface MemoryHistoryOptions extends HistoryLimits {
  /** The arena's size: what the texts of all conversations may take (`HISTORY_MAX_BYTES`). */
  readonly maxBytes: number;
}

/** A {@link HistoryStore} that answers at once, never with a promise. */
export interface MemoryHistory extends HistoryStore {
  nextId(conversation: string, now: number): string;
  /** Not kept if larger than the arena. A lone surrogate is read back as U+FFFD (UTF-8). */
  append(conversation: string, message: StoredMessage, now: number): void;
  read(
    conversation: string,
    before: string | undefined,
    limit: number,
    now: number,
  ): StoredMessage[];
  /** Arena bytes from the oldest record to the newest, including those trimmed by count. */
  readonly bytes: number;
  readonly messages: number;
  readonly conversations: number;
}

/**
 * One conversation: `[id, position, size]` of each of its live records, oldest first, from
 * `start` in a ring of `mask + 1` entries (a power of two, grown until it holds `limit`). Its
 * `slot` names it in its records' headers; `seen` counts those a compaction has met so far.
 */
interface Conversation {
  readonly key: string;
  readonly slot: number;
  entries: Float64Array;
  mask: number;
  start: number;
  count: number;
  seen: number;
}

const entryAt = (home: Conversation, i: number) => ((home.start + i) & home.mask) * 3;
const positionOf = (home: Conversation, i: number) => home.entries[entryAt(home, i) + 1]!;

function push(home: Conversation, id: number, position: number, size: number) {
  if (home.count > home.mask) {
    const entries = new Float64Array(home.entries.length * 2);
    for (let i = 0; i < home.count; i++)
      entries.set(home.entries.subarray(entryAt(home, i), entryAt(home, i) + 3), i * 3);
    home.entries = entries;
    home.mask = home.mask * 2 + 1;
    home.start = 0;
  }
  const at = entryAt(home, home.count++);
  home.entries[at] = id;
  home.entries[at + 1] = position;
  home.entries[at + 2] = size;
}

/** The first index in [lo, hi) of `home` whose id is not below `id`. */
function lowerBound(home: Conversation, lo: number, hi: number, id: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (home.entries[entryAt(home, mid)]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** An id's digits as a number, exactly (ids are below 2^53), quicker than `Number` does it. */
function parseId(id: string): number {
  let n = 0;
  for (let i = 0; i < id.length; i++) {
    const digit = id.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return Number(id);
    n = n * 10 + digit;
  }
  return n;
}

export function createMemoryHistory(options: MemoryHistoryOptions): MemoryHistory {
  const { limit: kept, ttlMs } = options;
  let maxCap = Math.min(MAX_ARENA_BYTES, Math.floor(options.maxBytes / 8) * 8);
  // One clock for every conversation: ids increase globally, so the arena is in id order.
  const clock = createIdClock();
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const conversations = new Map<string, Conversation>();
  const bySlot: (Conversation | undefined)[] = [];
  const freeSlots: number[] = [];

  let [arena, i32, f64, cap] = [new Uint8Array(0), new Int32Array(0), new Float64Array(0), 0];
  /** Records run from `tail` (the oldest) to `head`, wrapping to 0 at `end` (-1: no wrap). */
  let [tail, head, end, records] = [0, 0, -1, 0];
  /** `live`: bytes of the records still in a conversation, the rest reclaimable by compaction. */
  let [live, messages] = [0, 0];
  let scratch: Uint8Array | undefined;

  const sizeAt = (at: number) => RECORD_HEADER_BYTES + ((i32[(at >> 2) + 1]! + 7) & ~7);

  /** Takes the oldest record out of `home`; its bytes stay until the tail or a compaction. */
  function drop(home: Conversation) {
    live -= home.entries[home.start * 3 + 2]!;
    home.start = (home.start + 1) & home.mask;
    messages--;
    if (--home.count > 0) return;
    conversations.delete(home.key);
    bySlot[home.slot] = undefined;
    freeSlots.push(home.slot);
  }

  /** Passes the oldest record, dropping it from its conversation if still there (same place). */
  function evictTail() {
    const home = bySlot[i32[tail >> 2]!];
    if (home !== undefined && positionOf(home, 0) === tail) drop(home);
    tail += sizeAt(tail);
    if (tail === end) [tail, end] = [0, -1];
    if (--records === 0) [tail, head, end] = [0, 0, -1];
  }

  /**
   * Moves the live records, in order and in runs as long as they come, to the start of `into` (a
   * larger arena) or, in place, down to the tail (wrapping if they must), dropping those trimmed
   * by count. In place, writing never overtakes reading: it trails it on the same lap.
   */
  function compact(into: Uint8Array) {
    const inPlace = into === arena;
    for (const home of conversations.values()) home.seen = 0;
    let [from, to, wrapAt, runFrom, runTo, run] = [tail, inPlace ? tail : 0, -1, 0, 0, 0];
    const flush = () => {
      if (inPlace) arena.copyWithin(runTo, runFrom, runFrom + run);
      else into.set(arena.subarray(runFrom, runFrom + run), runTo);
    };
    const count = records;
    records = 0;
    for (let n = 0; n < count; n++) {
      const size = sizeAt(from);
      const home = bySlot[i32[from >> 2]!];
      if (home && home.seen < home.count && positionOf(home, home.seen) === from) {
        if (to + size > into.length) [wrapAt, to] = [to, 0];
        home.entries[entryAt(home, home.seen++) + 1] = to;
        if (run > 0 && from === runFrom + run && to === runTo + run) run += size;
        else {
          if (run > 0) flush();
          runFrom = from;
          runTo = to;
          run = size;
        }
        to += size;
        records++;
      }
      from += size;
      if (from === end) from = 0;
    }
    if (run > 0) flush();
    [tail, head, end] = records === 0 ? [0, 0, -1] : [inPlace ? tail : 0, to, wrapAt];
  }

  /** A larger arena, at least `size` beyond the live records; false when none can be had. */
  function grow(size: number): boolean {
    const next = Math.min(maxCap, Math.max(FIRST_ARENA_BYTES, cap * 2, live + size));
    let into: typeof arena;
    try {
      into = new Uint8Array(next);
    } catch {
      maxCap = cap; // out of memory: make do with this arena
      return false;
    }
    compact(into);
    arena = into;
    i32 = new Int32Array(into.buffer);
    f64 = new Float64Array(into.buffer);
    cap = next;
    return true;
  }

  /**
   * Where a record of `size` bytes goes, after compacting, growing or evicting as needed (-1: it
   * cannot fit). A live record is evicted only while live ones fill half the arena or more.
   */
  function room(size: number): number {
    let compacted = false;
    for (;;) {
      if (end < 0 && head + size <= cap) return head;
      // No room before the end of the arena: wrap to its start if the oldest records leave room.
      if (end < 0 && records > 0 && size <= tail) [end, head] = [head, 0];
      if (end >= 0 && head + size <= tail) return head;
      if (!compacted && records > 0 && (live + size) * 2 <= cap) {
        compact(arena);
        compacted = true;
      } else if (cap < maxCap && grow(size)) compacted = true;
      else if (records > 0) evictTail();
      else return -1;
    }
  }

  /**
   * Writes `text` and its length where the next record goes, making room first; -1 if not kept.
   * `encodeInto` is the quick way to learn a UTF-8 length (a JS loop is slower): a text goes
   * straight to the head if its worst case (3 bytes a UTF-16 unit) fits there, else via `scratch`.
   */
  function write(text: string): number {
    const worst = 3 * text.length;
    const body = head + RECORD_HEADER_BYTES;
    if (worst <= (end < 0 ? cap : tail) - body) {
      i32[(head >> 2) + 1] = encoder.encodeInto(text, arena.subarray(body, body + worst)).written;
      return head;
    }
    const stage =
      worst <= SCRATCH_BYTES ? (scratch ??= new Uint8Array(SCRATCH_BYTES)) : new Uint8Array(worst);
    const length = encoder.encodeInto(text, stage).written;
    const size = RECORD_HEADER_BYTES + ((length + 7) & ~7);
    const at = size > maxCap ? -1 : room(size);
    if (at < 0) return -1;
    arena.set(stage.subarray(0, length), at + RECORD_HEADER_BYTES);
    i32[(at >> 2) + 1] = length;
    return at;
  }

  /** Messages stamped before `now - ttlMs` have ids below this. */
  const expiredBelow = (now: number) => Math.max(0, Math.ceil(now - ttlMs)) * 1000;

  return {
    get bytes() {
      return records === 0 ? 0 : end < 0 ? head - tail : cap - tail + head;
    },
    get messages() {
      return messages;
    },
    get conversations() {
      return conversations.size;
    },
    nextId: (_conversation, now) => clock(now),
    append(key, message, now) {
      const cutoff = expiredBelow(now);
      while (records > 0 && f64[(tail >> 3) + 1]! < cutoff) evictTail();
      const id = parseId(message.id);
      if (id < cutoff) return;
      const at = write(message.text);
      if (at < 0) return;
      let home = conversations.get(key);
      if (home === undefined) {
        const slot = freeSlots.pop() ?? bySlot.length;
        // Two entries fit V8's on-heap typed arrays: a one-message conversation stays cheap.
        home = { key, slot, entries: new Float64Array(6), mask: 1, start: 0, count: 0, seen: 0 };
        conversations.set(key, home);
        bySlot[slot] = home;
      }
      i32[at >> 2] = home.slot;
      f64[(at >> 3) + 1] = id;
      const size = sizeAt(at);
      head = at + size;
      records++;
      live += size;
      messages++;
      push(home, id, at, size);
      if (home.count > kept) drop(home);
    },
    read(key, before, limit, now) {
      const home = conversations.get(key);
      if (home === undefined || limit <= 0) return [];
      const from = lowerBound(home, 0, home.count, expiredBelow(now));
      let i =
        before === undefined ? home.count : lowerBound(home, from, home.count, parseId(before));
      const page: StoredMessage[] = [];
      while (i > from && page.length < limit) {
        const [id, position] = home.entries.subarray(entryAt(home, --i));
        const body = position! + RECORD_HEADER_BYTES;
        const text = decoder.decode(arena.subarray(body, body + i32[(position! >> 2) + 1]!));
        // Every id since 2001 has 16 digits: pad only those of test clocks set near 1970.
        page.push({ id: id! >= 1e15 ? String(id) : String(id).padStart(16, '0'), text });
      }
      return page;
    },
  };
}
