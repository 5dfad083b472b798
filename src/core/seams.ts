/**
 * Where state lives. The hub reaches users, rooms and the availability pool only through these
 * interfaces. This process's implementations answer at once; one whose state is shared (Redis, other
 * Durable Objects) answers with a promise, and the hub carries on when it settles. `MaybePromise`
 * keeps the single-process path free of promises and of the microtask each would cost.
 */
import type { Session } from './session.ts';

export type MaybePromise<T> = T | Promise<T>;

/** Users wherever they are connected. */
export interface UserDirectory {
  /** Delivers `text` to `userId`'s socket; false when nobody has that user. */
  deliver(userId: string, text: string): MaybePromise<boolean>;
  /**
   * Makes `userId` the partner of `partner`, ending any other pair `userId` was in (its old partner
   * hears `hangup {reason:"peer_left"}`); false when nobody has `userId`.
   */
  pair(userId: string, partner: string): MaybePromise<boolean>;
  /**
   * Ends `userId`'s pair if its partner is still `formerPartner`, then delivers `hangup` to it when
   * given. A pair that already ended, or moved on, is left alone.
   */
  endPair(userId: string, formerPartner: string, hangup: string | undefined): MaybePromise<void>;
}

/** Room membership, and delivery to every member. */
export interface RoomRegistry {
  join(room: string, member: Session): void;
  leave(room: string, member: Session): void;
  /**
   * Delivers `text` to every member of `room` (but `except`), wherever they are; returns how many
   * it reached here.
   */
  broadcast(room: string, text: string, except?: Session): number;
  /** How many members `room` has. */
  count(room: string): MaybePromise<number>;
  /** Up to `limit` of `room`'s members' userIds. */
  members(room: string, limit: number): MaybePromise<string[]>;
  /** Rooms with at least one member. */
  readonly size: number;
}

/** The users available for a random match. */
export interface MatchPool {
  readonly size: number;
  has(userId: string): boolean;
  /** Adds `userId` (a second add keeps the first `since`). */
  add(userId: string, since: number): void;
  delete(userId: string): void;
  /**
   * Atomically takes `requester` and one other member chosen uniformly (never one of `exclude`) out
   * of the pool, with one draw of `random()`; undefined, and nothing taken, when nobody else is
   * available. `since` is when the partner entered the pool.
   */
  take(
    requester: string,
    exclude: string | undefined,
    random: () => number,
  ): MaybePromise<{ userId: string; since: number } | undefined>;
}

/** Runs `fn` with `value` now, or once its promise fulfils. */
export function whenReady<T>(
  value: MaybePromise<T>,
  fn: (value: T) => void,
  onRejected: (error: unknown) => void,
): void {
  if (value instanceof Promise) value.then(fn, onRejected);
  else fn(value);
}
