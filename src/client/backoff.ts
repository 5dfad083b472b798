/**
 * Reconnect delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): each delay is drawn uniformly from [0, min(max, initial * 2^attempt)], so
 * clients dropped together by a restart do not come back together.
 */

/** Tuning of the reconnect delays; every field has a default. */
export interface BackoffOptions {
  /** Cap of the first delay, in ms (default 500). */
  initialDelayMs?: number;
  /** Largest cap, in ms (default 15000). */
  maxDelayMs?: number;
  /** Source of jitter in [0, 1) (default `Math.random`); scripted in tests. */
  random?: () => number;
}

/** A sequence of delays that grows with each failure until {@link Backoff.reset}. */
export interface Backoff {
  /** The delay before the next attempt, in ms; advances the attempt counter. */
  next(): number;
  /** Back to the first delay (after a successful open). */
  reset(): void;
  /** Failed attempts since the last reset. */
  readonly attempt: number;
}

export const DEFAULT_INITIAL_DELAY_MS = 500;
export const DEFAULT_MAX_DELAY_MS = 15_000;

/** Creates a full-jitter backoff: `random() * min(maxDelayMs, initialDelayMs * 2 ** attempt)`. */
export function createBackoff(options: BackoffOptions = {}): Backoff {
  const initial = options.initialDelayMs ?? DEFAULT_INITIAL_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const random = options.random ?? Math.random;
  let attempt = 0;
  return {
    next() {
      const cap = Math.min(max, initial * 2 ** attempt);
      attempt++;
      // Clamped so a misbehaving random source cannot produce a negative or oversized delay.
      return Math.min(cap, Math.max(0, random() * cap));
    },
    reset() {
      attempt = 0;
    },
    get attempt() {
      return attempt;
    },
  };
}
