/**
 * The one door to Redis (7+) or Valkey for the cluster code: commands, Lua scripts, pub/sub and
 * the connection's life, behind a small interface (`RedisLink`) so the client library stays in
 * this file.
 *
 * The client is ioredis (6), for Node and Deno alike (Deno loads it from node_modules through
 * `npm:` resolution, unchanged). Chosen over node-redis because every failure knob this server
 * depends on is one plain option there: `enableOfflineQueue: false`,
 * `autoResendUnfulfilledCommands: false` and `maxRetriesPerRequest: 0` (together: a command
 * written to a Redis that then dies is rejected at once and never replayed onto a restarted,
 * empty one), `commandTimeout` (per command), `retryStrategy` (backoff) and `autoResubscribe`;
 * one `message` event for every channel fits a per-node dispatcher; it needs no module packages
 * (node-redis's `redis` brings bloom/json/search/time-series); and its replies are plain strings,
 * numbers and arrays. Both libraries are maintained by Redis; node-redis would have done too.
 *
 * What a caller sees when Redis cannot answer: a `RedisUnavailableError` (`code: "unavailable"`),
 * at once when the connection is down, after `commandTimeoutMs` (~1 s) when Redis is up but
 * silent (SIGSTOP, a stall, a partition that keeps the TCP session). The server maps it to
 * `error {code:"unavailable"}`. An error Redis itself answered (a script error, WRONGTYPE) is
 * rethrown as it came: that is a bug, not an outage.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions, ReplyError } from 'ioredis';
import { redisOptionsFromUrl } from './redis-url.ts';

export { redisOptionsFromUrl };

/** A reply as this link returns it (RESP2, bulk strings decoded as UTF-8). */
export type RedisReply = null | string | number | RedisReply[];

export type RedisArg = string | number;

/** Redis could not answer in time, or the link is down: the caller answers `unavailable`. */
export class RedisUnavailableError extends Error {
  readonly code = 'unavailable' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisUnavailableError';
  }
}

export const isRedisUnavailable = (error: unknown): error is RedisUnavailableError =>
  error instanceof RedisUnavailableError;

/** A Lua script and its SHA1, as `EVALSHA` names it. */
export interface LuaScript {
  readonly source: string;
  readonly sha: string;
}

