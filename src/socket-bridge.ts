/**
 * The connection layer of every runtime: binds the hub to sockets. It gives each socket a
 * connection id, admits upgrades (per-IP cap, takeover probe), routes frames in (size cap, errors
 * isolated) and text out, closes quietly, and closes a socket whose outbound buffer passes
 * `SEND_QUEUE_MAX_BYTES` so that nobody else ever waits for a slow reader. Node and Deno keep
 * their sockets in memory; the Durable Object also persists each session with its socket
 * (`persist`) and rebuilds the layer from them when it wakes (`restore`).
 */
import type { Context, Next } from 'hono';
import type { UpgradeWebSocket, WSEvents } from 'hono/ws';
import type { ConnectRequest } from './app.ts';
import type { Config } from './core/config.ts';
import { frameTooBig } from './core/frame.ts';
import {
  CloseCode,
  createHub,
  hubOptionsFrom,
  type ConnId,
  type Hub,
  type HubSeams,
  type PublicStats,
  type SessionState,
} from './core/hub.ts';
import { createPerIpCounter, PER_IP_REFUSAL } from './core/limits.ts';
import type { Logger } from './core/log.ts';

/** How long a slow consumer gets to take its backlog and the 1013 close frame before it is cut off. */
export const SLOW_CONSUMER_GRACE_MS = 1000;

/** The close code a runtime reports for a socket that ended without a close frame (RFC 6455). */
const ABNORMAL_CLOSURE = 1006;

/** What the bridge needs of a socket: a `ws` WebSocket and a web-standard one both are one. */
export interface BridgeSocket {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  readonly readyState: number;
}

export interface SocketBridgeOptions<S extends BridgeSocket> {
  config: Config;
  now?: () => number;
  random?: () => number;
  /** Sends one text message; default `ws.send(text)`. */
  send?: (ws: S, text: string) => void;
  /** Bytes the runtime still holds for this socket; omit where the platform bounds it itself. */
  bufferedAmount?: (ws: S) => number;
  /** Drops the connection without a close handshake (for a reader that will never answer one). */
  terminate?: (ws: S) => void;
  /**
   * Sends a protocol ping; false when it cannot. The runtime reports the pong either with `heard`
   * or by calling `onLife`. Omit where it never can.
   */
  ping?: (ws: S, onLife: () => void) => boolean;
  /** A fresh connection id; default: a counter (ids must outlive the process where sockets do). */
  newConnId?: () => ConnId;
  /** Stores a session's changed state with its socket (the Durable Object's attachments). */
  persist?: (ws: S, conn: ConnId, ip: string | undefined, state: SessionState) => void;
  /** The server is closing `ws`: whatever the runtime keeps of its session must go with it. */
  onDrop?: (ws: S) => void;
  /** Where the hub's state lives when not in this process's memory (history in a Durable Object). */
  seams?: HubSeams;
  log: Logger;
}

