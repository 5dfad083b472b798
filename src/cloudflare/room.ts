/**
 * Rooms of the sharded Cloudflare deployment: {@link RoomObject}, one Durable Object per room,
 * holds who is in the room and on which gateway, and the room's chat history, and fans a
 * broadcast out with one call per gateway that has members. What a gateway gives its hub to reach
 * them is `room-seam.ts`.
 *
 * Order: calls made on one stub arrive in the order they were made (E-order), calls on two stubs
 * in any order, and a stub that threw is broken for good. So each side keeps one stub per peer
 * while it has something to say to it (a gateway's join reaches the room before its presence
 * count and its broadcasts; a gateway hears a room's broadcasts in order) and drops it on error.
 */
import { DurableObject } from 'cloudflare:workers';
import * as v from 'valibot';
import {
  createNoHistory,
  type HistoryStore,
  ID_DIGITS,
  nameMessage,
  roomConversation,
  type StoredMessage,
  UNNAMED,
} from '../core/history.ts';
import type { Logger } from '../core/log.ts';
import { MAX_HISTORY_PAGE, RoomName, UserId } from '../core/protocol.ts';
import type { MaybePromise } from '../core/seams.ts';
import { configFor, type Env, gateway, logFor, matchmaker } from './env.ts';
import { fanOut, retryOnce, stubBroken } from './fanout.ts';
import { createSqliteHistory } from './history.ts';
import type { KeepWire, RoomRpc } from './rpc.ts';

/** Gateway names are `gateway-{n}`: far shorter than this. */
const GatewayName = v.pipe(v.string(), v.minLength(1), v.maxLength(64));
const MessageId = v.pipe(v.string(), v.regex(new RegExp(`^(?:\\d{${ID_DIGITS}}|${UNNAMED})$`)));
/** `PRESENCE_LIST_LIMIT`'s own maximum. */
const MAX_MEMBERS_PAGE = 10_000;
/** Above every id (16 digits) and every time a page may name: a longer `before` is nonsense. */
const MAX_CURSOR_LENGTH = 32;
const ROOM_KEY = 'room';

/** Refuses what no honest caller sends: a room object trusts no string it is handed. */
function check<T>(schema: v.GenericSchema<T>, value: unknown, what: string): asserts value is T {
  if (!v.is(schema, value)) throw new RangeError(`room object: bad ${what}`);
}

/** A page size, within `max` (a bad one reads nothing). */
const pageOf = (limit: unknown, max: number) =>
  Number.isSafeInteger(limit) ? Math.min(Math.max(limit as number, 0), max) : 0;

/** The SQLite store and the clock answer at once (the SQL API is synchronous): never a promise. */
function atOnce<T>(value: MaybePromise<T>): T {
  if (value instanceof Promise) throw new TypeError('room object: history answered later');
  return value;
}

/**
 * One room. SQLite, surviving eviction and restarts: table `members` (`user_id` primary key,
 * `gateway`, `seq`: the number of the member's latest join) and the history's table
 * (`history.ts`, conversation `r:{room}`); key `room` of the KV store names the room
 * served. How many members each gateway has is kept in memory too, rebuilt in the constructor, so
 * neither a broadcast nor a presence count scans the table.
 */
