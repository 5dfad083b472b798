/**
 * The hub's seams in a gateway of a sharded deployment (`rpc.ts`): where a gateway
 * finds users, rooms, the pool and history that are not its own.
 *
 * - **Users.** A userId always lands on `gatewayOf(userId)`: a user not held here is reached by
 *   one RPC to that gateway, and nobody else need be asked (no directory, no claims).
 * - **Direct history.** A pair's conversation is kept by the gateway of its first user (the
 *   lower userId), which is always the sender's or the recipient's: a DM costs at most one RPC,
 *   which delivers and keeps it in one step, and the keeper names it (`namesWhenKept`).
 * - **Rooms** (`room.ts`): one object per room; ids and history are the room's.
 * - **The pool** (`matchmaker.ts`): the one matchmaker.
 */
import {
  type HistoryLimits,
  type HistoryStore,
  nameMessage,
  type StoredMessage,
  UNNAMED,
} from '../core/history.ts';
import type { HubSeams } from '../core/hub.ts';
import type { HubHost, UserDirectory } from '../core/seams.ts';
import { type Env, gateway, gatewayOf, matchmaker } from './env.ts';
import { createSqliteHistory, type SqliteHistory } from './history.ts';
import { createMatchmakerPool, type MatchmakerPool } from './matchmaker.ts';
import { createRoomSeam, type RoomSeam } from './room-seam.ts';
import type { GatewayRpc } from './rpc.ts';

const ROOM_PREFIX = 'r:';

/**
 * A call's answer as a native promise: a stub's call returns a thenable that is no `Promise`, and
 * the hub tells an answer to come (`MaybePromise`) by `instanceof Promise`.
 */
const settled = <T>(call: PromiseLike<T>): Promise<T> => Promise.resolve(call);

/** The first user of a pair's conversation (`d:{a}\n{b}`, a < b): its gateway keeps it. */
const firstOf = (conversation: string) => conversation.slice(2, conversation.indexOf('\n'));

export interface Shards {
  readonly seams: HubSeams;
  /** The hub's offer to other objects, once the hub is built. */
  host(): HubHost;
  /** What other objects ask of this gateway, from the hub's own users and rooms. */
  readonly answer: Omit<GatewayRpc, 'figures'>;
}

