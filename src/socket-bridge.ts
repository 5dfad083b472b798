/**
 * Binds the hub to Hono's runtime-neutral `WSContext`s: gives each socket a connection id, routes
 * frames in and text out, and closes a socket whose outbound buffer passes `SEND_QUEUE_MAX_BYTES`
 * so that nobody else ever waits for a slow reader. Used by every adapter whose sockets come
 * through Hono's `upgradeWebSocket` (Node, Deno).
 */
import type { Context, Next } from 'hono';
import type { UpgradeWebSocket, WSContext, WSEvents } from 'hono/ws';
import type { ConnectRequest } from './app.ts';
import { frameTooBig } from './core/frame.ts';
import type { Config } from './core/config.ts';
import { CloseCode, createHub, hubOptionsFrom, type ConnId, type Hub } from './core/hub.ts';
import { createPerIpCounter, PER_IP_REFUSAL } from './core/limits.ts';
import type { Logger } from './core/log.ts';

/** How long a slow consumer gets to take its backlog and the 1013 close frame before it is cut off. */
export const SLOW_CONSUMER_GRACE_MS = 1000;

export interface SocketBridgeOptions {
  config: Config;
  now?: () => number;
  random?: () => number;
  /** Bytes the runtime still holds for this socket; omit where the platform bounds it itself. */
  bufferedAmount?: (ws: WSContext) => number;
  /** Drops the connection without a close handshake (for a reader that will never answer one). */
  terminate?: (ws: WSContext) => void;
  /**
   * Enforce `MAX_MESSAGE_BYTES` on arrival (close 1009), for runtimes that cannot cap frames
   * themselves (Deno). Off where the runtime already does it (ws's `maxPayload`).
   */
  checkFrameSize?: boolean;
  log: Logger;
}

export interface SocketBridge {
  readonly hub: Hub;
  /** Sockets opened and not yet closed, whether or not the hub still routes to them. */
  readonly size: number;
  /** Hono WebSocket events for one accepted upgrade. */
  events(request: ConnectRequest): WSEvents;
  /**
   * The `upgrade` of `createApp` for runtimes whose sockets come through Hono's
   * `upgradeWebSocket`: applies the per-IP cap (429), then upgrades.
   */
  upgrade(upgradeWebSocket: UpgradeWebSocket<any, any>, upgradeOptions?: unknown): (c: Context, request: ConnectRequest, next: Next) => Promise<Response | void>;
  /** Closes every socket (shutdown). */
  closeAll(code: number, reason: string): void;
}

export function createSocketBridge(options: SocketBridgeOptions): SocketBridge {
  const sockets = new Map<ConnId, WSContext>();
  const { config, log, bufferedAmount } = options;
  const { sendQueueMaxBytes } = config;
  const perIp = createPerIpCounter(config.maxConnectionsPerIp);
  let nextConn = 0;
  let live = 0;

  function drop(conn: ConnId, code: number, reason: string) {
    const ws = sockets.get(conn);
    if (!ws) return;
    sockets.delete(conn);
    try {
      ws.close(code, reason);
    } catch {
      // Already closing: nothing left to tell it.
    }
  }

  const suspects = new Set<ConnId>();

  function checkSlowConsumer(conn: ConnId, ws: WSContext) {
    suspects.delete(conn);
    const buffered = bufferedAmount!(ws);
    if (sockets.get(conn) !== ws || buffered <= sendQueueMaxBytes) return;
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
        const ws = sockets.get(conn);
        if (!ws || ws.readyState !== 1) return;
        ws.send(text);
        if (bufferedAmount && bufferedAmount(ws) > sendQueueMaxBytes && !suspects.has(conn)) {
          // Some runtimes (Deno) queue a burst in memory before flushing it on the next turn of
          // the event loop: judge the reader once the runtime has had that turn.
          suspects.add(conn);
          setTimeout(() => checkSlowConsumer(conn, ws), 0);
        }
      },
      close: (conn, code, reason) => drop(conn, code, reason),
    },
    hubOptionsFrom(config),
  );

  const bridge: SocketBridge = {
    hub,
    get size() {
      return live;
    },
    events(request) {
      const conn: ConnId = `c${(nextConn = (nextConn + 1) % Number.MAX_SAFE_INTEGER).toString(36)}`;
      return {
        onOpen(_event, ws) {
          live++;
          perIp.add(request.ip);
          sockets.set(conn, ws);
          const result = hub.open(conn, request);
          if (!result.accepted) log.info('connection_refused', { conn, userId: request.userId, code: result.code });
          else log.debug('connection_open', { conn, userId: request.userId, replaced: result.replaced });
        },
        onMessage(event) {
          if (options.checkFrameSize && frameTooBig(event.data, config.maxMessageBytes)) {
            hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
            drop(conn, CloseCode.messageTooBig, 'message too big');
            hub.close(conn);
            return;
          }
          try {
            if (typeof event.data === 'string') hub.message(conn, event.data);
            else hub.binary(conn);
          } catch (error) {
            // A bug must cost one frame, not the process; the stack stays in the server log.
            log.error('message_handler_failed', { conn, error: error instanceof Error ? error.stack : String(error) });
          }
        },
        onClose(event) {
          // ws enforces maxPayload itself (Node): its 1009 is only seen here.
          if (event.code === CloseCode.messageTooBig && !options.checkFrameSize) hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
          live--;
          perIp.remove(request.ip);
          sockets.delete(conn);
          hub.close(conn);
          log.debug('connection_closed', { conn, code: event.code });
        },
      };
    },
    upgrade(upgradeWebSocket, upgradeOptions) {
      return async (c, request, next) => {
        if (perIp.full(request.ip)) {
          log.info('per_ip_refused', { ip: request.ip });
          return c.text(PER_IP_REFUSAL, 429);
        }
        return upgradeWebSocket(() => bridge.events(request), upgradeOptions)(c, next);
      };
    },
    closeAll(code, reason) {
      for (const conn of [...sockets.keys()]) drop(conn, code, reason);
    },
  };
  return bridge;
}
