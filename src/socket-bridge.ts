/**
 * Binds the hub to Hono's runtime-neutral `WSContext`s: gives each socket a connection id, routes
 * frames in and text out, and closes a socket whose outbound buffer passes `SEND_QUEUE_MAX_BYTES`
 * so that nobody else ever waits for a slow reader. Used by every adapter whose sockets come
 * through Hono's `upgradeWebSocket` (Node, Deno).
 */
import type { WSContext, WSEvents } from 'hono/ws';
import { createHub, type ConnId, type Hub, type HubOptions, type OpenRequest } from './core/hub.ts';
import type { Logger } from './core/log.ts';

/** Close code for a client that cannot keep up (RFC 6455 "try again later"). */
export const SLOW_CONSUMER_CLOSE = 1013;
/** How long a slow consumer gets to take its backlog and the 1013 close frame before it is cut off. */
export const SLOW_CONSUMER_GRACE_MS = 1000;

export interface SocketBridgeOptions {
  hub: HubOptions;
  now?: () => number;
  random?: () => number;
  sendQueueMaxBytes: number;
  /** Bytes the runtime still holds for this socket; omit where the platform bounds it itself. */
  bufferedAmount?: (ws: WSContext) => number;
  /** Drops the connection without a close handshake (for a reader that will never answer one). */
  terminate?: (ws: WSContext) => void;
  log: Logger;
}

export interface SocketBridge {
  readonly hub: Hub;
  /** Open sockets, for heartbeat-free shutdown and metrics. */
  readonly size: number;
  /** Hono WebSocket events for one accepted upgrade. */
  events(request: OpenRequest): WSEvents;
  /** Closes every socket (shutdown). */
  closeAll(code: number, reason: string): void;
}

export function createSocketBridge(options: SocketBridgeOptions): SocketBridge {
  const sockets = new Map<ConnId, WSContext>();
  const { log, sendQueueMaxBytes, bufferedAmount } = options;
  let nextConn = 0;

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

  const hub = createHub(
    {
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      send(conn, text) {
        const ws = sockets.get(conn);
        if (!ws || ws.readyState !== 1) return;
        ws.send(text);
        if (bufferedAmount && bufferedAmount(ws) > sendQueueMaxBytes) {
          log.warn('slow_consumer_closed', { conn, bufferedBytes: bufferedAmount(ws) });
          drop(conn, SLOW_CONSUMER_CLOSE, 'send queue full');
          // The close frame waits behind the backlog; a reader that resumes in time still sees 1013.
          if (options.terminate) setTimeout(() => options.terminate!(ws), SLOW_CONSUMER_GRACE_MS);
          // The hub may be mid-broadcast: let it finish before this user is removed.
          queueMicrotask(() => hub.close(conn));
        }
      },
      close: (conn, code, reason) => drop(conn, code, reason),
    },
    options.hub,
  );

  return {
    hub,
    get size() {
      return sockets.size;
    },
    events(request) {
      const conn: ConnId = `c${(nextConn = (nextConn + 1) % Number.MAX_SAFE_INTEGER).toString(36)}`;
      return {
        onOpen(_event, ws) {
          sockets.set(conn, ws);
          const result = hub.open(conn, request);
          if (!result.accepted) log.info('connection_refused', { conn, userId: request.userId, code: result.code });
          else log.debug('connection_open', { conn, userId: request.userId, replaced: result.replaced });
        },
        onMessage(event) {
          try {
            if (typeof event.data === 'string') hub.message(conn, event.data);
            else hub.binary(conn);
          } catch (error) {
            // A bug must cost one frame, not the process; the stack stays in the server log.
            log.error('message_handler_failed', { conn, error: error instanceof Error ? error.stack : String(error) });
          }
        },
        onClose(event) {
          sockets.delete(conn);
          hub.close(conn);
          log.debug('connection_closed', { conn, code: event.code });
        },
      };
    },
    closeAll(code, reason) {
      for (const conn of [...sockets.keys()]) drop(conn, code, reason);
    },
  };
}
