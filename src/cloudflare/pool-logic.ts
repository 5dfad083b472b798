/**
 * The matchmaker's pool without the platform, so that Node's vitest can hold it to the Redis
 * pool's semantics (src/cluster/redis-pool.ts) with a scripted draw and a fake clock:
 *
 * - **The rules** (`createPoolRules`), run by the one `MatchmakerObject`
 *   (`matchmaker.ts`): members in memory, picked by position as `pickAmong` does
 *   (src/core/pool.ts), every change handed first to `PoolWrites` (the object's SQLite) and applied
 *   to memory only once written, so a write that throws changes nothing.
 * - **A gateway's view** (`createMatchmakerPool`): the `MatchPool` seam its hub is given, over RPC.
 */
import * as v from 'valibot';
import { createAvailabilityPool } from '../core/pool.ts';
import { RoomName, UserId } from '../core/protocol.ts';
import type { MatchPool, Taken } from '../core/seams.ts';
import type { MatchmakerRpc } from './rpc.ts';

/** How long a "taken by" note answers the taken user's own request (the Redis pool's PX 60000). */
export const TAKEN_NOTE_MS = 60_000;
/** Expired notes go in one sweep at most this often: each take writes a note, none need go at once. */
const SWEEP_EVERY_MS = 1_000;
/** Gateway names are `gateway-{n}`: anything longer is not one. */
const MAX_GATEWAY_LENGTH = 64;
/** The largest double below 1: a draw of 1 or more would land past the last eligible member. */
const LAST_DRAW = 1 - 2 ** -53;

/** A member of the pool as it is kept. */
export interface Member {
  readonly userId: string;
  /** When it entered the pool (the gateway's clock; `Taken.since`). */
  readonly since: number;
  /** The gateway that added it, for operators: nothing routes by it (`gatewayOf` does). */
  readonly gateway: string;
}

/** Who took a user out of the pool, by which match, when (the matchmaker's clock). */
export interface TakenNote {
  readonly by: string;
  readonly match: number;
  readonly at: number;
}

/** What a take changed, to be written in one transaction. */
export interface TakeWrite {
  /** The requester, when it was in the pool (then it leaves it). */
  readonly requester: string | undefined;
  readonly partner: string;
  /** The match counter from now on. */
  readonly match: number;
  /** The note on `partner`, replacing any older one. */
  readonly note: TakenNote;
  /** Notes taken at or before this time are to go; undefined when no sweep is due. */
  readonly expireUpTo: number | undefined;
}

/** Where the rules make each change durable before memory has it; a throw aborts the change. */
export interface PoolWrites {
  add(member: Member): void;
  delete(userId: string): void;
  take(write: TakeWrite): void;
  /** `room` has members (`occupied`) or none, from now on. */
  room(room: string, occupied: boolean): void;
}

/** What the rules start from: what an earlier instance wrote (nothing, the first time). */
export interface SavedPool {
  readonly members: Iterable<Member>;
  readonly matches: number;
  /** The rooms with members. */
  readonly rooms: Iterable<string>;
  /** Unexpired notes, oldest first (the sweep walks them in that order). */
  readonly notes: Iterable<readonly [userId: string, note: TakenNote]>;
}

export interface PoolRules {
  readonly size: number;
  /** Matches made so far: the last `Taken.match`. */
  readonly matches: number;
  has(userId: string): boolean;
  /** Adds `userId`; a second add changes nothing (it keeps the first `since` and gateway). */
  add(userId: string, since: number, gateway: string): void;
  delete(userId: string): void;
  /**
   * `MatchPool.take` with the caller's draw, at `now`: `preempted` when the requester was not in
   * the pool and a note of the last {@link TAKEN_NOTE_MS} says who took it.
   */
  take(
    requester: string,
    exclude: string | undefined,
    draw: number,
    now: number,
  ): Taken | undefined;
  /** Rooms with members across the deployment (`MatchmakerRpc.roomOccupied`). */
  readonly rooms: number;
  /**
   * `room` got its first member (`occupied`) or lost its last. Said by name, so a repeat (a
   * retried call) changes nothing and the count cannot drift.
   */
  roomOccupied(room: string, occupied: boolean): void;
}

/** `draw` as a position in [0, 1): what is not a number in range lands on its nearest end. */
export const clampDraw = (draw: unknown): number =>
  typeof draw === 'number' && draw > 0 ? Math.min(draw, LAST_DRAW) : 0;

