/**
 * When a call restarts ICE, and when it gives up. A media path that goes `disconnected` or
 * `failed` (a network change, a Wi-Fi handover) needs fresh candidates on both sides: an ICE
 * restart (RFC 8445 section 9), which is one more offer through perfect negotiation. The impolite
 * side restarts at once; the polite side waits for that offer, and restarts itself only if none
 * comes (its peer may not have noticed the break). While the path stays down the restart is
 * repeated, since candidates gathered during an outage can be on a network that is gone again,
 * and after `failAfterMs` without recovery the call ends as failed.
 */

/** Timing of the recovery; every field has a default. */
export interface IceRecoveryOptions {
  /** How long the media path may stay down before the call ends as `failed` (default 20000). */
  failAfterMs?: number;
  /** How long between restarts while it stays down (default 5000). */
  retryEveryMs?: number;
  /** How long the polite side waits for its peer's restart before restarting itself (default 3000). */
  politeWaitMs?: number;
}

export const DEFAULT_FAIL_AFTER_MS = 20_000;
export const DEFAULT_RETRY_EVERY_MS = 5000;
export const DEFAULT_POLITE_WAIT_MS = 3000;

export interface IceRecoveryDeps {
  polite: boolean;
  /** Starts an ICE restart (`pc.restartIce()`, or later when signaling is down). */
  restart(): void;
  /** The path stayed down for `failAfterMs`: end the call. */
  fail(): void;
  options?: IceRecoveryOptions;
}

export interface IceRecovery {
  /** The connection went `disconnected` or `failed`; a no-op while already recovering. */
  lost(): void;
  /** The connection is `connected` again. */
  recovered(): void;
  /** The peer's offer was applied: on the polite side, its restart is under way. */
  remoteOffer(): void;
  readonly active: boolean;
  /** Cancels the timers (the call ended). */
  stop(): void;
}

export function createIceRecovery(deps: IceRecoveryDeps): IceRecovery {
  const failAfterMs = deps.options?.failAfterMs ?? DEFAULT_FAIL_AFTER_MS;
  const retryEveryMs = deps.options?.retryEveryMs ?? DEFAULT_RETRY_EVERY_MS;
  const politeWaitMs = deps.options?.politeWaitMs ?? DEFAULT_POLITE_WAIT_MS;
  let failTimer: ReturnType<typeof setTimeout> | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Polite side: an offer came since the last tick, so the peer is restarting. */
  let offerSeen = false;

  function stop(): void {
    clearTimeout(failTimer);
    clearTimeout(retryTimer);
    failTimer = retryTimer = undefined;
  }

  function tick(): void {
    if (!deps.polite || !offerSeen) deps.restart();
    offerSeen = false;
    retryTimer = setTimeout(tick, retryEveryMs);
  }

  return {
    lost() {
      if (failTimer !== undefined) return;
      failTimer = setTimeout(() => {
        stop();
        deps.fail();
      }, failAfterMs);
      offerSeen = false;
      if (deps.polite) retryTimer = setTimeout(tick, politeWaitMs);
      else tick();
    },
    recovered: stop,
    remoteOffer() {
      offerSeen = true;
    },
    get active() {
      return failTimer !== undefined;
    },
    stop,
  };
}
