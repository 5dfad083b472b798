/**
 * One live connection per userId. A newcomer with the session's `token` takes it over at once. One
 * without it gets the userId only if the old socket is silent: the old socket is pinged and has
 * `takeoverProbeMs` to show any sign of life (a pong or a frame); silent, it is closed and its
 * session ended, and the first newcomer to open gets a fresh one. Newcomers racing for a userId
 * share one probe.
 */
import type { Metrics } from './metrics.ts';
import type { Resume } from './resume.ts';
import type { UserClaims } from './seams.ts';
import { DEFAULT_ROOM, type RefusalCode } from './protocol.ts';
import type { ConnId, Session, Sessions, SessionState } from './session.ts';

/** WebSocket close codes of the protocol (RFC 6455 section 7.4.1, and DECISIONS.md's 4000/4009). */
export const CloseCode = {
  policyViolation: 1008,
  messageTooBig: 1009,
  serviceRestart: 1012,
  slowConsumer: 1013,
  replaced: 4000,
  userIdTaken: 4009,
} as const;

export interface OpenRequest {
  userId: string;
  room?: string;
  token?: string;
}

export type OpenResult =
  | { accepted: true; replaced?: ConnId }
  | { accepted: false; code: 'user_id_taken' };

export interface IdentityDeps {
  readonly sessions: Sessions;
  readonly metrics: Metrics;
  readonly probeMs: number;
  readonly maxRooms: number;
  /** Pings a socket; false when the runtime cannot (then silence proves nothing). */
  ping(conn: ConnId): boolean;
  /** Runs `fn` after `ms`; returns a cancel function. Default: `setTimeout`. */
  setTimer?(ms: number, fn: () => void): () => void;
  refuse(conn: ConnId, userId: string, code: RefusalCode, error: string): void;
  close(conn: ConnId, code: number, reason: string): void;
  /** UserIds held by other processes; absent: this process alone. */
  readonly claims: UserClaims | undefined;
  /** Sessions waiting, with no socket, for their user to come back to a call. */
  readonly resume: Pick<Resume, 'away' | 'stop' | 'back' | 'welcome'>;
  register(conn: ConnId, state: SessionState, announce?: boolean): Session;
  joinRoom(session: Session, room: string): void;
  /** Ends a session as a disconnect does (rooms, pool, partner told). */
  remove(session: Session): void;
  touch(session: Session): void;
  /** Persists what an operation outside a frame changed. */
  flush(): void;
}

export interface Identity {
  prepare(request: OpenRequest): Promise<void> | undefined;
  /** Whether `open` would accept `request` now. */
  accepts(request: OpenRequest): boolean;
  open(conn: ConnId, request: OpenRequest): OpenResult;
  /**
   * Asks `session`'s socket for a sign of life on behalf of a newcomer elsewhere (shared with any
   * probe already running); a silent one is closed and its session ended. Undefined when
   * `TAKEOVER_PROBE_MS` is 0 (nobody is replaced without the token).
   */
  probe(session: Session): Promise<void> | undefined;
  /** A frame or a pong from `session`'s socket. */
  signOfLife(session: Session): void;
  /** `session` is ending: a probe of it has its answer. */
  ended(session: Session): void;
}

/** An old session's socket being asked for a sign of life on behalf of newcomers without its token. */
interface Probe {
  readonly session: Session;
  readonly settled: Promise<void>;
  readonly resolve: () => void;
  cancelTimer: () => void;
}

type Outcome = 'alive' | 'silent' | 'gone' | 'unknown';

