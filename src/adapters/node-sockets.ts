/**
 * What the Node adapter keeps on and does to each `ws` socket: its link to the bridge and its
 * heartbeat counters, kept on the socket itself as ws's own heartbeat example does; one sweep
 * timer for every socket (Deno's heartbeat is the runtime's own `idleTimeout`; Workers have the
 * platform's); and shedding the listeners Hono's upgrade helper left on it.
 */
import type { WebSocket, WebSocketServer } from 'ws';
import type { Config } from '../core/config.ts';
import type { ConnectRequest } from '../app.ts';
import type { Logger } from '../core/log.ts';
import type { Link, SocketBridge } from '../socket-bridge.ts';

export const LINK = Symbol('aleatoria.link');
export const SILENT_SWEEPS = Symbol('aleatoria.silentSweeps');
const SWEEPS_SINCE_PING = Symbol('aleatoria.sweepsSincePing');

/** A socket bound to the bridge: its link, and its heartbeat counters (in sweeps, small integers). */
export interface Adopted extends WebSocket {
  [LINK]: Link;
  [SILENT_SWEEPS]: number;
  [SWEEPS_SINCE_PING]: number;
}

/** Binds `ws` to its bridge link and starts its heartbeat counters. */
export function track(ws: WebSocket, link: Link): Adopted {
  const adopted = ws as Adopted;
  adopted[SILENT_SWEEPS] = 0;
  adopted[SWEEPS_SINCE_PING] = 0;
  adopted[LINK] = link;
  return adopted;
}

/**
 * One sweep timer for all sockets instead of a timer each: pings a socket every `pingIntervalMs`
 * and terminates it once nothing (pong or frame) has arrived for `pongTimeoutMs`. Time is counted
 * in sweeps, at an eighth of the shorter period, so a frame costs no clock read and both periods
 * are honoured to within a sweep.
 */
export function startHeartbeat(wss: WebSocketServer, config: Config) {
  const sweepMs = Math.max(
    5,
    Math.floor(Math.min(config.pingIntervalMs, config.pongTimeoutMs) / 8),
  );
  const pingEvery = Math.max(1, Math.round(config.pingIntervalMs / sweepMs));
  const silentLimit = Math.max(1, Math.round(config.pongTimeoutMs / sweepMs));
  const timer = setInterval(() => {
    for (const client of wss.clients) {
      const ws = client as Adopted;
      if (ws[LINK] === undefined) continue;
      if (++ws[SILENT_SWEEPS] >= silentLimit) {
        ws.terminate();
      } else if (++ws[SWEEPS_SINCE_PING] >= pingEvery && ws.readyState === ws.OPEN) {
        ws[SWEEPS_SINCE_PING] = 0;
        ws.ping();
      }
    }
  }, sweepMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/** The socket events Hono's Node helper listens to for its own dispatch, which `adopt` replaces. */
const SHED_EVENTS = ['message', 'close', 'error'] as const;

/**
 * Removes, at the end of the current job, the `SHED_EVENTS` listeners added after this call: the
 * upgrade helper's. What stays is listed again rather than the helper's taken off one by one: a
 * list that grew for them would keep its grown backing store (~150 bytes per socket for 'close').
 * (Its own scope, so that no per-socket closure keeps the snapshot alive.)
 */
export function shedLaterListeners(ws: WebSocket) {
  const kept = SHED_EVENTS.map((event) => ws.rawListeners(event));
  queueMicrotask(() => {
    SHED_EVENTS.forEach((event, i) => {
      const staying = ws.rawListeners(event).filter((listener) => kept[i]!.includes(listener));
      ws.removeAllListeners(event);
      for (const listener of staying) ws.on(event, listener as (...args: unknown[]) => void);
    });
  });
}

/**
 * Binds upgraded sockets to the bridge: one set of listeners for every socket (each finds its
 * socket as `this`), so nothing per socket but the bridge's link and two counters.
 */
export function createAdopter(bridge: SocketBridge<WebSocket>, log: Logger) {
  // One set of listeners for every socket (each finds its socket as `this`): nothing per socket
  // but the bridge's link and two counters, kept on the socket as ws's own heartbeat example does.
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean) {
    const ws = this as Adopted;
    ws[SILENT_SWEEPS] = 0;
    if (isBinary) bridge.binary(ws[LINK]);
    else bridge.text(ws[LINK], data.toString());
  }
  function onPong(this: WebSocket) {
    const ws = this as Adopted;
    ws[SILENT_SWEEPS] = 0;
    bridge.heard(ws[LINK]);
  }
  function onError(this: WebSocket, error: Error & { code?: string }) {
    // ws enforces maxPayload itself and closes with 1009; it tells us only here (the close event
    // then reports 1006: ws stops reading, so the client's echo of the close is never seen).
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH')
      bridge.hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
    log.debug('socket_error', { conn: (this as Adopted)[LINK].conn, error: error.message });
  }
  function onClose(this: WebSocket, code: number) {
    bridge.closed((this as Adopted)[LINK], code);
  }

  /**
   * Binds an upgraded socket to the bridge directly. Hono's helper keeps, per socket, closures
   * that hold the request's Context, Request and IncomingMessage for the socket's whole life, and
   * builds a MessageEvent and a copy of every frame (measured: bench/README.md). Once the
   * helper has attached its listeners (right after `onOpen` returns), they are taken off again.
   */
  function adopt(raw: WebSocket, request: ConnectRequest) {
    const ws = track(raw, bridge.open(request, raw));
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('error', onError);
    ws.on('close', onClose);
    shedLaterListeners(ws);
  }

  return adopt;
}