export class RoomObject extends DurableObject<Env> implements RoomRpc {
  private readonly sql: SqlStorage;
  private readonly history: HistoryStore;
  private readonly log: Logger;
  /** A room frame: a payload of at most MAX_MESSAGE_BYTES in an envelope of capped fields. */
  private readonly maxText: number;
  private readonly perGateway = new Map<string, number>();
  private size = 0;
  /** Set once the constructor has counted what storage holds: changes after it are news. */
  private counted = false;
  private counter: ReturnType<typeof matchmaker> | undefined;
  private seq: number;
  /** The room served: its id comes from its name, which not every runtime lets it read back. */
  private room: string | undefined;
  /** One stub per gateway with members, so that each hears this room's broadcasts in order. */
  private readonly gateways = new Map<string, ReturnType<typeof gateway>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const config = configFor(env);
    this.log = logFor(config);
    this.maxText = 2 * config.maxMessageBytes + 4096;
    this.sql = ctx.storage.sql;
    // With history off nothing is kept; ids still come from a clock that never goes back here.
    this.history = config.history.enabled
      ? createSqliteHistory(this.sql, config.history)
      : createNoHistory();
    this.sql.exec(`CREATE TABLE IF NOT EXISTS members (
      user_id TEXT PRIMARY KEY,
      gateway TEXT NOT NULL,
      seq INTEGER NOT NULL
    ) WITHOUT ROWID`);
    this.sql.exec('CREATE INDEX IF NOT EXISTS members_by_gateway ON members (gateway, seq)');
    const rows = this.sql.exec<{ gateway: string; n: number }>(
      'SELECT gateway, count(*) AS n FROM members GROUP BY gateway',
    );
    for (const { gateway: name, n } of rows) this.tally(name, n);
    this.seq =
      this.sql.exec<{ seq: number | null }>('SELECT max(seq) AS seq FROM members').one().seq ?? 0;
    this.room = ctx.storage.kv.get<string>(ROOM_KEY);
    this.counted = true;
  }

  /**
   * Tells the matchmaker, which counts the deployment's rooms for `/stats`, that this room got its
   * first member or lost its last. On one stub, so the news of a quick leave and join arrive in
   * order; said by name, so a retry is harmless: retried once, then logged.
   */
  private occupied(yes: boolean) {
    const room = this.room;
    if (room === undefined) return;
    const tell = () => {
      this.counter ??= matchmaker(this.env);
      return this.counter.roomOccupied(room, yes).catch((error: unknown) => {
        this.counter = undefined;
        throw error;
      });
    };
    retryOnce(tell).catch((error: unknown) =>
      this.log.warn('room_count_failed', { error: String(error) }),
    );
  }

  async join(room: string, userId: string, gatewayName: string): Promise<number> {
    this.admit(room, userId, gatewayName);
    const was = this.sql
      .exec<{ gateway: string }>('SELECT gateway FROM members WHERE user_id = ?', userId)
      .toArray()[0]?.gateway;
    // A second join takes a new `seq` all the same: see `drop`.
    this.sql.exec(
      `INSERT INTO members (user_id, gateway, seq) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET gateway = excluded.gateway, seq = excluded.seq`,
      userId,
      gatewayName,
      ++this.seq,
    );
    if (was !== gatewayName) {
      // A user moves between gateways only when GATEWAY_SHARDS changes: the newer gateway holds it.
      if (was !== undefined) this.tally(was, -1);
      this.tally(gatewayName, 1);
    }
    return this.size;
  }

  async leave(room: string, userId: string, gatewayName: string): Promise<number> {
    this.admit(room, userId, gatewayName);
    // Only the gateway that holds the member: a late leave from its former gateway is stale.
    const gone = this.sql
      .exec(
        'DELETE FROM members WHERE user_id = ? AND gateway = ? RETURNING user_id',
        userId,
        gatewayName,
      )
      .toArray().length;
    if (gone > 0) this.tally(gatewayName, -gone);
    return this.size;
  }

  async count(room: string): Promise<number> {
    this.serve(room);
    return this.size;
  }

  async members(room: string, limit: number): Promise<string[]> {
    this.serve(room);
    return this.sql
      .exec<{ user_id: string }>(
        'SELECT user_id FROM members ORDER BY user_id LIMIT ?',
        pageOf(limit, MAX_MEMBERS_PAGE),
      )
      .toArray()
      .map((row) => row.user_id);
  }

  async nextId(room: string): Promise<string> {
    this.serve(room);
    return atOnce(this.history.nextId(roomConversation(room), Date.now()));
  }

  async readHistory(room: string, before: string | undefined, limit: number) {
    this.serve(room);
    if (before !== undefined && (typeof before !== 'string' || before.length > MAX_CURSOR_LENGTH))
      throw new RangeError('room object: bad cursor');
    const conversation = roomConversation(room);
    return atOnce(
      this.history.read(conversation, before, pageOf(limit, MAX_HISTORY_PAGE), Date.now()),
    );
  }

  /**
   * Keeps `keep` (named here if unnamed: then the named text is what goes out), then one
   * `roomDeliver` per other gateway with members, all at once. Everything up to the calls runs in
   * one synchronous step, so the broadcasts of this room leave for each gateway in the order they
   * were kept, on that gateway's one stub.
   *
   * A delivery that fails is made once more when the runtime marks the error retryable (a
   * duplicate beats a loss here: a chat frame carries its id, which the SDK's catch-up drops when
   * it has it, and a repeated `user_status` states what was true already, while a lost frame is
   * missed silently until the member reconnects); otherwise, or if the retry fails too, it is
   * logged and left. A retry may reach its gateway after a later broadcast: the SDK then drops it
   * as older than what it delivered, which is no worse than the loss it was sent to avoid.
   *
   * A gateway that answers 0 has lost its members' sockets (its object was reset): the room forgets
   * them, so that counts and presence stay true. Only members it listed when the call left: a
   * member who joins there meanwhile has a later `seq` and stays.
   */
  async broadcast(room: string, text: string, from: string, keep?: KeepWire) {
    this.serve(room);
    this.checkText(text);
    check(GatewayName, from, 'gateway');
    let message: StoredMessage | undefined;
    if (keep !== undefined) {
      message = this.keep(room, keep);
      if (keep.message.id === UNNAMED) text = message.text;
    }
    const listed = this.seq;
    const targets = [...this.perGateway.keys()].filter((name) => name !== from);
    const outcome = await fanOut(targets, (name) => this.deliver(name, room, text));
    for (const name of outcome.emptied) this.drop(name, listed);
    for (const { target, error } of outcome.failed)
      this.log.warn('room_deliver_failed', { gateway: target, error: String(error) });
    return message === undefined ? {} : { message };
  }

  /** Refuses a misrouted call: this object serves one room, the first it was asked about. */
  private serve(room: string) {
    check(RoomName, room, 'room');
    if (this.room === undefined) this.ctx.storage.kv.put(ROOM_KEY, (this.room = room));
    else if (room !== this.room) throw new RangeError('room object: another room');
  }

  private admit(room: string, userId: string, gatewayName: string) {
    this.serve(room);
    check(UserId, userId, 'userId');
    check(GatewayName, gatewayName, 'gateway');
  }

  private checkText(text: unknown): asserts text is string {
    if (typeof text !== 'string' || text.length > this.maxText)
      throw new RangeError('room object: bad text');
  }

  private keep(room: string, keep: KeepWire): StoredMessage {
    const conversation = roomConversation(room);
    if (keep.conversation !== conversation) throw new RangeError('room object: bad conversation');
    check(MessageId, keep.message.id, 'message id');
    this.checkText(keep.message.text);
    const now = Date.now();
    const message =
      keep.message.id === UNNAMED
        ? nameMessage(keep.message, atOnce(this.history.nextId(conversation, now)))
        : { id: keep.message.id, text: keep.message.text };
    atOnce(this.history.append(conversation, message, now));
    return message;
  }

  private deliver(name: string, room: string, text: string): Promise<number> {
    let stub = this.gateways.get(name);
    if (stub === undefined) this.gateways.set(name, (stub = gateway(this.env, name)));
    const used = stub;
    return Promise.resolve(used.roomDeliver(room, text)).catch((error: unknown) => {
      if (stubBroken(error) && this.gateways.get(name) === used) this.gateways.delete(name);
      throw error;
    });
  }

  /** Forgets the members of `name` listed up to `seq`: that gateway holds none of them now. */
  private drop(name: string, seq: number) {
    const dropped = this.sql
      .exec('DELETE FROM members WHERE gateway = ? AND seq <= ? RETURNING user_id', name, seq)
      .toArray().length;
    if (dropped === 0) return;
    this.tally(name, -dropped);
    this.log.info('room_gateway_emptied', { gateway: name, members: dropped });
  }

  private tally(name: string, delta: number) {
    const before = this.size;
    this.size += delta;
    if (this.counted && (before === 0) !== (this.size === 0)) this.occupied(this.size > 0);
    const left = (this.perGateway.get(name) ?? 0) + delta;
    if (left > 0) return void this.perGateway.set(name, left);
    this.perGateway.delete(name);
    this.gateways.delete(name);
  }
}
