/**
 * The `RoomRegistry` a gateway hands its hub in the sharded deployment (`room.ts` has
 * the room objects), the counterpart of the Redis cluster's (`src/cluster/rooms.ts`): this
 * gateway's members hear a broadcast at once, the room object tells the other gateways, and a
 * membership counts once the room object has it. One stub per room while this gateway has
 * something to say to it: calls on one stub arrive in the order they were made.
 */
import type { StoredMessage } from '../core/history.ts';
import { UNNAMED } from '../core/history.ts';
import type { Keep, RoomRegistry } from '../core/seams.ts';
import { type Env, roomObject } from './env.ts';
import { retryOnce, stubBroken } from './fanout.ts';

export interface RoomSeamOptions {
  env: Env;
  /** This gateway's name (`gateway-{n}`): the room objects deliver to it by that name. */
  gateway: string;
  /** The hub's own rooms: this gateway's members. */
  local: RoomRegistry;
  /** A call to a room object failed for good (after its one retry, where one is allowed). */
  onError(error: unknown): void;
}

type RoomStub = ReturnType<typeof roomObject>;

/** A gateway's `RoomRegistry`, and the room objects' history through the same ordered stubs. */
export interface RoomSeam extends RoomRegistry {
  /**
   * `RoomRpc.nextId` on the stub the room's broadcasts take: a gateway's ids and broadcasts of a
   * room then reach it in the order the gateway made them. Retried once where allowed (an id
   * burnt by a first attempt that did arrive is harmless: ids need only rise).
   */
  nextId(room: string): Promise<string>;
  /** `RoomRpc.readHistory`, after this gateway's earlier broadcasts to the room. */
  readHistory(room: string, before: string | undefined, limit: number): Promise<StoredMessage[]>;
}

/**
 * The `RoomRegistry` of a gateway: membership goes to this gateway's rooms at once and to the
 * room's object, a broadcast to this gateway's members at once and to the room object, which
 * keeps it and tells the other gateways; counts and lists are the room object's.
 */
export function createRoomSeam(options: RoomSeamOptions): RoomSeam {
  const { env, gateway: self, local, onError } = options;
  /** Each room this gateway talks to: its stub, kept while it has members here or calls out. */
  const links = new Map<string, { stub: RoomStub; calls: number }>();
  /** Memberships whose write failed, by room: written again ahead of the next call to the room. */
  const unwritten = new Map<string, Map<string, boolean>>();
  /** Each member's latest write (by `{room}\n{userId}`), while it is out or unwritten. */
  const latest = new Map<string, number>();
  let writes = 0;

  function call<T>(room: string, fn: (stub: RoomStub) => PromiseLike<T>): Promise<T> {
    let link = links.get(room);
    if (link === undefined) links.set(room, (link = { stub: roomObject(env, room), calls: 0 }));
    const again = unwritten.get(room);
    if (again !== undefined) {
      unwritten.delete(room);
      for (const [userId, join] of again) write(room, userId, join);
    }
    const mine = link;
    // Dropped only with nothing out: a leave and a later join must go on the same stub.
    const settle = (broken: boolean) => {
      mine.calls--;
      if (links.get(room) === mine && (broken || (mine.calls === 0 && local.count(room) === 0)))
        links.delete(room);
    };
    mine.calls++;
    // Called at once (the executor runs now), and a call that throws settles like one that fails.
    return new Promise<T>((resolve) => resolve(fn(mine.stub))).then(
      (value) => {
        settle(false);
        return value;
      },
      (error: unknown) => {
        settle(stubBroken(error));
        throw error;
      },
    );
  }

  /** Join and leave are idempotent in the room object: retried once where the runtime allows. */
  function write(room: string, userId: string, join: boolean): Promise<void> {
    const member = `${room}\n${userId}`;
    const mine = ++writes;
    latest.set(member, mine);
    const pending = unwritten.get(room);
    if (pending?.delete(userId) && pending.size === 0) unwritten.delete(room);
    return retryOnce(() =>
      call(room, (stub) => (join ? stub.join(room, userId, self) : stub.leave(room, userId, self))),
    ).then(
      () => {
        if (latest.get(member) === mine) latest.delete(member);
      },
      (error: unknown) => {
        onError(error);
        if (latest.get(member) !== mine) return;
        let pending = unwritten.get(room);
        if (pending === undefined) unwritten.set(room, (pending = new Map()));
        pending.set(userId, join);
      },
    );
  }

  function send(room: string, text: string, keep: Keep | undefined, retry: boolean) {
    const attempt = () => call(room, (stub) => stub.broadcast(room, text, self, keep));
    return retry ? retryOnce(attempt) : attempt();
  }

  return {
    get size() {
      return local.size;
    },
    join(room, member, restored) {
      local.join(room, member);
      // A session restored after the gateway woke: the room object has kept the membership.
      if (restored) return;
      return write(room, member.userId, true);
    },
    leave(room, member) {
      local.leave(room, member);
      return write(room, member.userId, false);
    },
    broadcast(room, text, except, keep) {
      if (keep !== undefined && keep.message.id === UNNAMED) {
        // The room object names it: this gateway's members get it named too, once it is, and
        // that is counted nowhere (nothing is reached now). Not retried: it would be named twice.
        send(room, text, keep, false).then(({ message }) => {
          if (message === undefined) return;
          keep.message = message;
          local.broadcast(room, message.text, except);
        }, onError);
        return 0;
      }
      // Kept by the room object, not here. A retry keeps a named message again under the same id.
      const reached = local.broadcast(room, text, except);
      send(room, text, keep, true).then(() => {}, onError);
      return reached;
    },
    count: (room) => retryOnce(() => call(room, (stub) => stub.count(room))),
    members: (room, limit) => retryOnce(() => call(room, (stub) => stub.members(room, limit))),
    nextId: (room) => retryOnce(() => call(room, (stub) => stub.nextId(room))),
    readHistory: (room, before, limit) =>
      retryOnce(() => call(room, (stub) => stub.readHistory(room, before, limit))),
  };
}
