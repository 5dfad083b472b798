/**
 * What the Durable Objects of a sharded deployment ask of each other (Workers RPC): the methods
 * each class offers, as plain interfaces, so that every class and every seam codes against the
 * same shapes without importing another class. Values cross as structured clones.
 *
 * - **Gateways** (`GATEWAY`, `gateway-{n}`, n = hash of the userId mod `GATEWAY_SHARDS`) hold the
 *   sockets and run the hub; a user always lands on the same one.
 * - **Rooms** (`ROOM`, one object per room name) hold who is in the room by gateway, the room's
 *   history, and fan a broadcast out with one call per gateway that has members.
 * - **The matchmaker** (`MATCHMAKER`, one object) holds the availability pool and numbers the
 *   matches.
 */
import type { StoredMessage } from '../core/history.ts';
import type { HubStats } from '../core/hub.ts';
import type { Taken } from '../core/seams.ts';

/** A message to keep with a delivery; `message.id` UNNAMED: the keeper names it. */
export interface KeepWire {
  readonly conversation: string;
  readonly message: StoredMessage;
}

export interface GatewayRpc {
  /**
   * Delivers `text` to `userId` if this gateway holds it (keeping it in the conversation's
   * history when `keep` is given, naming it first when unnamed); `found` false when nobody here
   * has the user. `message`: the message as kept (named).
   */
  deliver(
    userId: string,
    text: string,
    keep?: KeepWire,
  ): Promise<{ found: boolean; message?: StoredMessage }>;
  /** `UserDirectory.pair` for a user of this gateway. */
  pair(userId: string, partner: string, announce: string, match: number): Promise<boolean>;
  /** `UserDirectory.endPair` for a user of this gateway. */
  endPair(userId: string, formerPartner: string, hangup?: string): Promise<void>;
  /** Delivers a room's broadcast to this gateway's members of `room` (but `except`); how many. */
  roomDeliver(room: string, text: string, except?: string): Promise<number>;
  /** A page of a conversation this gateway keeps (`HistoryStore.read`). */
  readHistory(
    conversation: string,
    before: string | undefined,
    limit: number,
  ): Promise<StoredMessage[]>;
  /**
   * This gateway's `/stats` figures and `/metrics` exposition, for the Worker to add up, and how
   * many of its users have a partner (a pair across two gateways is one pair, counted by each).
   * With `rooms` (the operator page), also its members of each room.
   */
  figures(rooms?: boolean): Promise<{
    stats: HubStats;
    metrics: string;
    partnered: number;
    rooms?: { room: string; members: number }[];
  }>;
}

export interface RoomRpc {
  /** `userId` of `gateway` joins `room` (this object is `room`'s); returns the room's size after. */
  join(room: string, userId: string, gateway: string): Promise<number>;
  /** `userId` of `gateway` leaves; returns the room's size after. */
  leave(room: string, userId: string, gateway: string): Promise<number>;
  /**
   * Keeps `keep` in the room's history (naming it when unnamed), then delivers `text` (named) to
   * the members of every gateway but `from` (which delivered to its own); returns the message as
   * kept, if any.
   */
  broadcast(
    room: string,
    text: string,
    from: string,
    keep?: KeepWire,
  ): Promise<{ message?: StoredMessage }>;
  count(room: string): Promise<number>;
  members(room: string, limit: number): Promise<string[]>;
  /** `HistoryStore` of the room's conversation. */
  nextId(room: string): Promise<string>;
  readHistory(room: string, before: string | undefined, limit: number): Promise<StoredMessage[]>;
}

export interface MatchmakerRpc {
  /** Adds `userId` of `gateway` to the pool (a second add keeps the first `since`). */
  add(userId: string, since: number, gateway: string): Promise<void>;
  delete(userId: string): Promise<void>;
  /** `MatchPool.take`, with the draw made by the caller's `random()`. */
  take(requester: string, exclude: string | undefined, draw: number): Promise<Taken | undefined>;
  /** Available users, rooms with members: for `/stats`. */
  size(): Promise<number>;
  /** `room` got its first member (`occupied`) or lost its last: the deployment's room count. */
  roomOccupied(room: string, occupied: boolean): Promise<void>;
  /** The pool's size and the rooms with members, for `/stats` and `/metrics`. */
  figures(): Promise<{ available: number; rooms: number }>;
}
