/**
 * The hub: the protocol's behaviour, composed from one module per responsibility. Pure and
 * synchronous for local decisions: it is handed the clock, the random source and two outputs
 * (`send`, `close`), holds connection ids and never sockets, and reaches users, rooms and the pool
 * through the seams of `seams.ts` (in memory unless told otherwise). Where a frame goes:
 * `docs/architecture.md`.
 *
 * - `identity.ts`: one connection per userId, takeover, the silent-socket probe
 * - `inbound.ts`: a text frame to a checked client message
 * - `envelope.ts`: every frame the server writes
 * - `matching.ts`: the pool, `request_random_peer`, the match limit
 * - `chat.ts`: room and direct messages, their history (`history.ts`, `memory-history.ts`)
 * - `dispatch.ts`: what each client message does
 * - `local-state.ts`: the in-memory users, rooms and pool
 * - `ordering.ts`: one connection's frames in order across processes
 * - `host.ts`: what other processes may ask of this one (`HubSeams.claims`)
 */
import * as v from 'valibot';
import type { Hub, HubDeps, HubOptions, HubSeams, HubStats } from './hub-api.ts';
import { createDispatch } from './dispatch.ts';
import { createEnvelopes } from './envelope.ts';
import { createNoHistory, type HistoryStore } from './history.ts';
import { createHost } from './host.ts';
import { CloseCode, createIdentity, setTimer } from './identity.ts';
import { parseClientFrame } from './inbound.ts';
import { createLocalPool, createLocalRooms, createLocalUsers } from './local-state.ts';
import { createMemoryHistory } from './memory-history.ts';
import { createMatching } from './matching.ts';
import { createMembership } from './membership.ts';
import { createMetrics } from './metrics.ts';
import { createOrdering } from './ordering.ts';
import { createPresence } from './presence.ts';
import type { RefusalCode, ResponseErrorCode } from './protocol.ts';
import { createTokenBucket, judgeFrame } from './rate-limit.ts';
import { createResume } from './resume.ts';
import { type Asker, type Keep, type MaybePromise, whenReady } from './seams.ts';
import {
  type ConnId,
  countPairs,
  createSession,
  type Session,
  SessionState,
  type Sessions,
  stateOf,
} from './session.ts';

export { CloseCode, type OpenRequest, type OpenResult } from './identity.ts';
export { type ConnId, SessionState } from './session.ts';
export {
  type Hub,
  type HubDeps,
  type HubOptions,
  type HubSeams,
  type HubStats,
  hubOptionsFrom,
  type PublicStats,
} from './hub-api.ts';

const UNAVAILABLE = 'The service is briefly unavailable. Try again.';