export interface SocketBridge<S extends BridgeSocket> {
  readonly hub: Hub;
  /** Sockets opened and not yet closed, whether or not the hub still routes to them. */
  readonly size: number;
  /** A socket finished its upgrade: registers it with the hub; the link names it from then on. */
  open(request: ConnectRequest, ws: S): Link;
  /** Re-registers a socket that outlived the process's memory (wake); undefined if its state is bad. */
  restore(ws: S, conn: ConnId, ip: string | undefined, state: unknown): Link | undefined;
  /** One frame, text or binary, on a runtime that delivers frames over `MAX_MESSAGE_BYTES` (1009). */
  frame(link: Link, data: string | ArrayBuffer): void;
  /** One text frame arrived. */
  text(link: Link, data: string): void;
  /** A pong arrived. */
  heard(link: Link): void;
  /** One binary frame arrived (not part of the protocol: answered with an error). */
  binary(link: Link): void;
  /** A frame over `MAX_MESSAGE_BYTES` arrived on a runtime that cannot refuse it itself: 1009. */
  tooBig(link: Link): void;
  /**
   * The socket is closed (by either side). `clean`: a close frame ended it (by default, any code
   * but 1006; Deno reports a dropped connection as 0 and its own heartbeat's close as 1001).
   */
  closed(link: Link, code: number, clean?: boolean): void;
  /**
   * Everything decided between the checks of `createApp` and the upgrade itself: the per-IP cap
   * (a 429 response is returned) and, when the userId is held by a socket without the newcomer's
   * token, the hub's takeover probe (waited for; the event loop is not). Undefined: upgrade.
   */
  admit(request: ConnectRequest): Promise<{ status: 429; body: string } | undefined>;
  /**
   * The `upgrade` of `createApp` for runtimes whose sockets come through Hono's
   * `upgradeWebSocket`: applies the per-IP cap (429), waits for the hub's takeover probe when the
   * userId is held by a socket without the newcomer's token, then upgrades with
   * `eventsFor(request)`, whose `onOpen` hands the socket to `open`.
   */
  upgrade(
    upgradeWebSocket: UpgradeWebSocket<any, any>,
    upgradeOptions: unknown,
    eventsFor: (request: ConnectRequest) => WSEvents,
  ): (c: Context, request: ConnectRequest, next: Next) => Promise<Response | void>;
  /**
   * Closes every socket (shutdown). Where another process can take a session over (a cluster
   * node), a call whose user holds a token waits for it as after a dropped socket, so a restart
   * does not end the calls of the node's users (see `hub.waiting`); returns whether it did so.
   */
  closeAll(code: number, reason: string): boolean;
  /** The figures of `GET /stats`: the cluster's where state is shared (this hub's if it cannot say). */
  stats(): PublicStats | Promise<PublicStats>;
}

/** An open socket as the bridge knows it; adapters hand it back with each event. */
export interface Link {
  readonly conn: ConnId;
}

/** One open socket: all the bridge keeps of it. */
class Entry<S> implements Link {
  /** Closed by the server: nothing more is sent to it, though the runtime has not reported it gone. */
  dropped = false;
  constructor(
    readonly conn: ConnId,
    readonly ws: S,
    readonly ip: string | undefined,
  ) {}
}

