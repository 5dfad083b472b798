/**
 * `user_status` online/offline to the other members of a room, for rooms up to
 * `PRESENCE_ROOM_LIMIT` members (0: never). The size is read from the room registry, so it is
 * the room's size wherever its members are.
 */
import type { Envelopes } from './envelope.ts';
import type { Metrics } from './metrics.ts';
import type { MaybePromise, RoomRegistry } from './seams.ts';
import type { Session } from './session.ts';

export interface Presence {
  readonly enabled: boolean;
  /**
   * Tells `room`'s members through `to` (the room's registry, or only this process's members
   * when each process tells its own) that `userId` came or went; `except`: the user's own session.
   * Called after a join and before a leave.
   */
  tell(
    to: RoomRegistry,
    room: string,
    userId: string,
    status: 'online' | 'offline',
    except?: Session,
  ): void;
}

export function createPresence(deps: {
  readonly limit: number;
  readonly rooms: RoomRegistry;
  readonly envelopes: Envelopes;
  readonly metrics: Metrics;
  later<T>(value: MaybePromise<T>, fn: (value: T) => void): void;
}): Presence {
  const { limit, rooms, envelopes, metrics } = deps;
  return {
    enabled: limit > 0,
    tell(to, room, userId, status, except) {
      if (limit <= 0) return;
      deps.later(rooms.count(room), (count) => {
        // The room's size with the user in it: after a join, before a leave.
        if ((status === 'online' ? count : count + 1) > limit) return;
        const text = envelopes.userStatus(room, userId, status);
        metrics.inc(
          'aleatoria_messages_out_total',
          'user_status',
          to.broadcast(room, text, except),
        );
      });
    },
  };
}