/** `value` if it is a userId the protocol accepts (what reaches the pool from a gateway's hub). */
export function checkUserId(value: unknown, what: string): string {
  if (!v.is(UserId, value)) throw new TypeError(`matchmaker: ${what} is not a userId`);
  return value;
}

export function checkGateway(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_GATEWAY_LENGTH)
    throw new TypeError('matchmaker: gateway is not a gateway name');
  return value;
}

export function checkRoom(value: unknown): string {
  if (!v.is(RoomName, value)) throw new TypeError('matchmaker: room is not a room name');
  return value;
}

export function checkSince(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new TypeError('matchmaker: since is not a time');
  return value;
}

export function createPoolRules(saved: SavedPool, writes: PoolWrites): PoolRules {
  const pool = createAvailabilityPool();
  for (const member of saved.members) pool.add(member.userId, member.since);
  let matches = saved.matches;
  /** By taken user, oldest first: a note taken again moves to the end, as its time does. */
  const notes = new Map<string, TakenNote>(saved.notes);
  let sweptAt = Number.NEGATIVE_INFINITY;
  const rooms = new Set(saved.rooms);

  const fresh = (note: TakenNote | undefined, now: number) =>
    note !== undefined && now - note.at < TAKEN_NOTE_MS ? note : undefined;

  return {
    get size() {
      return pool.size;
    },
    get matches() {
      return matches;
    },
    has: (userId) => pool.has(userId),
    add(userId, since, gateway) {
      if (pool.has(userId)) return;
      writes.add({ userId, since, gateway });
      pool.add(userId, since);
    },
    delete(userId) {
      if (!pool.has(userId)) return;
      writes.delete(userId);
      pool.delete(userId);
    },
    take(requester, exclude, draw, now) {
      const at = clampDraw(draw);
      const partner = pool.pick(() => at, [requester, exclude]);
      if (partner === undefined) return undefined;
      const since = pool.since(partner)!;
      const inPool = pool.has(requester);
      // Only a requester already out of the pool can have been taken by a request that ran
      // before its own: one still in it was added again after, and that add is the newer word.
      const older = inPool ? undefined : fresh(notes.get(requester), now);
      const match = matches + 1;
      const note: TakenNote = { by: requester, match, at: now };
      const expireUpTo = now - sweptAt >= SWEEP_EVERY_MS ? now - TAKEN_NOTE_MS : undefined;
      writes.take({ requester: inPool ? requester : undefined, partner, match, note, expireUpTo });
      pool.delete(requester);
      pool.delete(partner);
      matches = match;
      notes.delete(partner);
      notes.set(partner, note);
      if (expireUpTo !== undefined) {
        sweptAt = now;
        for (const [userId, { at }] of notes) {
          if (at > expireUpTo) break;
          notes.delete(userId);
        }
      }
      return older
        ? { userId: partner, since, match, preempted: { by: older.by, match: older.match } }
        : { userId: partner, since, match };
    },
    get rooms() {
      return rooms.size;
    },
    roomOccupied(room, occupied) {
      if (rooms.has(room) === occupied) return;
      writes.room(room, occupied);
      if (occupied) rooms.add(room);
      else rooms.delete(room);
    },
  };
}

/** The `MatchPool` a gateway gives its hub, plus what its `GatewayRpc.pair` tells it. */
export interface MatchmakerPool extends MatchPool {
  take(
    requester: string,
    exclude: string | undefined,
    random: () => number,
  ): Promise<Taken | undefined>;
  /** A pairing for `userId` (a user of this gateway) arrived: it is out of the pool. */
  markTaken(userId: string): void;
}

export interface MatchmakerPoolOptions {
  /** The matchmaker's stub; asked again after a call fails (a stub may be broken by then). */
  stub(): MatchmakerRpc;
  /** This gateway's name, kept with each user it adds. */
  gateway: string;
  /** Failed calls, for logging: `add`/`delete` never reject, `take` rejects as well. */
  onError(error: unknown): void;
}

/**
 * Worth one more try: not the object's own refusal (`remote`: the same call gets the same answer)
 * nor an overload (Cloudflare's error handling guide: retrying one only adds to it).
 */
function worthRetry(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return true;
  const { remote, overloaded } = error as { remote?: unknown; overloaded?: unknown };
  return remote !== true && overloaded !== true;
}

/**
 * A gateway's view of the matchmaker. `has` is this gateway's own users (a mirror: only what it
 * added, less what it removed or heard was taken); `size` the whole pool as of the last reply.
 * Calls go on one stub while it works, so that this gateway's calls reach the object in the order
 * they were made, as the Redis pool's one connection keeps them.
 */
