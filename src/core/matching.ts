/**
 * Random matching: the availability pool, `request_random_peer` and the per-requester match limit.
 * The partner is drawn uniformly from the pool (never the requester or `currentPeerId`); both leave
 * the pool; the requester is told `impolite`, the partner `polite`. Only a match made costs a
 * token of `MATCHES_PER_MINUTE`: asking while nobody is available is free.
 */
import type { Envelopes } from './envelope.ts';
import type { Metrics } from './metrics.ts';
import type { RefusalCode } from './protocol.ts';
import { createTokenBucket, hasToken, takeToken, type RateLimit } from './rate-limit.ts';
import type { Asker, MatchPool, MaybePromise, UserDirectory } from './seams.ts';
import type { ConnId, Session } from './session.ts';

const NO_PEER_MESSAGE = 'No peer available at the moment. Please try again later.';

export interface MatchingDeps {
  readonly pool: MatchPool;
  readonly users: UserDirectory;
  readonly envelopes: Envelopes;
  readonly metrics: Metrics;
  /** `MATCHES_PER_MINUTE` as a bucket; undefined: no limit. */
  readonly limit: RateLimit | undefined;
  now(): number;
  random(): number;
  send(conn: ConnId, text: string): void;
  /** Answers `error {code}`, with the refused request's `messageId` when it had one. */
  refuse(session: Session, code: RefusalCode, error: string, messageId?: string): void;
  touch(session: Session): void;
  endPairOf(session: Session, reason: string): void;
  /** Continues with a seam's answer, now or when it comes. */
  later<T>(value: MaybePromise<T>, fn: (value: T) => void, asker?: Asker): void;
}

export interface Matching {
  setAvailable(session: Session, available: boolean): void;
  request(session: Session, currentPeerId: string | undefined, messageId: string | undefined): void;
}

export function createMatching(deps: MatchingDeps): Matching {
  const { pool, users, envelopes, metrics, limit } = deps;

  function paired(
    session: Session,
    partner: { userId: string; since: number },
    messageId: string | undefined,
  ) {
    session.partner = partner.userId;
    deps.touch(session);
    const now = deps.now();
    if (limit) takeToken((session.matchBucket ??= createTokenBucket(limit, now)), limit, now);
    metrics.inc('aleatoria_matches_total');
    metrics.observeMatch(Math.max(0, now - partner.since) / 1000);
    deps.send(
      session.conn,
      envelopes.system(
        'assign_role',
        session.userId,
        { role: 'impolite', peerId: partner.userId },
        messageId,
      ),
    );
    deps.later(
      users.deliver(
        partner.userId,
        envelopes.system('assign_role', partner.userId, { role: 'polite', peerId: session.userId }),
      ),
      () => {},
    );
  }

  function noPeer(session: Session, messageId: string | undefined) {
    const payload = { message: NO_PEER_MESSAGE };
    deps.send(
      session.conn,
      envelopes.system('no_peer_available', session.userId, payload, messageId),
    );
  }

  return {
    setAvailable(session, available) {
      if (available) pool.add(session.userId, deps.now());
      else pool.delete(session.userId);
      deps.touch(session);
    },
    request(session, currentPeerId, messageId) {
      if (limit && session.matchBucket && !hasToken(session.matchBucket, limit, deps.now())) {
        deps.refuse(
          session,
          'rate_limited',
          'Too many new strangers in a minute. Wait a moment.',
          messageId,
        );
        return;
      }
      const asker = { session, messageId };
      deps.later(
        pool.take(session.userId, currentPeerId, deps.random),
        (partner) => {
          if (!partner) return noPeer(session, messageId);
          deps.touch(session);
          // A user is in one pair at most: whoever the requester was paired with learns it is over.
          if (session.partner !== partner.userId) deps.endPairOf(session, 'peer_left');
          deps.later(
            users.pair(partner.userId, session.userId),
            (found) => {
              // The partner left between the draw and the pairing (another process's user).
              if (found) paired(session, partner, messageId);
              else noPeer(session, messageId);
            },
            asker,
          );
        },
        asker,
      );
    },
  };
}
