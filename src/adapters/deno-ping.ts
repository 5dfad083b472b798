/**
 * Deno's heartbeat: its `idleTimeout` from our ping settings, and a protocol ping on demand, which
 * its WebSocket lacks (no `ping()`, no pong event). The runtime's heartbeat does both inside:
 * `[[serverHandleIdleTimeout]]` arms a timer that sends a ping after half the idle timeout, and
 * the socket's read loop calls the same method on every frame and pong it receives. So a ping now
 * is that method run once with a near-zero timeout, and a sign of life is that method being called.
 *
 * These are Deno's internal symbols (found by description; stable across Deno 1.3x-2.x). Where they
 * are missing this returns undefined, and the bridge treats a probed socket as alive: a newcomer
 * without the token is refused, as before, instead of a live session being replaced.
 */
import type { Config } from '../core/config.ts';

/**
 * Deno pings a socket after `idleTimeout / 2` of silence and closes it after `idleTimeout`
 * (seconds, fractions allowed). Mapped so that pings come at least every `PING_INTERVAL_MS` and a
 * silent socket is closed at the latest `PONG_TIMEOUT_MS` after it was last heard.
 */
export function idleTimeoutSeconds(config: Config): number {
  return Math.min(config.pongTimeoutMs, 2 * config.pingIntervalMs) / 1000;
}

/** What the bridge needs: ping `ws` now and call `onLife` on each frame or pong from then on. */
export type DenoPing = (ws: WebSocket, onLife: () => void) => void;

const IDLE_TIMEOUT = '[[idleTimeout]]';
const HANDLE_IDLE = '[[serverHandleIdleTimeout]]';
/** Half of this (seconds) is how long the runtime waits before sending the ping. */
const PING_NOW_SECONDS = 0.002;
const ON_LIFE = Symbol('aleatoria.onLife');

type Internals = Record<symbol, unknown> & { [ON_LIFE]?: () => void };

export function createDenoPing(sample: WebSocket): DenoPing | undefined {
  const symbolOf = (object: object, description: string) =>
    Object.getOwnPropertySymbols(object).find((s) => s.description === description);
  const proto = Object.getPrototypeOf(sample) as Internals;
  const handle = symbolOf(proto, HANDLE_IDLE);
  const idle = symbolOf(sample, IDLE_TIMEOUT);
  const found = handle && proto[handle];
  if (!handle || !idle || typeof found !== 'function') return undefined;
  const original = found as (this: Internals) => unknown;

  // One function for every probed socket; it finds its callback on the socket.
  function observed(this: Internals) {
    this[ON_LIFE]?.();
    return original.call(this);
  }

  return (ws, onLife) => {
    const socket = ws as unknown as Internals;
    socket[ON_LIFE] = onLife;
    socket[handle] = observed;
    const timeout = socket[idle];
    socket[idle] = PING_NOW_SECONDS;
    // Arms the ping timer with the short timeout; after the ping, the wait for its pong reads the
    // restored timeout, so an unanswered probe ends the socket as the heartbeat would.
    original.call(socket);
    socket[idle] = timeout;
  };
}
