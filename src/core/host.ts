/**
 * What the hub offers seams shared with other processes (`HubSeams.claims`): the questions other
 * processes ask about users held here (hand one over, probe it, drop it) and the news that users
 * held elsewhere are gone with their process.
 */
import type { Envelopes } from './envelope.ts';
import type { Metrics } from './metrics.ts';
import type { Presence } from './presence.ts';
import type { HubHost, MatchPool, RoomRegistry, UserDirectory } from './seams.ts';
import { type Session, type Sessions, stateOf } from './session.ts';

export interface HostDeps {
  readonly sessions: Sessions;
  readonly metrics: Metrics;
  readonly envelopes: Envelopes;
  readonly localUsers: UserDirectory;
  readonly localRooms: RoomRegistry;
  readonly rooms: RoomRegistry;
  readonly pool: MatchPool;
  readonly presence: Presence;
  /** The socket's probe if one runs or starts (identity.ts), to wait for. */
  probe(session: Session): Promise<void> | undefined;
  /** Identity's bookkeeping for a session that ends (its probe, its claim). */
  ended(session: Session): void;
  /** Tells the socket why (`error replaced`) and closes it with 4000. */
  replace(session: Session, why: string): void;
  /** Whether `session` waits with no socket for its user to come back to a call (`resume.ts`). */
  away(session: Session): boolean;
  /** Ends a session as a disconnect would: rooms, pool, partner hung up, forgotten. */
  end(session: Session): void;
  /** Drops the session from this process's maps, telling nobody. */
  forget(session: Session): void;
  flush(): void;
}

export function createHost(deps: HostDeps): HubHost {
  const { byUser } = deps.sessions;
  const { metrics, envelopes, localUsers, localRooms, rooms, pool, presence } = deps;
  return {
    metrics,
    envelopes,
    local: localUsers,
    localRooms,
    sessions: () => byUser.values(),
    has: (userId) => byUser.has(userId),
    async yieldUser(userId, tokenMatches) {
      const existing = byUser.get(userId);
      if (!existing) return { outcome: 'gone' };
      if (existing.token !== undefined && tokenMatches(existing.token)) {
        // A takeover from another process: the session moves there as it is (rooms, pool,
        // partner), so nobody is told anything but the old socket.
        const away = deps.away(existing);
        const state = stateOf(existing, pool.has(userId), away);
        deps.ended(existing);
        if (!away) deps.replace(existing, 'This session was taken over by a new connection.');
        for (const room of existing.rooms) rooms.leave(room, existing);
        if (state.available) pool.delete(userId);
        deps.forget(existing);
        return { outcome: 'handed', state };
      }
      const probe = deps.probe(existing);
      if (probe) await probe;
      return byUser.get(userId) === existing ? { outcome: 'alive' } : { outcome: 'gone' };
    },
    evict(userId) {
      const session = byUser.get(userId);
      if (!session) return;
      deps.replace(session, 'This session was replaced by a connection elsewhere.');
      deps.end(session);
      deps.flush();
    },
    usersGone(userIds, left) {
      for (const session of byUser.values())
        if (session.partner !== undefined && userIds.has(session.partner))
          localUsers.endPair(
            session.userId,
            session.partner,
            envelopes.hangup(session.partner, session.userId, 'peer_disconnected'),
          );
      // Each process tells its own members, as it would of a departure it saw itself.
      if (presence.enabled)
        for (const [room, userId] of left)
          if (localRooms.count(room) !== 0) presence.tell(localRooms, room, userId, 'offline');
      deps.flush();
    },
    flush: deps.flush,
  };
}