export function createHub(deps: HubDeps, options: HubOptions, seams: HubSeams = {}): Hub {
  const sessions: Sessions = { byUser: new Map(), byConn: new Map() };
  const { byUser, byConn } = sessions;
  const dirty = new Set<Session>();
  const { wait, after, enqueue } = createOrdering((conn) => byConn.get(conn), flush);
  // Sessions whose durable state changed in this operation, for `persist`; nothing to track without it.
  const touch: (session: Session) => void = deps.persist
    ? (session) => void dirty.add(session)
    : () => {};
  const metrics = createMetrics();
  const envelopes = createEnvelopes(deps.now);
  // Every message to one recipient goes out through here (room broadcasts count themselves once).
  // Messages are built with `type` first, so the type is read off the text without parsing it.
  const send = (conn: ConnId, text: string) => {
    metrics.inc('aleatoria_messages_out_total', text.slice(9, text.indexOf('"', 9)));
    deps.send(conn, text);
  };
  /**
   * Continues with a seam's answer; an answer that comes later persists what it changed. A seam
   * that could not answer (its store unreachable) costs `asker`, if a user waits for the answer,
   * `error {code:"unavailable"}`.
   */
  const later = <T>(value: MaybePromise<T>, fn: (value: T) => void, asker?: Asker) => {
    if (!(value instanceof Promise)) return fn(value);
    whenReady(
      value,
      (result) => {
        fn(result);
        flush();
      },
      () => {
        metrics.inc('aleatoria_state_failures_total');
        if (asker && byConn.get(asker.session.conn) === asker.session)
          refuse(asker.session, 'unavailable', UNAVAILABLE, asker.messageId);
      },
    );
  };

  const history: HistoryStore = !options.history?.enabled
    ? createNoHistory()
    : seams.history
      ? seams.history(options.history)
      : createMemoryHistory(options.history);
  const keep = ({ conversation, message }: Keep) =>
    later(history.append(conversation, message, deps.now()), () => {});
  const pool = seams.pool ? seams.pool(createLocalPool()) : createLocalPool();
  const localRooms = createLocalRooms(deps.send, keep);
  const rooms = seams.rooms ? seams.rooms(localRooms) : localRooms;
  const localUsers = createLocalUsers({
    sessions,
    envelopes,
    send,
    touch,
    // The local users end pairs as the hub does (built just below, from these users).
    endPairOf: (session, reason) => membership.endPairOf(session, reason),
    leave: (userId, partner, reason) => membership.leave(userId, partner, reason),
    keep,
  });
  const users = seams.users ? seams.users(localUsers) : localUsers;
  const presence = createPresence({
    limit: options.presenceRoomLimit ?? 0,
    rooms,
    envelopes,
    metrics,
    later,
  });
  const membership = createMembership({ rooms, presence, envelopes, users, wait, touch, later });
  const { joinRoom, leaveRoom, endPairOf } = membership;

  const refuse = (
    session: Pick<Session, 'conn' | 'userId'>,
    code: RefusalCode,
    error: string,
    messageId?: string,
  ) => {
    metrics.inc('aleatoria_errors_total', code);
    send(session.conn, envelopes.refusal(session.userId, code, error, messageId));
  };
  const respondError = (
    session: Session,
    code: ResponseErrorCode,
    error: string,
    details: string,
  ) => {
    metrics.inc('aleatoria_errors_total', code);
    send(session.conn, envelopes.errorResponse(session.userId, code, error, details));
  };

  function flush() {
    if (dirty.size === 0) return;
    if (deps.persist)
      for (const session of dirty)
        if (byConn.get(session.conn) === session)
          deps.persist(session.conn, stateOf(session, pool.has(session.userId)));
    dirty.clear();
  }

  const matching = createMatching({
    pool,
    users,
    envelopes,
    metrics,
    limit:
      options.matchesPerMinute === undefined
        ? undefined
        : { perSecond: options.matchesPerMinute / 60, burst: options.matchesPerMinute },
    now: deps.now,
    random: deps.random,
    send,
    refuse,
    touch,
    endPairOf,
    wait,
    later,
  });

  const resume = createResume({
    sessions,
    metrics,
    envelopes,
    windowMs: options.callResumeMs ?? 0,
    users,
    setTimer: deps.setTimer ?? setTimer,
    now: deps.now,
    send,
    later,
    unavailable: (session) => matching.setAvailable(session, false),
    socketGone: (session) => identity.ended(session),
    remove,
    flush,
    ended: seams.endedCalls?.(),
  });

  /** A session from `state`; `announce`: a newcomer its rooms are told of (not a wake). */
  function register(conn: ConnId, state: SessionState, announce = true): Session {
    const session = createSession(conn, state);
    byUser.set(session.userId, session);
    byConn.set(conn, session);
    for (const room of state.rooms) joinRoom(session, room, announce);
    // Restored after a wake: a shared pool has it, unless another request took it meanwhile.
    if (state.available) pool.add(session.userId, deps.now(), !announce);
    return session;
  }

  /** The session is gone (closed, rate-limited): its userId is free again. */
  function remove(session: Session) {
    end(session);
    claims?.released(session.userId);
  }

  /** Ends a session as a disconnect does: rooms left, out of the pool, partner hung up. */
  function end(session: Session) {
    identity.ended(session);
    for (const room of session.rooms) leaveRoom(session, room);
    matching.setAvailable(session, false);
    endPairOf(session, 'peer_disconnected');
    forget(session);
  }

  function forget(session: Session) {
    resume.stop(session);
    byUser.delete(session.userId);
    byConn.delete(session.conn);
    dirty.delete(session);
  }

  /** Closes `session`'s socket with 4000 after telling it why. */
  function replace(session: Session, why: string) {
    refuse(session, 'replaced', why);
    metrics.inc('aleatoria_closes_total', 'replaced');
    deps.close(session.conn, CloseCode.replaced, 'replaced by a new connection');
  }

  const host = createHost({
    sessions,
    metrics,
    envelopes,
    localUsers,
    localRooms,
    rooms,
    pool,
    presence,
    probe: (session) => identity.probe(session),
    ended: (session) => identity.ended(session),
    away: resume.away,
    replace,
    end,
    forget,
    flush,
  });
  seams.host?.(host);
  const claims = seams.claims?.(host);

  const identity = createIdentity({
    sessions,
    metrics,
    probeMs: options.takeoverProbeMs ?? 0,
    maxRooms: options.maxRoomsPerConnection,
    ping: (conn) => deps.ping?.(conn) === true,
    setTimer: deps.setTimer,
    refuse: (conn, userId, code, error) => refuse({ conn, userId }, code, error),
    close: deps.close,
    claims,
    resume,
    register,
    joinRoom,
    remove,
    touch,
    flush,
  });

  const dispatch = createDispatch({
    options,
    envelopes,
    metrics,
    rooms,
    users,
    matching,
    history,
    byUser,
    now: deps.now,
    send,
    refuse,
    joinRoom,
    leaveRoom,
    after,
    endPairOf,
    later,
  });

  function handleText(session: Session, text: string) {
    const inbound = parseClientFrame(text);
    if (!inbound.ok) {
      metrics.inc('aleatoria_messages_in_total', 'invalid');
      return respondError(session, inbound.code, inbound.error, inbound.details);
    }
    metrics.inc('aleatoria_messages_in_total', inbound.message.type);
    dispatch(session, inbound.message);
  }

  /** Applies the per-connection token bucket; false means the frame is dropped. */
  function admit(session: Session): boolean {
    const { rateLimit, rateLimitCloseAfterMs } = options;
    const now = deps.now();
    session.bucket ??= createTokenBucket(rateLimit, now);
    const verdict = judgeFrame(session.bucket, rateLimit, rateLimitCloseAfterMs, now);
    if (verdict === 'pass') return true;
    if (verdict === 'tell') refuse(session, 'rate_limited', 'Too many messages. Slow down.');
    else if (verdict === 'close') {
      metrics.inc('aleatoria_closes_total', 'rate_limited');
      deps.close(session.conn, CloseCode.policyViolation, 'rate limit exceeded');
      remove(session);
    }
    return false;
  }

  const stats = (): HubStats => ({
    connections: byUser.size,
    rooms: rooms.size,
    available: pool.size,
    pairs: countPairs(byUser, claims !== undefined),
  });

  /**
   * A frame from `conn` (`text`, or undefined for a binary one): a sign of life, then the rate
   * limit, then handled now or, while the connection's writes to shared state are pending, after.
   */
  function frame(conn: ConnId, text: string | undefined) {
    const session = byConn.get(conn);
    if (session) {
      identity.signOfLife(session);
      if (!admit(session)) {
        // Dropped by the rate limit.
      } else if (!session.pending) handleFrame(session, text);
      else if (!enqueue(session, () => handleFrame(session, text)))
        refuse(session, 'unavailable', UNAVAILABLE);
    }
    flush();
  }

  function handleFrame(session: Session, text: string | undefined) {
    if (text !== undefined) handleText(session, text);
    else
      respondError(
        session,
        'binary_not_supported',
        'Binary frames are not supported',
        'send JSON in text frames',
      );
  }

  return {
    prepare: identity.prepare,
    accepts: identity.accepts,
    heard(conn) {
      const session = byConn.get(conn);
      if (session) identity.signOfLife(session);
    },
    open(conn, request) {
      const result = identity.open(conn, request);
      flush();
      return result;
    },
    message: frame,
    binary: (conn) => frame(conn, undefined),
    close(conn, abnormal) {
      const session = byConn.get(conn);
      // A call waits for a user whose socket merely dropped (resume.ts).
      if (session && !(abnormal && resume.hold(session))) remove(session);
      flush();
    },
    get waiting() {
      return resume.size;
    },
    endWaits: resume.expireAll,
    restore(conn, state) {
      const parsed = v.safeParse(SessionState, state);
      if (!parsed.success || byUser.has(parsed.output.userId)) return false;
      // The state came from storage: nothing to write back until it changes.
      dirty.delete(register(conn, parsed.output, false));
      return true;
    },
    state(conn) {
      const session = byConn.get(conn);
      return session && stateOf(session, pool.has(session.userId));
    },
    metrics,
    renderMetrics() {
      const now = stats();
      return metrics.render({
        aleatoria_connections: now.connections,
        aleatoria_rooms: now.rooms,
        aleatoria_pool_size: now.available,
        aleatoria_pairs: now.pairs,
        ...seams.gauges?.(),
      });
    },
    stats,
  };
}