export function createMatchmakerPool(options: MatchmakerPoolOptions): MatchmakerPool {
  const { gateway } = options;
  /** This gateway's available users, each with the number of its latest add. */
  const local = new Map<string, number>();
  /**
   * Counts `add`s. A take forgets a user only if it was not added again after the take was asked
   * for: that later add reaches the matchmaker after the take, so the user is available again.
   */
  let adds = 0;
  /** Adds sent and not yet answered, by user: any of them may land after a take of that user. */
  const pending = new Map<string, number>();
  let size = 0;
  let sizing = false;
  let sizeAgain = false;
  let current: MatchmakerRpc | undefined;

  const report = (error: unknown) => {
    try {
      options.onError(error);
    } catch {
      // A failing logger must not turn a write that never rejects into one that does.
    }
  };

  /** `send` on the current stub; a failure, even a synchronous one, is a rejection. */
  function call<T>(send: (stub: MatchmakerRpc) => Promise<T>): Promise<T> {
    let stub: MatchmakerRpc | undefined;
    let sent: Promise<T>;
    try {
      stub = current ??= options.stub();
      sent = send(stub);
    } catch (error) {
      sent = Promise.reject(error);
    }
    return sent.catch((error: unknown) => {
      if (current === stub) current = undefined;
      throw error;
    });
  }

  /** Reads the pool's size, one read at a time: writes meanwhile ask for one more, not one each. */
  function refresh() {
    if (sizing) {
      sizeAgain = true;
      return;
    }
    sizing = true;
    call((stub) => stub.size()).then(
      (answer) => {
        if (Number.isSafeInteger(answer) && answer >= 0) size = answer;
        sizing = false;
        if (sizeAgain) {
          sizeAgain = false;
          refresh();
        }
      },
      () => {
        // The figure is for /stats and may wait for the next write; a failing link shows in those.
        sizing = false;
        sizeAgain = false;
      },
    );
  }

  /** `send`, tried once more (`worthRetry`) while `wanted` still holds; resolves either way. */
  function write(send: (stub: MatchmakerRpc) => Promise<void>, wanted: () => boolean) {
    return call(send)
      .catch((error: unknown) => {
        if (!worthRetry(error) || !wanted()) throw error;
        return call(send);
      })
      .then(refresh, report);
  }

  const forget = (userId: string, asOf: number) => {
    const added = local.get(userId);
    if (added !== undefined && added <= asOf) local.delete(userId);
  };

  return {
    get size() {
      return size;
    },
    has: (userId) => local.has(userId),
    add(userId, since, restored) {
      const added = ++adds;
      local.set(userId, added);
      // A session restored when this gateway woke: the matchmaker has the user, or another
      // gateway's request took it while this one slept (its pairing, which woke this gateway,
      // says so next). Sending it again could put a paired user back in the pool.
      if (restored) return;
      pending.set(userId, (pending.get(userId) ?? 0) + 1);
      // Always sent, even for a user the mirror has: another gateway's take may have removed it
      // without this one hearing yet. The matchmaker keeps the first `since` of a user still there.
      // A retry is for this add only: not once the user was removed, taken, or added again.
      return write(
        (stub) => stub.add(userId, since, gateway),
        () => local.get(userId) === added,
      ).finally(() => {
        const left = pending.get(userId)! - 1;
        if (left > 0) pending.set(userId, left);
        else pending.delete(userId);
      });
    },
    delete(userId) {
      // Not available here (never added, taken, or removed already): nothing to send. Every
      // disconnect asks, so this keeps a call to the one matchmaker off each one.
      if (!local.delete(userId)) return;
      return write(
        (stub) => stub.delete(userId),
        () => !local.has(userId),
      );
    },
    async take(requester, exclude, random) {
      const asOf = adds;
      const draw = random();
      let taken: Taken | undefined;
      try {
        // Never retried: a take whose answer was lost may have run, and a second one would take
        // a second partner. The hub answers the requester `error unavailable` instead.
        taken = await call((stub) => stub.take(requester, exclude, draw));
      } catch (error) {
        report(error);
        throw error;
      }
      // Nobody else available: the matchmaker left the requester where it was, and so does this.
      if (taken) {
        forget(requester, asOf);
        forget(taken.userId, asOf);
      }
      refresh();
      return taken;
    },
    markTaken(userId) {
      // An add still on its way may reach the matchmaker after the take: the user is then in the
      // pool again, so the mirror keeps it (a `delete` later costs a call, a lost one a ghost).
      if (!pending.has(userId)) local.delete(userId);
    },
  };
}