export function defineScript(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

export interface ReadyInfo {
  /** Redis's `run_id`: a new one after every restart (or failover), when its data may be gone. */
  readonly runId: string;
  /** The link's first ready since it was created. */
  readonly first: boolean;
  /** Not the first ready, and `runId` changed: Redis restarted, possibly empty. */
  readonly restarted: boolean;
}

export interface RedisLinkEvents {
  /** TCP (and TLS) connected; the handshake follows. */
  connect: () => void;
  /** The command connection can take commands; scripts are loaded. */
  ready: (info: ReadyInfo) => void;
  /** The command connection was up and is lost; reconnecting with backoff. */
  down: (error: Error | undefined) => void;
}

export interface RedisLink {
  /** The command connection is ready: `send` will be written at once. */
  readonly ready: boolean;
  /** A command timed out and no PING has been answered since: commands fail at once. */
  readonly stalled: boolean;
  /** Runs `hook` before each command: what holds commands back (routes) sends them first. */
  beforeEachCommand(hook: () => void): void;
  /** Sends one command; rejects with `RedisUnavailableError` when Redis cannot answer. */
  send(command: string, ...args: RedisArg[]): Promise<RedisReply>;
  /** Runs `script`: `EVAL` the first time (which caches it), then by SHA (`EVALSHA`). */
  run(script: LuaScript, keys: readonly string[], args: readonly RedisArg[]): Promise<RedisReply>;
  /**
   * Subscribes the link's subscriber connection to `channel`. The channel is kept across
   * reconnections; a rejection (`unavailable`) means it is not subscribed yet, and will be once the
   * subscriber connection is back.
   */
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Every message on every subscribed channel; returns a function that removes the handler. */
  onMessage(handler: (channel: string, message: string) => void): () => void;
  on<E extends keyof RedisLinkEvents>(event: E, listener: RedisLinkEvents[E]): () => void;
  /** Waits for the link to be ready; rejects with `RedisUnavailableError` after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<void>;
  /** Redis's clock (ms), estimated from the local clock and the offset measured at each ready. */
  redisNow(): number;
  /** Closes both connections; pending commands reject. */
  close(): Promise<void>;
}

export interface RedisLinkOptions {
  /** Per-command timeout. Default 1000 ms. */
  commandTimeoutMs?: number;
  /** TCP connect timeout. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Reconnect delay after the `attempt`th failure (1-based). Default: 50 ms doubling to 2 s, +-20% jitter. */
  retryDelayMs?(attempt: number): number;
  /** `CLIENT SETNAME` of both connections (the subscriber's gets `:sub`). */
  connectionName?: string;
  /** Errors the connections report (refused, reset...), for logging. Default: ignored. */
  onError?(error: Error): void;
}

const defaultRetryDelay = (attempt: number) => {
  const base = Math.min(50 * 2 ** (attempt - 1), 2000);
  return Math.round(base * (0.8 + Math.random() * 0.4));
};

/** Whether Redis itself answered this error (as opposed to the link failing). */
const isReplyError = (error: unknown): error is Error =>
  error instanceof ReplyError || (error instanceof Error && error.name === 'ReplyError');

function unavailable(error: unknown): Error {
  if (isReplyError(error) || error instanceof RedisUnavailableError) return error as Error;
  const reason = error instanceof Error ? error.message : String(error);
  return new RedisUnavailableError(`Redis unavailable: ${reason}`, { cause: error });
}

/** Whether `client` is ready, or becomes ready within `ms`. */
function readyWithin(client: Redis, ms: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  if (client.status === 'end') return Promise.resolve(false);
  return new Promise((resolve) => {
    const onReady = () => settle(true);
    const timer = setTimeout(() => settle(false), ms);
    const settle = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    client.once('ready', onReady);
  });
}

/** Creates a link and starts connecting; it reconnects by itself until `close`. */
export function createRedisLink(url: string, options: RedisLinkOptions = {}): RedisLink {
  const commandTimeoutMs = options.commandTimeoutMs ?? 1000;
  const base: RedisOptions = {
    ...redisOptionsFromUrl(url),
    // RESP2: what every Redis 7, Valkey and Upstash speaks, without a HELLO.
    protocol: 2,
    // Nothing waits for a connection that is not there, and nothing written to one Redis is
    // replayed onto the next (which may be a restarted, empty one).
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    retryStrategy: options.retryDelayMs ?? defaultRetryDelay,
    enableReadyCheck: true,
    lazyConnect: false,
  };
  const onError = options.onError ?? (() => {});
  const name = options.connectionName;

  const client = new Redis({ ...base, ...(name ? { connectionName: name } : {}) });
  let subscriber: Redis | undefined;
  const channels = new Set<string>();
  const messageHandlers = new Set<(channel: string, message: string) => void>();
  const listeners: { [E in keyof RedisLinkEvents]: Set<RedisLinkEvents[E]> } = {
    connect: new Set(),
    ready: new Set(),
    down: new Set(),
  };
  const scripts = new Map<string, LuaScript>();
  let ready = false;
  let up = false;
  let closed = false;
  let readies = 0;
  let runId: string | undefined;
  let clockOffset = 0;
  let measured = false;
  let lastError: Error | undefined;

  function emit<E extends keyof RedisLinkEvents>(
    event: E,
    ...args: Parameters<RedisLinkEvents[E]>
  ) {
    for (const listener of listeners[event]) {
      try {
        (listener as (...a: Parameters<RedisLinkEvents[E]>) => void)(...args);
      } catch (error) {
        onError(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  async function measureClock() {
    const before = Date.now();
    const reply = (await client.call('TIME')) as [string, string];
    const after = Date.now();
    // A slow answer says little about when Redis read its clock: keep the last estimate.
    if (after - before > 50 && measured) return;
    measured = true;
    clockOffset = Number(reply[0]) * 1000 + Number(reply[1]) / 1000 - (before + after) / 2;
  }

  // Keeps the clock estimate fresh (drift, an NTP step on either side).
  const clockTimer = setInterval(() => {
    if (ready) measureClock().catch(() => {});
  }, 30_000);
  (clockTimer as { unref?: () => void }).unref?.();

  client.on('error', (error: Error) => {
    lastError = error;
    onError(error);
  });
  client.on('connect', () => emit('connect'));
  client.on('ready', () => {
    // First on the new connection, so every EVALSHA sent after finds its script.
    for (const script of scripts.values())
      client.call('SCRIPT', 'LOAD', script.source).catch(() => {});
    ready = true;
    up = true;
    stalled = false;
    const first = readies++ === 0;
    const info = client.call('INFO', 'server').then(
      (text) => /run_id:(\w+)/.exec(String(text))?.[1] ?? '',
      () => '',
    );
    void Promise.all([info, measureClock().catch(() => {})]).then(([id]) => {
      if (!ready) return;
      const restarted = !first && id !== runId;
      runId = id;
      emit('ready', { runId: id, first, restarted });
    });
  });
  client.on('close', () => {
    ready = false;
    if (!up) return;
    up = false;
    if (!closed) emit('down', lastError);
  });

  function subscriberConnection(): Redis {
    if (subscriber) return subscriber;
    const sub = new Redis({
      ...base,
      ...(name ? { connectionName: `${name}:sub` } : {}),
      // Resubscribed by hand below: the wanted set is ours, including channels whose SUBSCRIBE
      // failed while Redis was away.
      autoResubscribe: false,
    });
    sub.on('error', (error: Error) => onError(error));
    sub.on('ready', () => {
      if (channels.size > 0) sub.subscribe(...channels).catch(() => {});
    });
    sub.on('message', (channel: string, message: string) => {
      for (const handler of messageHandlers) {
        try {
          handler(channel, message);
        } catch (error) {
          onError(error instanceof Error ? error : new Error(String(error)));
        }
      }
    });
    subscriber = sub;
    return sub;
  }

  /**
   * Set when a command timed out on a connection that is still up (Redis stalled: SIGSTOP, a
   * long script, a partition that keeps the TCP session). Until a PING is answered again, every
   * command fails at once: a user waits for one timeout at most, not one per command its request
   * needs, and nothing piles up behind a Redis that does not read.
   */
  let stalled = false;

  function stall() {
    if (stalled) return;
    stalled = true;
    const probe = () => {
      if (!stalled || !ready) return void (stalled = false);
      client.call('PING').then(
        () => void (stalled = false),
        () => probe(),
      );
    };
    probe();
  }

  let beforeCommand: (() => void) | undefined;

  async function send(command: string, ...args: RedisArg[]): Promise<RedisReply> {
    beforeCommand?.();
    if (!ready) throw new RedisUnavailableError('Redis unavailable: not connected');
    if (stalled) throw new RedisUnavailableError('Redis unavailable: not answering');
    try {
      return (await client.call(command, ...args)) as RedisReply;
    } catch (error) {
      if (!isReplyError(error) && /timed out/i.test(String(error))) stall();
      throw unavailable(error);
    }
  }

  const link: RedisLink = {
    get ready() {
      return ready;
    },
    get stalled() {
      return stalled;
    },
    beforeEachCommand(hook) {
      beforeCommand = hook;
    },
    send,
    async run(script, keys, args) {
      // EVALSHA answered NOSCRIPT and sent again as EVAL would let the commands written meanwhile
      // run first (a node's routes out of order): a first use goes as EVAL, in line, and every
      // ready loads the scripts before anything else is written.
      if (!scripts.has(script.sha)) {
        scripts.set(script.sha, script);
        return send('EVAL', script.source, keys.length, ...keys, ...args);
      }
      try {
        return await send('EVALSHA', script.sha, keys.length, ...keys, ...args);
      } catch (error) {
        if (!isReplyError(error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return send('EVAL', script.source, keys.length, ...keys, ...args);
      }
    },
    async subscribe(channel) {
      channels.add(channel);
      const sub = subscriberConnection();
      // A subscriber connecting (the first time, or again) gets one command timeout to be ready.
      if (sub.status !== 'ready' && !(await readyWithin(sub, commandTimeoutMs)))
        throw new RedisUnavailableError('Redis unavailable: subscriber not connected');
      try {
        await sub.subscribe(channel);
      } catch (error) {
        throw unavailable(error);
      }
    },
    async unsubscribe(channel) {
      channels.delete(channel);
      // Not subscribed on a connection that is down: the next one will not resubscribe it.
      if (subscriber?.status !== 'ready') return;
      try {
        await subscriber.unsubscribe(channel);
      } catch (error) {
        throw unavailable(error);
      }
    },
    onMessage(handler) {
      subscriberConnection();
      messageHandlers.add(handler);
      return () => messageHandlers.delete(handler);
    },
    on(event, listener) {
      listeners[event].add(listener);
      return () => listeners[event].delete(listener);
    },
    whenReady(timeoutMs) {
      if (ready) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          // Why it is not (refused, a certificate not trusted, a wrong password) is what an
          // operator needs to see first.
          const why = lastError ? ` (last error: ${lastError.message})` : '';
          reject(
            new RedisUnavailableError(`Redis unavailable: not ready within ${timeoutMs} ms${why}`),
          );
        }, timeoutMs);
        const off = link.on('ready', () => {
          clearTimeout(timer);
          off();
          resolve();
        });
      });
    },
    redisNow: () => Date.now() + clockOffset,
    async close() {
      closed = true;
      ready = false;
      clearInterval(clockTimer);
      client.disconnect();
      subscriber?.disconnect();
    },
  };
  return link;
}
