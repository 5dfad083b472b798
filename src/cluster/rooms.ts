/**
 * Rooms across the cluster: the `RoomRegistry` seam of a node. ZSET `room:{name}` holds the
 * members (for counts and lists), and a channel per room that a node subscribes to while it has a
 * member there carries broadcasts: a broadcast is serialized once, delivered here at once and
 * published once for the other nodes.
 */
import type { HubHost, RoomRegistry } from '../core/seams.ts';
import type { RedisLink } from './redis.ts';
import { MEMBERSHIP } from './scripts.ts';

export interface RoomsOptions {
  link: RedisLink;
  nodeId: string;
  /** Keys: ZSET `room:{name}`, this node's SET of memberships, HASH `rooms`. */
  key: { room(room: string): string; myMembers: string; rooms: string };
  /** Channel prefix of the rooms (`{prefix}room:`). */
  roomPrefix: string;
  /** The hub, once it has asked for its seams. */
  host(): HubHost | undefined;
  /** This process's rooms, from the hub. */
  localRooms(): RoomRegistry | undefined;
  warn(event: string): (error: unknown) => void;
}

export interface Rooms {
  /** The hub's seam. */
  seam(local: RoomRegistry): RoomRegistry;
  /** A broadcast on the channel of `room`. */
  onMessage(room: string, message: string): void;
  /** Writes a membership; resolves once written, or failed (then kept to write again). */
  write(room: string, userId: string, join: boolean): Promise<void>;
  /** Writes again the memberships whose write failed. */
  writeAgain(): void;
}

export function createRooms(options: RoomsOptions): Rooms {
  const { link, nodeId, key, roomPrefix, host, warn } = options;
  /** Membership writes that failed while Redis was away, written again when it is back. */
  const unwritten = new Map<string, { room: string; userId: string; join: boolean }>();
  /** Each room this node has members in: its channel's subscription, settled once subscribed. */
  const subscribing = new Map<string, Promise<void>>();

  const membership = (room: string, userId: string) => `${room}\n${userId}`;
  function write(room: string, userId: string, join: boolean): Promise<void> {
    const member = membership(room, userId);
    unwritten.delete(member);
    return link
      .run(
        MEMBERSHIP,
        [key.room(room), key.myMembers, key.rooms],
        [userId, member, Date.now(), room, join ? '1' : '0'],
      )
      .then(
        () => {},
        (error) => {
          unwritten.set(member, { room, userId, join });
          warn('cluster_membership_failed')(error);
        },
      );
  }

  const seam = (local: RoomRegistry): RoomRegistry => ({
    get size() {
      return local.size;
    },
    join(room, member) {
      let subscribed = subscribing.get(room);
      if (local.count(room) === 0 || !subscribed) {
        subscribed = link.subscribe(`${roomPrefix}${room}`).catch(warn('cluster_subscribe_failed'));
        subscribing.set(room, subscribed);
      }
      local.join(room, member);
      const written = write(room, member.userId, true);
      return Promise.all([subscribed, written]).then(() => {});
    },
    leave(room, member) {
      local.leave(room, member);
      if (local.count(room) === 0) {
        subscribing.delete(room);
        link.unsubscribe(`${roomPrefix}${room}`).catch(warn('cluster_unsubscribe_failed'));
      }
      return write(room, member.userId, false);
    },
    broadcast(room, text, except, keep) {
      // Kept (the append goes out first) before any other node can hear it: the link writes
      // commands in order, so a member elsewhere that reads history finds it.
      const reached = local.broadcast(room, text, except, keep);
      // After what the same turn routed to users (the link sends held routes first), so a DM
      // sent before it is heard before it.
      link.send('PUBLISH', `${roomPrefix}${room}`, `${nodeId}\n${text}`).catch(() => {
        host()?.metrics.inc('aleatoria_state_failures_total');
      });
      return reached;
    },
    count: (room) => link.send('ZCARD', key.room(room)) as Promise<number>,
    members: (room, limit) =>
      link.send('ZRANGE', key.room(room), 0, limit - 1) as Promise<string[]>,
  });

  /** Counts frames delivered here that another node sent (as the hub counts its own). */
  function countOut(text: string, reached: number) {
    if (reached > 0)
      host()?.metrics.inc(
        'aleatoria_messages_out_total',
        text.slice(9, text.indexOf('"', 9)),
        reached,
      );
  }

  return {
    seam,
    onMessage(room, message) {
      const cut = message.indexOf('\n');
      const localRooms = options.localRooms();
      // Published by this node: its members had it at once.
      if (message.slice(0, cut) === nodeId || !localRooms) return;
      const text = message.slice(cut + 1);
      countOut(text, localRooms.broadcast(room, text));
    },
    write,
    writeAgain() {
      for (const { room, userId, join } of [...unwritten.values()]) write(room, userId, join);
    },
  };
}
