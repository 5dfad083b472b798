/**
 * A hub wired to a fake clock, scripted randomness and an array outbox, for the pure core tests.
 * Every frame the hub sends is checked against the protocol's `ServerMessage` schema on the way out.
 */
import { expect } from 'vitest';
import * as v from 'valibot';
import {
  createHub,
  type ConnId,
  type HubOptions,
  type HubSeams,
  type OpenRequest,
  type SessionState,
} from '../../src/core/hub.ts';
import { createMemoryHistory } from '../../src/core/memory-history.ts';
import { ServerMessage } from '../../src/core/protocol.ts';

/** A frame the hub sent, as the client would decode it. */
export type Sent = { conn: ConnId; msg: any };
export type Closed = { conn: ConnId; code: number; reason: string };
export type Outgoing = Sent | Closed;

/** A fixed, recognisable instant: createTime assertions compare against `new Date(now).toISOString()`. */
export const T0 = Date.UTC(2025, 4, 6, 7, 8, 9, 123);

export function expectServerMessage(msg: unknown): void {
  const result = v.safeParse(ServerMessage, msg);
  if (!result.success)
    expect.fail(`hub sent a frame outside the ServerMessage schema: ${JSON.stringify(msg)}`);
}

export const isSent = (item: Outgoing): item is Sent => 'msg' in item;
export const isClosed = (item: Outgoing): item is Closed => 'code' in item;

export const DEFAULT_OPTIONS: HubOptions = {
  maxRoomsPerConnection: 32,
  // Generous enough that only the rate-limit tests ever meet it.
  rateLimit: { perSecond: 1_000_000, burst: 1_000_000 },
  rateLimitCloseAfterMs: 10_000,
};

export interface HarnessOptions {
  /** The runtime can send protocol pings (default true); a Durable Object cannot. */
  canPing?: boolean;
  /** Users, rooms and pool answer with promises, as shared state in another process would. */
  asyncSeams?: boolean;
  /** Seams of the test's own (when not `asyncSeams`). */
  seams?: HubSeams;
}

/** Wraps every method's answer in a promise: the in-memory state, reached as if it were remote. */
function answeringLater<T extends object>(local: T): T {
  return new Proxy(local, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      return typeof value === 'function'
        ? (...args: unknown[]) => Promise.resolve().then(() => value.apply(target, args))
        : value;
    },
  });
}

export function makeHub(options: Partial<HubOptions> = {}, harness: HarnessOptions = {}) {
  let t = T0;
  const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  const pinged: ConnId[] = [];
  const scripted: number[] = [];
  let source: (() => number) | undefined;
  const outbox: Outgoing[] = [];
  const persisted: { conn: ConnId; state: SessionState }[] = [];

  const hub = createHub(
    {
      now: () => t,
      random: () => {
        if (source) return source();
        const next = scripted.shift();
        if (next === undefined)
          throw new Error('random() called more often than the test scripted');
        return next;
      },
      send: (conn, text) => {
        const msg: unknown = JSON.parse(text);
        expectServerMessage(msg);
        outbox.push({ conn, msg });
      },
      close: (conn, code, reason) => {
        outbox.push({ conn, code, reason });
      },
      persist: (conn, state) => {
        persisted.push({ conn, state: structuredClone(state) });
      },
      setTimer: (ms, fn) => {
        const timer = { at: t + ms, fn, cancelled: false };
        timers.push(timer);
        return () => void (timer.cancelled = true);
      },
      ...(harness.canPing === false ? {} : { ping: (conn: ConnId) => pinged.push(conn) > 0 }),
    },
    { ...DEFAULT_OPTIONS, ...options },
    harness.asyncSeams
      ? {
          users: answeringLater,
          pool: (local) => ({
            get size() {
              return local.size;
            },
            has: (userId) => local.has(userId),
            add: (userId, since) => local.add(userId, since),
            delete: (userId) => local.delete(userId),
            take: (...args) => Promise.resolve().then(() => local.take(...args)),
          }),
          history: (config) => answeringLater(createMemoryHistory(config)),
        }
      : (harness.seams ?? {}),
  );

  return {
    hub,
    outbox,
    persisted,
    get now() {
      return t;
    },
    /** Moves the fake clock on, running the timers that fall due, in order. */
    advance(ms: number) {
      const end = t + ms;
      for (;;) {
        const due = timers
          .filter((timer) => !timer.cancelled && timer.at <= end)
          .sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        t = Math.max(t, due.at);
        due.cancelled = true;
        due.fn();
      }
      t = end;
    },
    /** Connections the hub asked to ping, in order. */
    pinged,
    /** Timers set and neither run nor cancelled. */
    get pendingTimers(): number {
      return timers.filter((timer) => !timer.cancelled).length;
    },
    setTime(ms: number) {
      t = ms;
    },
    /** The createTime the hub must stamp at the current fake instant. */
    iso(): string {
      return new Date(t).toISOString();
    },
    /** Queues values for `random()`; a call beyond the queue fails the test. */
    script(...values: number[]) {
      scripted.push(...values);
    },
    /** Replaces the scripted queue with a generator (a seeded PRNG). */
    useRandom(fn: () => number) {
      source = fn;
    },
    get unusedRandom(): number {
      return scripted.length;
    },
    /** Opens `userId` on connection `${userId}#1` unless `conn` is given. */
    connect(userId: string, extra: Omit<OpenRequest, 'userId'> & { conn?: ConnId } = {}) {
      const { conn = `${userId}#1`, ...rest } = extra;
      return hub.open(conn, { userId, ...rest });
    },
    /** Sends a client frame as JSON text. */
    send(conn: ConnId, msg: unknown) {
      hub.message(conn, JSON.stringify(msg));
    },
    raw(conn: ConnId, text: string) {
      hub.message(conn, text);
    },
    /** Everything sent or closed since the last take, in order; clears the outbox. */
    take(): Outgoing[] {
      return outbox.splice(0);
    },
    /** Messages sent since the last take, without clearing. */
    sent(): Sent[] {
      return outbox.filter(isSent);
    },
    /** Messages sent to `conn` since the last take, without clearing. */
    to(conn: ConnId): unknown[] {
      return outbox
        .filter(isSent)
        .filter((item) => item.conn === conn)
        .map((item) => item.msg);
    },
    closes(): Closed[] {
      return outbox.filter(isClosed);
    },
  };
}

export type TestHub = ReturnType<typeof makeHub>;

/** Expected shape of an `error` refusal (DECISIONS.md: fromUser system, toUser own id, payload {error, code}). */
export function refusal(toUser: string, code: string, createTime: string) {
  return {
    type: 'error',
    fromUser: 'system',
    toUser,
    payload: { error: expect.stringMatching(/\S/), code },
    createTime,
  };
}

/** Expected shape of an `error_response` (toUser own id, messageId err-..., payload {error, details, code}). */
export function errorResponse(toUser: string, code: string, createTime: string) {
  return {
    type: 'error_response',
    toUser,
    messageId: expect.stringMatching(/^err-./),
    payload: { error: expect.stringMatching(/\S/), details: expect.stringMatching(/\S/), code },
    createTime,
  };
}

export { mulberry32 } from '../random.ts';
