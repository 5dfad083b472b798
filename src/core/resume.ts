/**
 * Calls that outlive a blip of their signaling socket (DECISIONS.md, Calls). Media flows peer to
 * peer, so when the socket of a user in a call ends abnormally (no close frame, or dropped by the
 * heartbeat) and the user holds a token, the session stays, away from any socket, for
 * `CALL_RESUME_MS`: the partner is told `user_status reconnecting`, the user is out of the pool,
 * and the userId is kept for the token's holder. Back in time (a takeover with the token, here or
 * on another process), the partner is told `online` and the pair goes on; not back, the session
 * ends as a disconnect does and the partner gets `hangup {reason:"peer_disconnected"}`.
 *
 * One timer per away session only: an idle socket, a clean close (1000/1001) and a session
 * without a token cost nothing and hang up at once. A user back too late (a fresh session with the
 * same token, within one more window, on any process where `EndedCalls` is shared) is told the call
 * is over, so its page ends it at once.
 */
import type { Envelopes } from './envelope.ts';
import type { Metrics } from './metrics.ts';
import type { EndedCalls, MaybePromise, UserDirectory } from './seams.ts';
import type { ConnId, Session, Sessions } from './session.ts';

export interface ResumeDeps {
  readonly sessions: Sessions;
  readonly metrics: Metrics;
  readonly envelopes: Envelopes;
  /** `CALL_RESUME_MS`; 0: nothing waits. */
  readonly windowMs: number;
  /** Reaches the partner wherever it is. */
  readonly users: UserDirectory;
  setTimer(ms: number, fn: () => void): () => void;
  now(): number;
  send(conn: ConnId, text: string): void;
  later<T>(value: MaybePromise<T>, fn: (value: T) => void): void;
  /** Takes the user out of the pool. */
  unavailable(session: Session): void;
  /** Identity's bookkeeping: a probe of the socket has its answer (the socket is gone). */
  socketGone(session: Session): void;
  /** Ends the session as a disconnect does (rooms, pool, partner hung up, userId free). */
  remove(session: Session): void;
  flush(): void;
  /** Where calls that ended while their user was away are kept; default: this process's memory. */
  readonly ended?: EndedCalls;
}

export interface Resume {
  /** `session`'s socket ended abnormally: true if the session now waits for its user. */
  hold(session: Session): boolean;
  /** Whether `session` waits for its user, with no socket. */
  away(session: Session): boolean;
  /**
   * Ends `session`'s wait, if it waits (its user is back, or it ends): the partner it had when its
   * socket dropped, or undefined if it did not wait.
   */
  stop(session: Session): string | undefined;
  /**
   * `session`'s user is back on `session.conn` after a wait, here or on another process; `former`:
   * its partner when it went, if known.
   */
  back(session: Session, former?: string): void;
  /** A fresh session: if its user's call ended while it was away, it gets that call's hangup. */
  welcome(session: Session): void;
  /** How many sessions wait for their user. */
  readonly size: number;
  /** Ends every wait now, as the end of its window would (a node leaving the cluster). */
  expireAll(): void;
}

export function createResume(deps: ResumeDeps): Resume {
  const { metrics, envelopes, users } = deps;
  const { byUser, byConn } = deps.sessions;
  /** The window's timer of each away session, and the partner it had when it went. */
  const waiting = new Map<Session, { cancel: () => void; partner: string }>();
  const ended = deps.ended ?? createLocalEndedCalls(deps.now);

  /** Whether `userId` is a session of this process that waits with no socket. */
  const isAway = (userId: string) => {
    const session = byUser.get(userId);
    return session !== undefined && waiting.has(session);
  };
  /** Tells `partner`, wherever it is, how `userId` is; a partner away itself hears nothing. */
  const tell = (partner: string, userId: string, status: 'online' | 'reconnecting') => {
    if (isAway(partner)) return;
    deps.later(users.deliver(partner, envelopes.partnerStatus(partner, userId, status)), () => {});
  };

  function expire(session: Session) {
    const wait = waiting.get(session);
    if (!wait) return;
    waiting.delete(session);
    wait.cancel();
    metrics.inc('aleatoria_call_resumes_total', 'expired');
    ended.keep(session.userId, session.token!, session.partner ?? wait.partner, deps.windowMs);
    deps.remove(session);
    deps.flush();
  }

  return {
    hold(session) {
      const { partner } = session;
      if (deps.windowMs <= 0 || session.token === undefined || partner === undefined) return false;
      byConn.delete(session.conn);
      deps.socketGone(session);
      deps.unavailable(session);
      const cancel = deps.setTimer(deps.windowMs, () => expire(session));
      waiting.set(session, { cancel, partner });
      metrics.inc('aleatoria_call_resumes_total', 'held');
      tell(partner, session.userId, 'reconnecting');
      return true;
    },
    away: (session) => waiting.has(session),
    stop(session) {
      const wait = waiting.get(session);
      if (!wait) return undefined;
      waiting.delete(session);
      wait.cancel();
      return wait.partner;
    },
    welcome(session) {
      // Only the token's holder takes it: a newcomer without it leaves it for the user.
      if (session.token === undefined) return;
      deps.later(ended.take(session.userId, session.token), (partner) => {
        // Asked elsewhere, the answer may find the session gone.
        if (partner === undefined || byConn.get(session.conn) !== session) return;
        deps.send(session.conn, envelopes.hangup(partner, session.userId, 'peer_disconnected'));
      });
    },
    back(session, former) {
      metrics.inc('aleatoria_call_resumes_total', 'resumed');
      const { partner } = session;
      if (partner === undefined) {
        // The partner hung up meanwhile, and the hangup went to the dropped socket: told again.
        if (former !== undefined)
          deps.send(session.conn, envelopes.hangup(former, session.userId, 'peer_left'));
        return;
      }
      // Its partner dropped too meanwhile (in this process): the user hears of it now.
      if (isAway(partner))
        deps.send(session.conn, envelopes.partnerStatus(session.userId, partner, 'reconnecting'));
      else tell(partner, session.userId, 'online');
    },
    get size() {
      return waiting.size;
    },
    expireAll() {
      for (const session of [...waiting.keys()]) expire(session);
    },
  };
}

/**
 * One process's ended calls, by userId, for one more window; in the order they ended, which is the
 * order they expire (the window is one length), so pruning reads the front.
 */
function createLocalEndedCalls(now: () => number): EndedCalls {
  const ended = new Map<string, { token: string; partner: string; until: number }>();
  return {
    keep(userId, token, partner, ms) {
      const at = now();
      for (const [user, call] of ended) {
        if (call.until >= at) break;
        ended.delete(user);
      }
      ended.delete(userId);
      ended.set(userId, { token, partner, until: at + ms });
    },
    take(userId, token) {
      const call = ended.get(userId);
      if (call === undefined || call.token !== token) return undefined;
      ended.delete(userId);
      return call.until < now() ? undefined : call.partner;
    },
  };
}
