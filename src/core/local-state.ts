/**
 * The in-memory implementations of the seams (`seams.ts`): everything in this process, answered at
 * once. `npm start` and every Deno or Node process without a shared store run on these.
 */
import type { Envelopes } from './envelope.ts';
import { createAvailabilityPool } from './pool.ts';
import type { Keep, MatchPool, RoomRegistry, UserDirectory } from './seams.ts';
import type { ConnId, Session, Sessions } from './session.ts';

export interface LocalStateDeps {
  readonly sessions: Sessions;
  readonly envelopes: Envelopes;
  /** Sends to one socket of this process, counted. */
  send(conn: ConnId, text: string): void;
  /** The session's durable state changed. */
  touch(session: Session): void;
  /** Ends `session`'s pair, telling its partner `hangup {reason}`. */
  endPairOf(session: Session, reason: string): void;
  /** Ends `partner`'s pair with `userId`, wherever `partner` is, telling it `hangup {reason}`. */
  leave(userId: string, partner: string, reason: string): void;
  /** Keeps a chat message in history. */
  keep(keep: Keep): void;
}

export function createLocalUsers(deps: LocalStateDeps): UserDirectory {
  const { byUser } = deps.sessions;
  /** Tells `session` about its pairs, after its own match if that one is still being settled. */
  const tell = (session: Session, text: string) => {
    if (session.held) session.held.push(text);
    else deps.send(session.conn, text);
  };
  const directory: UserDirectory = {
    deliver(userId, text, keep) {
      const session = byUser.get(userId);
      if (!session) return false;
      if (keep) deps.keep(keep);
      deps.send(session.conn, text);
      return true;
    },
    pair(userId, partner, announce, match) {
      const session = byUser.get(userId);
      if (!session) return false;
      // Told of already, and left, when the user's own later match was made (Taken.preempted).
      const told = session.preempted?.indexOf(match) ?? -1;
      if (told >= 0) {
        session.preempted!.splice(told, 1);
        return true;
      }
      if (match < session.pairedAt) {
        // The user's own later match took it first, on another process: this pair is over. If
        // that match is not announced yet, the user hears of this one first, as it was made.
        if (session.held) deps.send(session.conn, announce);
        deps.leave(userId, partner, 'peer_left');
        return true;
      }
      session.pairedAt = match;
      // A user is in one pair at most: whoever it was paired with learns that call is over.
      if (session.partner !== partner) deps.endPairOf(session, 'peer_left');
      session.partner = partner;
      deps.touch(session);
      tell(session, announce);
      return true;
    },
    endPair(userId, formerPartner, hangup) {
      const session = byUser.get(userId);
      if (!session) return;
      if (session.partner !== formerPartner) {
        // The pair may be the one the user's own take in flight is making: judge once it is made.
        if (session.taking)
          session.taking.push(() => directory.endPair(userId, formerPartner, hangup));
        return;
      }
      session.partner = undefined;
      deps.touch(session);
      if (hangup !== undefined) tell(session, hangup);
    },
  };
  return directory;
}

/** Rooms of this process; a broadcast is serialized once by the caller and written to each member. */
export function createLocalRooms(
  write: (conn: ConnId, text: string) => void,
  keep: (keep: Keep) => void,
): RoomRegistry {
  const rooms = new Map<string, Set<Session>>();
  return {
    get size() {
      return rooms.size;
    },
    join(room, member) {
      let members = rooms.get(room);
      if (!members) rooms.set(room, (members = new Set()));
      members.add(member);
    },
    leave(room, member) {
      const members = rooms.get(room);
      members?.delete(member);
      if (members?.size === 0) rooms.delete(room);
    },
    broadcast(room, text, except, kept) {
      if (kept) keep(kept);
      const members = rooms.get(room);
      if (!members) return 0;
      for (const member of members) if (member !== except) write(member.conn, text);
      return except !== undefined && members.has(except) ? members.size - 1 : members.size;
    },
    count: (room) => rooms.get(room)?.size ?? 0,
    members(room, limit) {
      const ids: string[] = [];
      for (const member of rooms.get(room) ?? []) {
        if (ids.length >= limit) break;
        ids.push(member.userId);
      }
      return ids;
    },
  };
}

export function createLocalPool(): MatchPool {
  // The pool keeps when each member entered it (`Taken.since`) beside the member itself.
  const pool = createAvailabilityPool();
  let matches = 0;
  return {
    get size() {
      return pool.size;
    },
    has: (userId) => pool.has(userId),
    add: (userId, since) => pool.add(userId, since),
    delete: (userId) => pool.delete(userId),
    take(requester, exclude, random) {
      const picked = pool.pick(random, [requester, exclude]);
      if (picked === undefined) return undefined;
      const since = pool.since(picked)!;
      pool.delete(requester);
      pool.delete(picked);
      return { userId: picked, since, match: ++matches };
    },
  };
}