export function createIdentity(deps: IdentityDeps): Identity {
  const { byUser, byConn } = deps.sessions;
  const probes = new Map<string, Probe>(); // by userId

  function settle(session: Session, outcome: Outcome) {
    const probe = probes.get(session.userId);
    if (probe?.session !== session) return;
    probes.delete(session.userId);
    probe.cancelTimer();
    deps.metrics.inc('aleatoria_takeover_probes_total', outcome);
    if (outcome === 'silent' && byConn.get(session.conn) === session) {
      deps.refuse(
        session.conn,
        session.userId,
        'replaced',
        'This session was replaced by a new connection.',
      );
      deps.metrics.inc('aleatoria_closes_total', 'replaced');
      deps.close(session.conn, CloseCode.replaced, 'silent; replaced by a new connection');
      deps.remove(session);
      deps.flush();
    }
    probe.resolve();
  }

  function startProbe(session: Session): Promise<void> {
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    const probe: Probe = { session, settled, resolve, cancelTimer: () => {} };
    probes.set(session.userId, probe);
    // Where the runtime could not ask, silence proves nothing: the socket counts as alive ('unknown').
    const asked = deps.ping(session.conn);
    probe.cancelTimer = (deps.setTimer ?? setTimer)(deps.probeMs, () =>
      settle(session, asked ? 'silent' : 'unknown'),
    );
    return settled;
  }

  /** The running probe of `session`'s socket, or a new one. */
  function probe(session: Session): Promise<void> {
    const running = probes.get(session.userId);
    return running?.session === session ? running.settled : startProbe(session);
  }

  const takesOver = (existing: Session, request: OpenRequest) =>
    existing.token !== undefined && existing.token === request.token;

  return {
    accepts(request) {
      const existing = byUser.get(request.userId);
      return !existing || takesOver(existing, request);
    },
    prepare(request) {
      const existing = byUser.get(request.userId);
      if (!existing) return deps.claims?.prepare(request);
      // A session waiting for its user has no socket to ask: only the token's holder gets it.
      if (deps.probeMs === 0 || takesOver(existing, request) || deps.resume.away(existing))
        return undefined;
      const settled = probe(existing);
      const { claims } = deps;
      // Replaced here: the userId is free again, and newcomers on other processes may race for it.
      if (!claims) return settled;
      return settled.then(() => (byUser.has(request.userId) ? undefined : claims.prepare(request)));
    },
    open(conn, request) {
      const room = request.room ?? DEFAULT_ROOM;
      const existing = byUser.get(request.userId);
      const claimed = existing ? undefined : deps.claims?.open(request);
      if (claimed?.refused !== true && !existing) {
        const handed = claimed?.state;
        if (handed) {
          // Handed over by another process: the same client, its rooms, availability and call.
          const { resuming, ...state } = handed;
          const session = deps.register(conn, { ...state, token: request.token }, false);
          if (!session.rooms.has(room) && session.rooms.size < deps.maxRooms)
            deps.joinRoom(session, room);
          deps.touch(session);
          if (resuming) deps.resume.back(session);
          return { accepted: true };
        }
        const session = deps.register(conn, {
          userId: request.userId,
          token: request.token,
          rooms: [room],
          available: false,
        });
        deps.touch(session);
        deps.resume.welcome(session);
        return { accepted: true };
      }
      if (existing && takesOver(existing, request)) {
        // Takeover: the same client reconnecting before its old socket timed out keeps its
        // rooms, availability and call; the old socket is told why it is being dropped. Back to a
        // session that waited with no socket (resume.ts), there is no old socket to tell.
        const replaced = existing.conn;
        const away = deps.resume.away(existing);
        const former = deps.resume.stop(existing);
        if (!away) {
          deps.refuse(
            replaced,
            existing.userId,
            'replaced',
            'This session was taken over by a new connection.',
          );
          deps.metrics.inc('aleatoria_closes_total', 'replaced');
          deps.close(replaced, CloseCode.replaced, 'replaced by a new connection');
          byConn.delete(replaced);
        }
        existing.conn = conn;
        byConn.set(conn, existing);
        if (!existing.rooms.has(room) && existing.rooms.size < deps.maxRooms)
          deps.joinRoom(existing, room);
        deps.touch(existing);
        if (away) deps.resume.back(existing, former);
        return away ? { accepted: true } : { accepted: true, replaced };
      }
      deps.refuse(conn, request.userId, 'user_id_taken', 'That userId is already connected.');
      deps.metrics.inc('aleatoria_closes_total', 'user_id_taken');
      deps.close(conn, CloseCode.userIdTaken, 'userId already connected');
      return { accepted: false, code: 'user_id_taken' };
    },
    probe(session) {
      return deps.probeMs === 0 ? undefined : probe(session);
    },
    signOfLife(session) {
      if (probes.size > 0) settle(session, 'alive');
    },
    ended(session) {
      if (probes.size > 0) settle(session, 'gone');
    },
  };
}

/** `setTimeout` as a cancel function: the default timer of the hub's parts. */
export function setTimer(ms: number, fn: () => void): () => void {
  const timer = setTimeout(fn, ms);
  return () => clearTimeout(timer);
}
