/**
 * Chat history in this process's memory: the {@link HistoryStore} of a single server.
 *
 * Bounds: the last `limit` messages of each conversation, none older than `ttlMs`, and an estimated
 * `maxBytes` of heap in all, kept by evicting the oldest messages overall first. Everything is
 * synchronous: append is amortized O(1), a read O(log n + limit). There are no timers: expiry
 * happens on the next append (reads skip what has expired meanwhile), and an idle user or a
 * conversation without messages costs nothing.
 */
import {
  createIdClock,
  type HistoryLimits,
  type HistoryStore,
  idAt,
  type StoredMessage,
} from './history.ts';

/**
 * Heap bytes of one kept message beyond its strings' characters: the entry object, its slots in
 * two arrays (with their growth slack) and the id's and text's string headers. Measured on Node 20
 * (x64, no pointer compression; isolates with it, like workerd's, take less) with `--expose-gc`:
 * 100,000 appends of ~210-character frames cost 109 to 111 bytes each beyond their characters.
 * That is for a text flattened by its delivery, as a socket send does; a `JSON.stringify` result
 * never flattened is a rope that holds ~140 bytes more.
 */
export const ENTRY_OVERHEAD_BYTES = 112;

/**
 * Heap bytes of one conversation beyond its key's characters: the Map entry, its record, its
 * array's first backing store and the key's string header. Measured the same way over 100,000
 * one-message conversations: 279 to 281.
 */
export const CONVERSATION_OVERHEAD_BYTES = 280;

export interface MemoryHistoryOptions extends HistoryLimits {
  /** The estimated heap all conversations may take (`HISTORY_MAX_BYTES`). */
  readonly maxBytes: number;
}

/** A {@link HistoryStore} that answers at once, never with a promise. */
export interface MemoryHistory extends HistoryStore {
  nextId(conversation: string, now: number): string;
  append(conversation: string, message: StoredMessage, now: number): void;
  read(
    conversation: string,
    before: string | undefined,
    limit: number,
    now: number,
  ): StoredMessage[];
  /**
   * The estimated heap taken now, never above `maxBytes` after an append. A message trimmed by
   * count still counts its entry and id (not its text) until it leaves the global queue, since
   * until then it is still in memory.
   */
  readonly bytes: number;
  readonly messages: number;
  readonly conversations: number;
}

/** An array used as a FIFO: slots before `start` are spent, cleared so they hold nothing. */
interface Queue<T> {
  readonly items: (T | undefined)[];
  start: number;
}

/** One conversation's messages, oldest first. */
interface Conversation extends Queue<Entry> {
  readonly key: string;
}

/** A kept message, in its conversation's queue and in the global one. */
interface Entry {
  readonly id: string;
  /** Emptied when the entry leaves its conversation, so a lingering global slot holds no text. */
  text: string;
  readonly home: Conversation;
  /** Trimmed by count: skipped, not evicted again, when it reaches the global head. */
  gone: boolean;
}

const size = <T>(queue: Queue<T>) => queue.items.length - queue.start;

/**
 * Drops the head of `queue`. `Array.prototype.shift` moves every item each time; instead the
 * array is compacted once half of it is spent, which moves each item at most once per halving.
 */
function shift<T>(queue: Queue<T>): T {
  const head = queue.items[queue.start]!;
  queue.items[queue.start++] = undefined;
  if (queue.start * 2 >= queue.items.length) {
    queue.items.copyWithin(0, queue.start);
    queue.items.length -= queue.start;
    queue.start = 0;
  }
  return head;
}

/** The first index in [lo, hi) whose id is not below `id`: ids are fixed width, so strings sort. */
function lowerBound(items: Queue<Entry>['items'], lo: number, hi: number, id: string): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid]!.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function createMemoryHistory(options: MemoryHistoryOptions): MemoryHistory {
  const { limit: kept, ttlMs, maxBytes } = options;
  // One clock for every conversation: ids increase globally, so the global queue is in id order.
  const clock = createIdClock();
  const conversations = new Map<string, Conversation>();
  /** Every entry in append order: its head is the oldest message overall, the first to expire. */
  const all: Queue<Entry> = { items: [], start: 0 };
  let bytes = 0;
  let messages = 0;

  /** Messages sent before `now - ttlMs` have ids below this one. */
  const expiredBelow = (now: number) => idAt(Math.ceil(now - ttlMs));

  /** Takes `entry`, the head of its conversation, out of it; its global slot stays. */
  function leave(entry: Entry) {
    const home = entry.home;
    shift(home);
    bytes -= entry.text.length;
    entry.text = '';
    messages--;
    if (size(home) > 0) return;
    conversations.delete(home.key);
    bytes -= home.key.length + CONVERSATION_OVERHEAD_BYTES;
  }

  /**
   * Pops the global head while it was trimmed, has expired or the total is over `maxBytes`. A live
   * head is the oldest message of its conversation too, so it leaves from the front of both.
   */
  function evict(now: number) {
    const cutoff = expiredBelow(now);
    while (size(all) > 0) {
      const head = all.items[all.start]!;
      if (!head.gone && head.id >= cutoff && bytes <= maxBytes) return;
      shift(all);
      if (!head.gone) leave(head);
      bytes -= head.id.length + ENTRY_OVERHEAD_BYTES;
    }
  }

  return {
    get bytes() {
      return bytes;
    },
    get messages() {
      return messages;
    },
    get conversations() {
      return conversations.size;
    },
    nextId: (_conversation, now) => clock(now),
    append(key, message, now) {
      let home = conversations.get(key);
      if (home === undefined) {
        conversations.set(key, (home = { key, items: [], start: 0 }));
        bytes += key.length + CONVERSATION_OVERHEAD_BYTES;
      }
      const entry: Entry = { id: message.id, text: message.text, home, gone: false };
      home.items.push(entry);
      all.items.push(entry);
      bytes += entry.text.length + entry.id.length + ENTRY_OVERHEAD_BYTES;
      messages++;
      while (size(home) > kept) {
        const oldest = home.items[home.start]!;
        leave(oldest);
        oldest.gone = true;
      }
      evict(now);
    },
    read(key, before, limit, now) {
      const home = conversations.get(key);
      if (home === undefined || limit <= 0) return [];
      const { items, start } = home;
      const from = lowerBound(items, start, items.length, expiredBelow(now));
      let at = before === undefined ? items.length : lowerBound(items, from, items.length, before);
      const page: StoredMessage[] = [];
      while (at > from && page.length < limit) {
        const entry = items[--at]!;
        page.push({ id: entry.id, text: entry.text });
      }
      return page;
    },
  };
}
