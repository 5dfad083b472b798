/**
 * The Node adapter's protocol heartbeat (Deno's is the runtime's own `idleTimeout`; Workers have the
 * platform's): the per-socket state it reads, kept on the `ws` socket itself as ws's own heartbeat
 * example does, and one sweep timer for every socket.
 */
import type { WebSocket, WebSocketServer } from 'ws';
import type { Config } from '../core/config.ts';
import type { Link } from '../socket-bridge.ts';

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