export function createSocketBridge<S extends BridgeSocket>(
  options: SocketBridgeOptions<S>,
): SocketBridge<S> {
  const sockets = new Map<ConnId, Entry<S>>();
  const { config, log, bufferedAmount } = options;
  const { sendQueueMaxBytes } = config;
  const perIp = createPerIpCounter(config.maxConnectionsPerIp);
  const write = options.send ?? ((ws: S, text: string) => ws.send(text));
  let nextConn = 0;
  let live = 0;

  /** Closes the socket and stops routing to it; `closed` still follows from the runtime. */
  function drop(conn: ConnId, code: number, reason: string) {
    const entry = sockets.get(conn);
    if (!entry || entry.dropped) return;
    entry.dropped = true;
    options.onDrop?.(entry.ws);
    try {
      entry.ws.close(code, reason);
    } catch {
      // Already closing: nothing left to tell it.
    }
  }

  const suspects = new Set<ConnId>();

  function checkSlowConsumer(conn: ConnId, ws: S) {
    suspects.delete(conn);
    const buffered = bufferedAmount!(ws);
    const entry = sockets.get(conn);
    if (entry?.ws !== ws || entry.dropped || buffered <= sendQueueMaxBytes) return;
    log.warn('slow_consumer_closed', { conn, bufferedBytes: buffered });
    hub.metrics.inc('aleatoria_closes_total', 'slow_consumer');
    drop(conn, CloseCode.slowConsumer, 'send queue full');
    hub.close(conn);
    // The close frame waits behind the backlog; a reader that resumes in time still sees 1013.
    if (options.terminate) setTimeout(() => options.terminate!(ws), SLOW_CONSUMER_GRACE_MS);
  }

  const hub = createHub(
    {
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      send(conn, text) {
        const entry = sockets.get(conn);
        if (!entry || entry.dropped || entry.ws.readyState !== 1) return;
        const { ws } = entry;
        write(ws, text);
        if (bufferedAmount && bufferedAmount(ws) > sendQueueMaxBytes && !suspects.has(conn)) {
          // Some runtimes (Deno) queue a burst in memory before flushing it on the next turn of
          // the event loop: judge the reader once the runtime has had that turn.
          suspects.add(conn);
          setTimeout(() => checkSlowConsumer(conn, ws), 0);
        }
      },
      close: (conn, code, reason) => drop(conn, code, reason),
      ping: options.ping
        ? (conn) => {
            const entry = sockets.get(conn);
            return (
              entry !== undefined &&
              !entry.dropped &&
              options.ping!(entry.ws, () => hub.heard(conn))
            );
          }
        : undefined,
      persist: options.persist
        ? (conn, state) => {
            const entry = sockets.get(conn);
            if (entry && !entry.dropped) options.persist!(entry.ws, conn, entry.ip, state);
          }
        : undefined,
    },
    hubOptionsFrom(config),
    options.seams,
  );

  function add(conn: ConnId, ws: S, ip: string | undefined): Entry<S> {
    live++;
    const entry = new Entry(conn, ws, perIp.add(ip));
    sockets.set(conn, entry);
    return entry;
  }

  /** A bug must cost one frame, not the process; the stack stays in the server log. */
  function handlerFailed(conn: ConnId, error: unknown) {
    log.error('message_handler_failed', {
      conn,
      error: error instanceof Error ? error.stack : String(error),
    });
  }

  const bridge: SocketBridge<S> = {
    hub,
    get size() {
      return live;
    },
    open(request, ws) {
      const conn: ConnId =
        options.newConnId?.() ??
        `c${((nextConn = (nextConn + 1) % Number.MAX_SAFE_INTEGER)).toString(36)}`;
      const entry = add(conn, ws, request.ip);
      const result = hub.open(conn, request);
      if (!result.accepted)
        log.info('connection_refused', { conn, userId: request.userId, code: result.code });
      else
        log.debug('connection_open', { conn, userId: request.userId, replaced: result.replaced });
      return entry;
    },
    restore(ws, conn, ip, state) {
      return hub.restore(conn, state) ? add(conn, ws, ip) : undefined;
    },
    frame(link, data) {
      if (frameTooBig(data, config.maxMessageBytes)) bridge.tooBig(link);
      else if (typeof data === 'string') bridge.text(link, data);
      else bridge.binary(link);
    },
    text({ conn }, data) {
      try {
        hub.message(conn, data);
      } catch (error) {
        handlerFailed(conn, error);
      }
    },
    heard({ conn }) {
      hub.heard(conn);
    },
    binary({ conn }) {
      try {
        hub.binary(conn);
      } catch (error) {
        handlerFailed(conn, error);
      }
    },
    tooBig({ conn }) {
      hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
      drop(conn, CloseCode.messageTooBig, 'message too big');
      hub.close(conn);
    },
    closed({ conn }, code, clean = code !== ABNORMAL_CLOSURE) {
      const entry = sockets.get(conn);
      if (!entry) return;
      live--;
      perIp.remove(entry.ip);
      sockets.delete(conn);
      // No close frame on a socket the server did not close itself: a network blip, or the
      // heartbeat's drop. A call may wait for its user (CALL_RESUME_MS).
      hub.close(conn, !entry.dropped && !clean);
      log.debug('connection_closed', { conn, code });
    },
    async admit(request) {
      const probe = hub.prepare(request);
      if (probe) await probe;
      if (!perIp.full(request.ip)) return undefined;
      log.info('per_ip_refused', { ip: request.ip });
      return { status: 429, body: PER_IP_REFUSAL };
    },
    upgrade(upgradeWebSocket, upgradeOptions, eventsFor) {
      return async (c, request, next) => {
        const refusal = await bridge.admit(request);
        if (refusal) return c.text(refusal.body, refusal.status);
        return upgradeWebSocket(() => eventsFor(request), upgradeOptions)(c, next);
      };
    },
    closeAll(code, reason) {
      const handsOver = options.seams?.claims !== undefined;
      for (const conn of [...sockets.keys()]) {
        drop(conn, code, reason);
        if (handsOver) hub.close(conn, true);
      }
      return handsOver;
    },
    stats() {
      const shared = options.seams?.stats;
      return shared ? shared().catch(() => hub.stats()) : hub.stats();
    },
  };
  return bridge;
}
