/**
 * A token bucket per connection, kept as plain numbers so it lives inside a session's state.
 * Pure: the caller passes the clock.
 */
export interface TokenBucket {
  tokens: number;
  /** When tokens were last refilled (ms). */
  refilledAt: number;
  /** Start of the current run of refusals (ms), or -1 while within the limit. */
  limitedSince: number;
  /** Last refusal (ms): a run continues while refusals come less than a second apart. */
  refusedAt: number;
  /** When a `rate_limited` error was last sent (ms), to send at most one per second. */
  notifiedAt: number;
}

export interface RateLimit {
  perSecond: number;
  burst: number;
}

export function createTokenBucket(limit: RateLimit, now: number): TokenBucket {
  return {
    tokens: limit.burst,
    refilledAt: now,
    limitedSince: -1,
    refusedAt: -Infinity,
    notifiedAt: -Infinity,
  };
}

/** Whether a token is there to take, without taking it (refills first). */
export function hasToken(bucket: TokenBucket, limit: RateLimit, now: number): boolean {
  const elapsed = Math.max(0, now - bucket.refilledAt);
  bucket.tokens = Math.min(limit.burst, bucket.tokens + (elapsed * limit.perSecond) / 1000);
  bucket.refilledAt = now;
  return bucket.tokens >= 1;
}

/** Gap between refusals that ends a run of sustained excess. */
export const EXCESS_RUN_GAP_MS = 1000;

/**
 * Takes one token if there is one. Returns false when there is not, extending the current run of
 * refusals. A client flooding faster than the refill still gets a token now and then; that must
 * not reset the run, or sustained abuse would never be recognised.
 */
export function takeToken(bucket: TokenBucket, limit: RateLimit, now: number): boolean {
  if (hasToken(bucket, limit, now)) {
    bucket.tokens -= 1;
    return true;
  }
  if (bucket.limitedSince < 0 || now - bucket.refusedAt > EXCESS_RUN_GAP_MS)
    bucket.limitedSince = now;
  bucket.refusedAt = now;
  return false;
}

/**
 * What becomes of one frame under the per-connection limit: `pass` (handled), `drop` (silently:
 * the sender was told less than a second ago), `tell` (dropped, and the sender told
 * `rate_limited`), `close` (the excess lasted `closeAfterMs`: the connection is closed, 1008).
 */
export type FrameVerdict = 'pass' | 'drop' | 'tell' | 'close';

/**
 * Takes a token for one frame and says what to do with it: a flood is answered at most once a
 * second (answering every dropped frame would amplify it) and closed once it has lasted
 * `closeAfterMs` (0: never).
 */
export function judgeFrame(
  bucket: TokenBucket,
  limit: RateLimit,
  closeAfterMs: number,
  now: number,
): FrameVerdict {
  if (takeToken(bucket, limit, now)) return 'pass';
  if (closeAfterMs > 0 && now - bucket.limitedSince >= closeAfterMs) return 'close';
  if (now - bucket.notifiedAt < 1000) return 'drop';
  bucket.notifiedAt = now;
  return 'tell';
}
