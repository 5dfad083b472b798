/**
 * Chat history: what a store keeps and how a message is named.
 *
 * Every chat message the server delivers carries an `id`: 16 decimal digits, `ms * 1000 + n`
 * (the milliseconds of its server time, then a counter for messages within one millisecond), so
 * ids of one conversation compare as strings in the order the server delivered them, and
 * `before` given as an RFC 3339 time is the id of its millisecond. A conversation is a room or a
 * pair of users ({@link roomConversation}, {@link pairConversation}).
 *
 * A store keeps the last `limit` messages of each conversation for `ttlMs` and answers reads by
 * id range, newest first; in memory (`memory-history.ts`), in a Durable Object's SQLite, in Redis
 * Streams. Its answers may be promises, like every seam's.
 */
import type { MaybePromise } from './seams.ts';

/** One stored message: its id and the frame exactly as it was delivered. */
export interface StoredMessage {
  readonly id: string;
  /** A room message as every member got it; a direct message as its recipient got it. */
  readonly text: string;
}

export interface HistoryLimits {
  /** Messages kept per conversation (`HISTORY_LIMIT`). */
  readonly limit: number;
  /** How long a message is kept (`HISTORY_TTL_HOURS`), in milliseconds. */
  readonly ttlMs: number;
}

export interface HistoryStore {
  /**
   * A new id for a message of `conversation` sent at `now`: greater than every id it gave for
   * that conversation before, even across a restart (the clock carries it past them).
   */
  nextId(conversation: string, now: number): MaybePromise<string>;
  /**
   * True for a store shared between processes that names a direct message in the same step that
   * delivers and keeps it (one round trip instead of two): its text then carries {@link UNNAMED}
   * in place of the id, and `UserDirectory.deliver` names it (`Keep`).
   */
  readonly namesWhenKept?: boolean;
  /** Keeps `message`, then trims `conversation` to its last `limit` messages. */
  append(conversation: string, message: StoredMessage, now: number): MaybePromise<void>;
  /**
   * Up to `limit` of `conversation`'s messages younger than `ttlMs` with an id below `before`
   * (all when absent), newest first.
   */
  read(
    conversation: string,
    before: string | undefined,
    limit: number,
    now: number,
  ): MaybePromise<StoredMessage[]>;
}

/** Width of an id: enough for `ms * 1000` until the year 2255. */
export const ID_DIGITS = 16;

const FULL_WIDTH = 10 ** (ID_DIGITS - 1);

/** Where a message's id stands in its text until it is named: as wide as an id, and no digit. */
export const UNNAMED = '#'.repeat(ID_DIGITS);

/** `message` (named {@link UNNAMED}) named `id`: the last UNNAMED in its text (the id comes last). */
export function nameMessage(message: StoredMessage, id: string): StoredMessage {
  const at = message.text.lastIndexOf(UNNAMED);
  return { id, text: message.text.slice(0, at) + id + message.text.slice(at + ID_DIGITS) };
}

/** The id of the first message that could have been sent at `ms`. */
export const idAt = (ms: number) =>
  String(Math.max(0, Math.floor(ms)) * 1000).padStart(ID_DIGITS, '0');

/** When the message named `id` was sent, in milliseconds. */
export const timeOfId = (id: string) => Math.floor(Number(id) / 1000);

/**
 * Ids from a clock that never goes back: `ms * 1000` for the first message of a millisecond, one
 * more for each next one (a burst of over a thousand borrows from the next millisecond, and the
 * clock catches up). `after`: the largest id given before a restart, if known.
 */
export function createIdClock(after?: string) {
  let last = after === undefined ? -1 : Number(after);
  return (now: number): string => {
    const next = Math.max(Math.floor(now) * 1000, last + 1);
    last = next;
    // Every id since 2001 has 16 digits already: pad only the clocks of tests set near 1970.
    return next >= FULL_WIDTH ? String(next) : String(next).padStart(ID_DIGITS, '0');
  };
}

/** The conversation of a room. */
export const roomConversation = (room: string) => `r:${room}`;

/** The conversation of two users, the same whichever of them names it. */
export const pairConversation = (a: string, b: string) => (a < b ? `d:${a}\n${b}` : `d:${b}\n${a}`);

/** History off (`HISTORY=off`): ids from one clock, nothing kept. */
export function createNoHistory(): HistoryStore {
  const clock = createIdClock();
  return {
    nextId: (_conversation, now) => clock(now),
    append: () => {},
    read: () => [],
  };
}
