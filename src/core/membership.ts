/**
 * What a session belongs to besides itself: its rooms (joined and left, with presence told) and
 * its pair (ended, with the partner told wherever it is). Each change is marked for `persist` and,
 * where shared state is written, waited for by the session's next frames (`ordering.ts`).
 */
import type { Envelopes } from './envelope.ts';
import type { Presence } from './presence.ts';
import type { MaybePromise, RoomRegistry, UserDirectory } from './seams.ts';
import type { Session } from './session.ts';

export interface MembershipDeps {
  readonly rooms: RoomRegistry;
  readonly presence: Presence;
  readonly envelopes: Envelopes;
  /** The users seam: a partner is reached wherever it is. */
  readonly users: UserDirectory;
  wait(session: Session, write: MaybePromise<void>): void;
  touch(session: Session): void;
  later<T>(value: MaybePromise<T>, fn: (value: T) => void): void;
}

export interface Membership {
  /** `announce`: told to the room (not a session restored after a wake, which its room has). */
  joinRoom(session: Session, room: string, announce?: boolean): void;
  leaveRoom(session: Session, room: string): void;
  /** Ends `session`'s pair; the partner is told with a server `hangup` when `reason` is given. */
  endPairOf(session: Session, reason?: string): void;
  /** Ends `partner`'s pair with `userId`, wherever it is, telling it `reason` when given. */
  leave(userId: string, partner: string, reason?: string): void;
}

export function createMembership(deps: MembershipDeps): Membership {
  const { rooms, presence, envelopes, wait, touch } = deps;
  const membership: Membership = {
    joinRoom(session, room, announce = true) {
      wait(session, rooms.join(room, session, !announce));
      session.rooms.add(room);
      touch(session);
      if (announce) presence.tell(rooms, room, session.userId, 'online', session);
    },
    leaveRoom(session, room) {
      wait(session, rooms.leave(room, session));
      session.rooms.delete(room);
      touch(session);
      presence.tell(rooms, room, session.userId, 'offline', session);
    },
    endPairOf(session, reason) {
      const former = session.partner;
      session.partner = undefined;
      touch(session);
      if (former !== undefined) membership.leave(session.userId, former, reason);
    },
    leave(userId, partner, reason) {
      const hangup = reason === undefined ? undefined : envelopes.hangup(userId, partner, reason);
      deps.later(deps.users.endPair(partner, userId, hangup), () => {});
    },
  };
  return membership;
}
