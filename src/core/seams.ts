/**
 * Where state lives. The hub reaches users, rooms and the availability pool only through these
 * interfaces. This process's implementations answer at once; one whose state is shared (Redis, other
 * Durable Objects) answers with a promise, and the hub carries on when it settles. `MaybePromise`
 * keeps the single-process path free of promises and of the microtask each would cost.
 */
import type { Envelopes } from './envelope.ts';
import type { StoredMessage } from './history.ts';
import type { OpenRequest } from './identity.ts';
import type { Metrics } from './metrics.ts';
import type { Session, SessionState } from './session.ts';

export type MaybePromise<T> = T | Promise<T>;

/**
 * A chat message to keep in history along with its delivery: a store shared between processes
 * keeps it before the message can reach anyone, so whoever received it finds it in history.
 */
export interface Keep {
  readonly conversation: string;
  /**
   * The message as it is kept. One whose id is `UNNAMED` (`HistoryStore.namesWhenKept`) is named
   * by `deliver`, which puts it here named before it reports the delivery.
   */
  message: StoredMessage;
}

/** Users wherever they are connected. */
export interface UserDirectory {
  /**
   * Delivers `text` to `userId`'s socket; false when nobody has that user. With `keep`, a message
   * delivered is also kept in history (one that was not, is not).
   */
  deliver(userId: string, text: string, keep?: Keep): MaybePromise<boolean>;
  /**
   * Makes `userId` the partner of `partner` by match number `match` (`Taken.match`), ending any
   * other pair `userId` was in (its old partner hears `hangup {reason:"peer_left"}`), and delivers
   * `announce` (its `assign_role`) in the same step, so that the user hears of its pairs in the
   * order they were made. A pairing older than the user's current pair (the user's own later
   * request took someone else first) is ended at once instead: `partner` hears `peer_left`. False
   * when nobody has `userId`.
   */
  pair(userId: string, partner: string, announce: string, match: number): MaybePromise<boolean>;
  /**
   * Ends `userId`'s pair if its partner is still `formerPartner`, then delivers `hangup` to it when
   * given. A pair that already ended, or moved on, is left alone.
   */
  endPair(userId: string, formerPartner: string, hangup: string | undefined): MaybePromise<void>;
}

/** Room membership, and delivery to every member. */
export interface RoomRegistry {
  /**
   * Adds `member`; a promise resolves once the member hears the room's broadcasts from every
   * process (the member's next frames wait for it). `restored`: a session rebuilt after its
   * process woke (a Durable Object), whom a shared registry still counts: only this process's
   * view changes.
   */
  join(room: string, member: Session, restored?: boolean): MaybePromise<void>;
  /** Removes `member`; a promise resolves once every process counts it out. */
  leave(room: string, member: Session): MaybePromise<void>;
  /**
   * Delivers `text` to every member of `room` (but `except`), wherever they are, keeping it in
   * history first when `keep` is given; returns how many it reached here.
   */
  broadcast(room: string, text: string, except?: Session, keep?: Keep): number;
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
  /**
   * Adds `userId` (a second add keeps the first `since`); a promise resolves once every process's
   * takes see it (the user's next frames wait for it). Never rejects. `restored`: a session
   * rebuilt after its process woke: a shared pool is not written again (another process's request
   * may have taken the user meanwhile), only this process's view.
   */
  add(userId: string, since: number, restored?: boolean): MaybePromise<void>;
  /** Removes `userId`, as `add` adds it. */
  delete(userId: string): MaybePromise<void>;
  /**
   * Atomically takes `requester` and one other member chosen uniformly (never one of `exclude`) out
   * of the pool, with one draw of `random()`; undefined, and nothing taken, when nobody else is
   * available.
   */
  take(
    requester: string,
    exclude: string | undefined,
    random: () => number,
  ): MaybePromise<Taken | undefined>;
}

/** A partner taken from the pool. */
export interface Taken {
  readonly userId: string;
  /** When the partner entered the pool. */
  readonly since: number;
  /**
   * The match's number, rising in the order the pool made its matches (across processes): of two
   * pairings of one user that cross on their way, the later match is the one that holds.
   */
  readonly match: number;
  /**
   * Another request (`by`, match number `match`) took the requester out of the pool just before
   * this take ran, and its pairing may not have reached the requester's process yet. The requester
   * is told of that pairing first and leaves it at once (`by` hears `peer_left`), as one process
   * would have ordered the two; the pairing itself, when it comes, is then ignored.
   */
  readonly preempted?: { readonly by: string; readonly match: number };
}

/**
 * UserIds held by other processes (a cluster): one live connection per userId across all of them.
 * The hub consults it only for a userId this process does not hold; a process alone has none.
 */
export interface UserClaims {
  /**
   * Before the upgrade of `request`, for a userId not held here: claims it for this process, or
   * asks the process holding it to hand it over (same token) or to probe its socket (no token).
   * Undefined when there is nothing to wait for. Never rejects.
   */
  prepare(request: OpenRequest): Promise<void> | undefined;
  /**
   * At the open of `request` (after `prepare`), for a userId not held here: refused (another
   * process keeps it), or accepted with the session another process handed over, if any.
   */
  open(request: OpenRequest): { refused: true } | { refused: false; state?: SessionState };
  /** A session of this process ended without handing its userId to another process. */
  released(userId: string): void;
}

/**
 * Calls that ended while their user was away (`resume.ts`), kept for one more window so that the
 * user, back with its token, is told the call is over: this process's memory, or where every
 * process of a cluster finds them.
 */
export interface EndedCalls {
  /** `userId`'s call with `partner` ended while it was away: kept `ms` for its token's holder. */
  keep(userId: string, token: string, partner: string, ms: number): void;
  /** The partner of `userId`'s ended call if `token` is the one kept (taken: told once). */
  take(userId: string, token: string): MaybePromise<string | undefined>;
}

/** What another process may ask of this one about a user it holds. */
export type Yield =
  /** Nobody here holds the user. */
  | { outcome: 'gone' }
  /** Its socket showed a sign of life: the newcomer is refused. */
  | { outcome: 'alive' }
  /** The newcomer had the token: the session was closed here (4000) and moves to it. */
  | { outcome: 'handed'; state: SessionState };

/** What the hub offers the seams that share its state with other processes. */
export interface HubHost {
  readonly metrics: Metrics;
  readonly envelopes: Envelopes;
  /** This process's users (the in-memory directory). */
  readonly local: UserDirectory;
  /** This process's rooms. */
  readonly localRooms: RoomRegistry;
  /** This process's sessions. */
  sessions(): Iterable<Session>;
  /** Whether a session of this process holds `userId`. */
  has(userId: string): boolean;
  /**
   * A newcomer on another process wants `userId`: hand the session over if `tokenMatches` its
   * token, otherwise probe its socket (`TAKEOVER_PROBE_MS`); a silent one is closed and ended.
   */
  yieldUser(userId: string, tokenMatches: (token: string) => boolean): Promise<Yield>;
  /** Another process holds `userId` now: its session here is closed (4000) and ended. */
  evict(userId: string): void;
  /**
   * `userIds` are gone with their process: their partners here get `hangup peer_disconnected`,
   * and members here of the rooms they `left` (room, userId) get their `user_status` offline.
   */
  usersGone(userIds: ReadonlySet<string>, left: readonly (readonly [string, string])[]): void;
  /** Persists what an operation outside a frame changed. */
  flush(): void;
}

/** A user waiting for a seam's answer, told `error unavailable` if it cannot come. */
export interface Asker {
  readonly session: Session;
  readonly messageId: string | undefined;
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