export function createShards(options: {
  env: Env;
  /** This gateway's name (`gateway-{n}`). */
  name: string;
  shards: number;
  sql: SqlStorage;
  onError(event: string): (error: unknown) => void;
}): Shards {
  const { env, name, shards, onError } = options;
  let host: HubHost | undefined;
  let kept: SqliteHistory | undefined;
  let pool: MatchmakerPool | undefined;
  let rooms: RoomSeam | undefined;
  const here = (userId: string) => gatewayOf(userId, shards) === name;
  /**
   * One stub per other gateway while it works: calls on one stub arrive in the order they were
   * made (two DMs to one user stay in order), calls on two stubs need not. A stub that failed is
   * broken for good: the next call takes a new one.
   */
  const stubs = new Map<string, ReturnType<typeof gateway>>();
  const call = <T>(userId: string, send: (stub: ReturnType<typeof gateway>) => PromiseLike<T>) => {
    const to = gatewayOf(userId, shards);
    let stub = stubs.get(to);
    if (stub === undefined) stubs.set(to, (stub = gateway(env, to)));
    const used = stub;
    return settled(send(used)).catch((error: unknown) => {
      if (stubs.get(to) === used) stubs.delete(to);
      throw error;
    });
  };
  const own = (limits: HistoryLimits) => (kept ??= createSqliteHistory(options.sql, limits));

  /** Names an unnamed direct message with this gateway's clock (it keeps the conversation). */
  const named = (message: StoredMessage, conversation: string) =>
    message.id === UNNAMED
      ? nameMessage(message, kept!.nextId(conversation, Date.now()) as string)
      : message;

  const users = (local: UserDirectory): UserDirectory => ({
    deliver(userId, text, keep) {
      if (host?.has(userId) || here(userId)) {
        if (keep) keep.message = named(keep.message, keep.conversation);
        return local.deliver(userId, keep ? keep.message.text : text, keep);
      }
      if (!keep) return call(userId, (to) => to.deliver(userId, text)).then((a) => a.found);
      if (!here(firstOf(keep.conversation)))
        // The recipient's gateway keeps the conversation: it names, delivers and keeps at once.
        return call(userId, (to) => to.deliver(userId, text, keep)).then((answer) => {
          if (answer.message) keep.message = answer.message;
          return answer.found;
        });
      // This gateway keeps it: named and kept here before it leaves, so the recipient never sees
      // it before history has it; taken back should nobody have the recipient.
      const { conversation } = keep;
      const message = (keep.message = named(keep.message, conversation));
      kept!.append(conversation, message, Date.now());
      return call(userId, (to) => to.deliver(userId, message.text)).then((answer) => {
        if (!answer.found) kept!.forget(conversation, message.id);
        return answer.found;
      });
    },
    pair(userId, partner, announce, match) {
      if (here(userId)) return local.pair(userId, partner, announce, match);
      return call(userId, (to) => to.pair(userId, partner, announce, match));
    },
    endPair(userId, formerPartner, hangup) {
      if (here(userId)) return local.endPair(userId, formerPartner, hangup);
      return call(userId, (to) => to.endPair(userId, formerPartner, hangup));
    },
  });

  const history = (limits: HistoryLimits): HistoryStore => {
    own(limits);
    return {
      namesWhenKept: true,
      nextId(conversation, now) {
        if (!conversation.startsWith(ROOM_PREFIX)) return kept!.nextId(conversation, now);
        // On the stub the room's broadcasts take: ids reach it in the order they were made.
        return rooms!.nextId(conversation.slice(ROOM_PREFIX.length));
      },
      // Rooms keep their own (the room seam hands them the message); pairs kept here only.
      append: (conversation, message, now) => kept!.append(conversation, message, now),
      read(conversation, before, limit, now) {
        if (conversation.startsWith(ROOM_PREFIX)) {
          return rooms!.readHistory(conversation.slice(ROOM_PREFIX.length), before, limit);
        }
        const first = firstOf(conversation);
        if (here(first)) return kept!.read(conversation, before, limit, now);
        // After this gateway's DMs to that keeper, on the same stub.
        return call(first, (to) => to.readHistory(conversation, before, limit));
      },
    };
  };

  const seams: HubSeams = {
    users,
    rooms: (local) =>
      (rooms = createRoomSeam({ env, gateway: name, local, onError: onError('room_rpc_failed') })),
    pool: () =>
      (pool = createMatchmakerPool({
        stub: () => matchmaker(env),
        gateway: name,
        onError: onError('matchmaker_rpc_failed'),
      })),
    history,
    host: (offered) => {
      host = offered;
    },
  };
  return {
    seams,
    host: () => host!,
    answer: {
      async deliver(userId, text, keep) {
        if (!host!.has(userId)) return { found: false };
        const message = keep && named(keep.message, keep.conversation);
        const kept = message && { conversation: keep.conversation, message };
        const found = host!.local.deliver(userId, message ? message.text : text, kept) === true;
        host!.flush();
        return { found, message };
      },
      async pair(userId, partner, announce, match) {
        // Taken from the pool by another gateway's request: no longer available here.
        pool?.markTaken(userId);
        const found = host!.local.pair(userId, partner, announce, match) === true;
        host!.flush();
        return found;
      },
      async endPair(userId, formerPartner, hangup) {
        await host!.local.endPair(userId, formerPartner, hangup);
        host!.flush();
      },
      async roomDeliver(room, text) {
        const reached = host!.localRooms.broadcast(room, text);
        // Counted here, where the frames go out, as the hub counts its own.
        const type = text.slice(9, text.indexOf('"', 9));
        if (reached > 0) host!.metrics.inc('aleatoria_messages_out_total', type, reached);
        return reached;
      },
      async readHistory(conversation, before, limit) {
        return kept ? (kept.read(conversation, before, limit, Date.now()) as StoredMessage[]) : [];
      },
    },
  };
}
