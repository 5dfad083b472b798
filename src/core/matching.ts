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
import type { Asker, MatchPool, MaybePromise, Taken, UserDirectory } from './seams.ts';
import { type ConnId, MAX_PREEMPTED, type Session } from './session.ts';

/** The payload of every `no_peer_available` (one object for all: it is only serialized). */
const NO_PEER = { message: 'No peer available at the moment. Please try again later.' } as const;

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
  /** `session`'s next frames wait for `write` to shared state (`hub.ts`). */
  wait(session: Session, write: MaybePromise<void>): void;
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
  }

  function noPeer(session: Session, messageId: string | undefined) {
    deps.send(
      session.conn,
      envelopes.system('no_peer_available', session.userId, NO_PEER, messageId),
    );
  }

  /** Judges again the pair endings that came while `session`'s take ran (`Session.taking`). */
  function judgeTaking(session: Session) {
    const waiting = session.taking;
    session.taking = undefined;
    if (waiting) for (const endPair of waiting) endPair();
  }

  /** The pool's answer to `session`'s request: the partner taken for it, or nobody. */
  function taken(session: Session, partner: Taken | undefined, messageId: string | undefined) {
    if (!partner) {
      judgeTaking(session);
      return noPeer(session, messageId);
    }
    const older = partner.preempted;
    if (older && older.match > session.pairedAt) {
      // Another request took this user just before its own ran, and that pairing has not
      // reached this process yet: the user hears of it now, in the order the matches were
      // made, and leaves it at once below (its requester hears peer_left).
      if (session.partner !== older.by) deps.endPairOf(session, 'peer_left');
      session.partner = older.by;
      session.pairedAt = older.match;
      const preempted = (session.preempted ??= []);
      if (preempted.push(older.match) > MAX_PREEMPTED) preempted.shift();
      deps.send(
        session.conn,
        envelopes.system('assign_role', session.userId, { role: 'polite', peerId: older.by }),
      );
    }
    deps.touch(session);
    // A user is in one pair at most: whoever the requester was paired with learns it is over.
    if (session.partner !== partner.userId) deps.endPairOf(session, 'peer_left');
    // Paired from now on, before the partner's process has answered (a shared pool): a
    // hangup, or a pairing by another requester, that comes meanwhile finds the pair.
    session.partner = partner.userId;
    session.pairedAt = Math.max(session.pairedAt, partner.match);
    const polite = envelopes.system('assign_role', partner.userId, {
      role: 'polite',
      peerId: session.userId,
    });
    const pairing = users.pair(partner.userId, session.userId, polite, partner.match);
    if (!(pairing instanceof Promise)) {
      if (pairing) paired(session, partner, messageId);
      else {
        session.partner = undefined;
        noPeer(session, messageId);
      }
      return judgeTaking(session);
    }
    // Until the partner's process answers, what others say about the requester's pairs
    // waits, so that it follows the requester's own assign_role.
    const held: string[] = [];
    session.held = held;
    judgeTaking(session);
    const settled = (found: boolean) => {
      if (session.held === held) session.held = undefined;
      // The partner left between the draw and the pairing.
      if (!found && session.partner === partner.userId) session.partner = undefined;
      if (found) paired(session, partner, messageId);
      else noPeer(session, messageId);
      for (const text of held) deps.send(session.conn, text);
    };
    pairing.catch(() => {
      if (session.held === held) session.held = undefined;
      if (session.partner === partner.userId) session.partner = undefined;
      for (const text of held) deps.send(session.conn, text);
    });
    deps.later(pairing, settled, { session, messageId });
  }

  return {
    setAvailable(session, available) {
      deps.wait(
        session,
        available ? pool.add(session.userId, deps.now()) : pool.delete(session.userId),
      );
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
      const take = pool.take(session.userId, currentPeerId, deps.random);
      // This process's pool answers at once: carried on directly, with no closure per request
      // (every request makes one, and most of a match's frames are requests).
      if (!(take instanceof Promise)) return taken(session, take, messageId);
      session.taking = [];
      take.catch(() => judgeTaking(session));
      deps.later(take, (partner) => taken(session, partner, messageId), { session, messageId });
    },
  };
}
