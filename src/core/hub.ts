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
 */
import * as v from 'valibot';
import type { Hub, HubDeps, HubOptions, HubSeams, HubStats } from './hub-api.ts';
import { createDispatch } from './dispatch.ts';
import { createEnvelopes } from './envelope.ts';
import { createNoHistory, type HistoryStore } from './history.ts';
import { CloseCode, createIdentity } from './identity.ts';
import { parseClientFrame } from './inbound.ts';
import { createLocalPool, createLocalRooms, createLocalUsers } from './local-state.ts';
import { createMemoryHistory } from './memory-history.ts';
import { createMatching } from './matching.ts';
import { createMetrics } from './metrics.ts';
import type { RefusalCode, ResponseErrorCode } from './protocol.ts';
import { createTokenBucket, takeToken } from './rate-limit.ts';
import { type Asker, type HubHost, type Keep, type MaybePromise, whenReady } from './seams.ts';
import { type ConnId, type Session, SessionState, type Sessions, stateOf } from './session.ts';

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
const noop = () => {};
/** Frames one connection may have waiting for its writes to shared state; past it, refused. */
const MAX_QUEUED_FRAMES = 256;

export function createHub(deps: HubDeps, options: HubOptions, seams: HubSeams = {}): Hub {
  const sessions: Sessions = { byUser: new Map(), byConn: new Map() };
  const { byUser, byConn } = sessions;
  const dirty = new Set<Session>();
  // Sessions whose durable state changed in this operation, for `persist`; nothing to track without it.
  const touch: (session: Session) => void = deps.persist
    ? (session) => void dirty.add(session)
    : () => {};
  const metrics = createMetrics();
  const presenceRoomLimit = options.presenceRoomLimit ?? 0;
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
    endPairOf,
    leave,
    keep,
  });
  const users = seams.users ? seams.users(localUsers) : localUsers;

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

  function joinRoom(session: Session, room: string, announce = true) {
    wait(session, rooms.join(room, session));
    session.rooms.add(room);
    touch(session);
    if (announce && presenceRoomLimit > 0) tellRoom(room, session, 'online');
  }

  function leaveRoom(session: Session, room: string) {
    wait(session, rooms.leave(room, session));
    session.rooms.delete(room);
    touch(session);
    if (presenceRoomLimit > 0) tellRoom(room, session, 'offline');
  }

  /**
   * `session`'s next frames (and `after` work) wait until `write`, a write to shared state, is
   * acknowledged or has failed. Nothing waits for a write this process made at once.
   */
  function wait(session: Session, write: MaybePromise<void>) {
    if (!(write instanceof Promise)) return;
    const done = write.then(noop, noop);
    const all = session.pending ? Promise.all([session.pending, done]).then(noop) : done;
    session.pending = all;
    void all.then(() => {
      if (session.pending !== all) return;
      session.pending = undefined;
      // Gone meanwhile: nothing it sent is to be done.
      if (byConn.get(session.conn) !== session) return void (session.queue.length = 0);
      while (session.queue.length > 0 && !session.pending) session.queue.shift()!();
      flush();
    });
  }

  /** Runs `fn` once `session`'s pending writes are acknowledged (at once when there are none). */
  function after(session: Session, fn: () => void) {
    if (session.pending) session.queue.push(fn);
    else fn();
  }

  /** `user_status` to a room's other members, if the room is small enough for it. */
  function tellRoom(room: string, session: Session, status: 'online' | 'offline') {
    later(rooms.count(room), (count) => {
      // The room's size with the user in it: after a join, before a leave.
      if ((status === 'online' ? count : count + 1) > presenceRoomLimit) return;
      const text = envelopes.userStatus(room, session.userId, status);
      metrics.inc(
        'aleatoria_messages_out_total',
        'user_status',
        rooms.broadcast(room, text, session),
      );
    });
  }

  /** Ends `session`'s pair; the partner is told with a server `hangup` when `reason` is given. */
  function endPairOf(session: Session, reason?: string) {
    const former = session.partner;
    session.partner = undefined;
    touch(session);
    if (former !== undefined) leave(session.userId, former, reason);
  }

  /** Ends `partner`'s pair with `userId`, wherever it is, telling it `reason` when given. */
  function leave(userId: string, partner: string, reason?: string) {
    const hangup = reason === undefined ? undefined : envelopes.hangup(userId, partner, reason);
    later(users.endPair(partner, userId, hangup), () => {});
  }

  const setTimer =
    deps.setTimer ??
    ((ms: number, fn: () => void) => {
      const timer = setTimeout(fn, ms);
      return () => clearTimeout(timer);
    });

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

  /** A session from `state`; `announce`: a newcomer its rooms are told of (not a wake). */
  function register(conn: ConnId, state: SessionState, announce = true): Session {
    const session: Session = {
      conn,
      userId: state.userId,
      token: state.token,
      rooms: new Set(),
      partner: state.partner,
      bucket: createTokenBucket(options.rateLimit, deps.now()),
      matchBucket: undefined,
      held: undefined,
      pending: undefined,
      queue: [],
      preempted: undefined,
      taking: undefined,
      pairedAt: 0,
    };
    byUser.set(session.userId, session);
    byConn.set(conn, session);
    for (const room of state.rooms) joinRoom(session, room, announce);
    if (state.available) pool.add(session.userId, deps.now());
    return session;
  }

  function remove(session: Session) {
    identity.ended(session);
    for (const room of session.rooms) leaveRoom(session, room);
    matching.setAvailable(session, false);
    endPairOf(session, 'peer_disconnected');
    forget(session);
    claims?.released(session.userId);
  }

  function forget(session: Session) {
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

  /**
   * What the hub offers seams shared with other processes (`seams.claims`): requests about users
   * held here, and the news that users elsewhere are gone.
   */
  const host: HubHost = {
    metrics,
    envelopes,
    local: localUsers,
    localRooms,
    sessions: () => byUser.values(),
    has: (userId) => byUser.has(userId),
    async yieldUser(userId, tokenMatches) {
      const existing = byUser.get(userId);
      if (!existing) return { outcome: 'gone' };
      if (existing.token !== undefined && tokenMatches(existing.token)) {
        // A takeover from another process: the session moves there as it is (rooms, pool,
        // partner), so nobody is told anything but the old socket.
        const state = stateOf(existing, pool.has(userId));
        identity.ended(existing);
        replace(existing, 'This session was taken over by a new connection.');
        for (const room of existing.rooms) rooms.leave(room, existing);
        if (state.available) pool.delete(userId);
        forget(existing);
        return { outcome: 'handed', state };
      }
      const probe = identity.probe(existing);
      if (probe) await probe;
      return byUser.get(userId) === existing ? { outcome: 'alive' } : { outcome: 'gone' };
    },
    evict(userId) {
      const session = byUser.get(userId);
      if (!session) return;
      replace(session, 'This session was replaced by a connection elsewhere.');
      identity.ended(session);
      for (const room of session.rooms) leaveRoom(session, room);
      matching.setAvailable(session, false);
      endPairOf(session, 'peer_disconnected');
      forget(session);
      flush();
    },
    usersGone(userIds, left) {
      for (const session of byUser.values())
        if (session.partner !== undefined && userIds.has(session.partner))
          localUsers.endPair(
            session.userId,
            session.partner,
            envelopes.hangup(session.partner, session.userId, 'peer_disconnected'),
          );
      // Each process tells its own members, as it would of a departure it saw itself.
      if (presenceRoomLimit > 0)
        for (const [room, userId] of left)
          if (localRooms.count(room) !== 0)
            later(rooms.count(room), (count) => {
              if (count + 1 > presenceRoomLimit) return;
              const text = envelopes.userStatus(room, userId, 'offline');
              metrics.inc(
                'aleatoria_messages_out_total',
                'user_status',
                localRooms.broadcast(room, text),
              );
            });
      flush();
    },
    flush,
  };
  const claims = seams.claims?.(host);

  const identity = createIdentity({
    sessions,
    metrics,
    probeMs: options.takeoverProbeMs ?? 0,
    maxRooms: options.maxRoomsPerConnection,
    ping: (conn) => deps.ping?.(conn) === true,
    setTimer,
    refuse: (conn, userId, code, error) => refuse({ conn, userId }, code, error),
    close: deps.close,
    claims,
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
    const now = deps.now();
    if (takeToken(session.bucket, options.rateLimit, now)) return true;
    const { bucket } = session;
    if (
      options.rateLimitCloseAfterMs > 0 &&
      now - bucket.limitedSince >= options.rateLimitCloseAfterMs
    ) {
      metrics.inc('aleatoria_closes_total', 'rate_limited');
      deps.close(session.conn, CloseCode.policyViolation, 'rate limit exceeded');
      remove(session);
      return false;
    }
    // One error per second at most: answering every dropped frame would amplify the flood.
    if (now - bucket.notifiedAt >= 1000) {
      bucket.notifiedAt = now;
      refuse(session, 'rate_limited', 'Too many messages. Slow down.');
    }
    return false;
  }

  function stats(): HubStats {
    let pairs = 0;
    for (const session of byUser.values()) {
      // Each mutual pair once; a half restored after a wake (partner not back yet) is not a pair.
      if (
        session.partner !== undefined &&
        session.userId < session.partner &&
        byUser.get(session.partner)?.partner === session.userId
      )
        pairs++;
    }
    return { connections: byUser.size, rooms: rooms.size, available: pool.size, pairs };
  }

  /** A frame (text or binary) from `conn`: a sign of life, then the rate limit, then `handle`. */
  function frame(conn: ConnId, handle: (session: Session) => void) {
    const session = byConn.get(conn);
    if (session) {
      identity.signOfLife(session);
      if (!admit(session)) {
        // Dropped by the rate limit.
      } else if (!session.pending) handle(session);
      else if (session.queue.length < MAX_QUEUED_FRAMES) session.queue.push(() => handle(session));
      else refuse(session, 'unavailable', UNAVAILABLE);
    }
    flush();
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
    message: (conn, text) => frame(conn, (session) => handleText(session, text)),
    binary: (conn) =>
      frame(conn, (session) =>
        respondError(
          session,
          'binary_not_supported',
          'Binary frames are not supported',
          'send JSON in text frames',
        ),
      ),
    close(conn) {
      const session = byConn.get(conn);
      if (session) remove(session);
      flush();
    },
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
