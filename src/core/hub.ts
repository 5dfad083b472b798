/**
 * The hub: connections by userId, rooms, direct messages, the availability pool, random matching,
 * signaling relay and pair tracking. Pure and synchronous: it is handed the clock, the random
 * source and two outputs (`send`, `close`) and holds connection ids, never sockets, so every
 * runtime adapter drives the same code and tests drive it with a fake clock and an array outbox.
 */
import * as v from 'valibot';
import {
  CLIENT_MESSAGE_SCHEMAS,
  type ClientMessage,
  DEFAULT_ROOM,
  RefusalCode,
  RoomName,
  SYSTEM_USER,
  UserId,
  ReconnectToken,
  type ResponseErrorCode,
  type ServerMessage,
} from './protocol.ts';
import type { Config } from './config.ts';
import { parseJson, MAX_JSON_DEPTH } from './json.ts';
import { createAvailabilityPool } from './pool.ts';
import { createTokenBucket, hasToken, takeToken, type RateLimit, type TokenBucket } from './rate-limit.ts';
import { iceServersFor, type TurnOptions } from './turn.ts';
import { createMetrics, type Metrics } from './metrics.ts';

/** An adapter's handle for one socket; opaque to the hub. */
export type ConnId = string;

/** WebSocket close codes of the protocol (RFC 6455 section 7.4.1, and DECISIONS.md's 4000/4009). */
export const CloseCode = {
  policyViolation: 1008,
  messageTooBig: 1009,
  serviceRestart: 1012,
  slowConsumer: 1013,
  replaced: 4000,
  userIdTaken: 4009,
} as const;

export interface HubDeps {
  now(): number;
  random(): number;
  send(conn: ConnId, text: string): void;
  close(conn: ConnId, code: number, reason: string): void;
  /**
   * Sends the socket a protocol ping, to which a live client answers with a pong reported through
   * `heard`; false when it could not be sent. Absent where the runtime cannot ping (a Durable
   * Object): a probe then waits for a frame or the close only, and a socket that shows neither
   * counts as alive.
   */
  ping?(conn: ConnId): boolean;
  /** Runs `fn` after `ms`; returns a cancel function. Default: `setTimeout`. */
  setTimer?(ms: number, fn: () => void): () => void;
  /**
   * Called once per operation for each session whose durable state changed, so an adapter that
   * must survive eviction (the Durable Object) can store it with the socket.
   */
  persist?(conn: ConnId, state: SessionState): void;
}

/** The hub's limits, as configured (`MAX_ROOMS_PER_CONNECTION`, `RATE_LIMIT_*`). */
export function hubOptionsFrom(config: Config): HubOptions {
  return {
    maxRoomsPerConnection: config.maxRoomsPerConnection,
    rateLimit: { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst },
    rateLimitCloseAfterMs: config.rateLimitCloseAfterMs,
    matchesPerMinute: config.matchesPerMinute,
    takeoverProbeMs: config.takeoverProbeMs,
    turn: { ...config.turn, staticServers: config.iceServers },
  };
}

export interface HubOptions {
  maxRoomsPerConnection: number;
  rateLimit: RateLimit;
  /** Continuous excess after which a flooding connection is closed with 1008; 0 never closes. */
  rateLimitCloseAfterMs: number;
  /**
   * Matches made for one requester per minute, burst included; past it `request_random_peer` gets
   * `error rate_limited`. Requests answered `no_peer_available` cost nothing.
   */
  matchesPerMinute?: number;
  /**
   * How long an old socket has to show a sign of life before a newcomer without its token replaces
   * it; 0 refuses such a newcomer at once, without asking.
   */
  takeoverProbeMs?: number;
  /** What `get_ice_servers` hands out; absent: no servers. */
  turn?: TurnOptions;
}

/** What the hub remembers of one user: small, and serializable as it is. */
export const SessionState = v.object({
  userId: UserId,
  token: v.optional(ReconnectToken),
  rooms: v.pipe(v.array(RoomName), v.maxLength(10_000)),
  available: v.boolean(),
  partner: v.optional(UserId),
});
export type SessionState = v.InferOutput<typeof SessionState>;

export interface OpenRequest {
  userId: string;
  room?: string;
  token?: string;
}

export type OpenResult =
  | { accepted: true; replaced?: ConnId }
  | { accepted: false; code: 'user_id_taken' };

export interface HubStats {
  connections: number;
  rooms: number;
  available: number;
  pairs: number;
}

export interface Hub {
  /**
   * Call before upgrading a socket for `request`. Returns undefined when `open` can decide at once;
   * otherwise `userId` is held by a session that `request` may not take over (no matching token),
   * and the promise settles once that session's socket has shown a sign of life (`open` will
   * refuse), has closed, or stayed silent for `takeoverProbeMs` (it is then closed and its session
   * ended, so the first `open` for `userId` gets a fresh one and the others are refused). Never
   * rejects. Newcomers racing for one userId share one probe.
   */
  prepare(request: OpenRequest): Promise<void> | undefined;
  /** Registers a freshly upgraded socket. A refused one has already been sent `error` and closed. */
  open(conn: ConnId, request: OpenRequest): OpenResult;
  /** The socket answered a ping (any frame counts too, through `message`/`binary`). */
  heard(conn: ConnId): void;
  /** Handles one text frame. */
  message(conn: ConnId, text: string): void;
  /** Handles one binary frame (not part of the protocol). */
  binary(conn: ConnId): void;
  /** The socket is gone; a connection that was replaced or never accepted is ignored. */
  close(conn: ConnId): void;
  /** Re-registers a session after the adapter lost its memory (Durable Object wake); sends nothing. */
  restore(conn: ConnId, state: unknown): boolean;
  state(conn: ConnId): SessionState | undefined;
  stats(): HubStats;
  /** Counters of this hub, for `GET /metrics`; adapters add the closes they make themselves. */
  readonly metrics: Metrics;
  /** The Prometheus exposition of this hub's metrics and gauges. */
  renderMetrics(): string;
}

interface Session {
  conn: ConnId;
  readonly userId: string;
  readonly token: string | undefined;
  readonly rooms: Set<string>;
  partner: string | undefined;
  bucket: TokenBucket;
  /** Created on the first `request_random_peer`. */
  matchBucket: TokenBucket | undefined;
  /** When the user last entered the pool (ms), for the time-to-match histogram. */
  availableSince: number;
}

/** An old session's socket being asked for a sign of life on behalf of newcomers without its token. */
interface Probe {
  readonly session: Session;
  readonly settled: Promise<void>;
  readonly resolve: () => void;
  cancelTimer: () => void;
}

const INCOMING_TRUE = '"incoming":true}';
const INCOMING_FALSE = '"incoming":false}';
const NO_PEER_MESSAGE = 'No peer available at the moment. Please try again later.';
const MAX_DETAILS_LENGTH = 200;
const PARSE_CONFIG = { abortEarly: true } as const;

export function createHub(deps: HubDeps, options: HubOptions): Hub {
  const sessions = new Map<string, Session>(); // by userId
  const byConn = new Map<ConnId, Session>();
  const rooms = new Map<string, Set<Session>>();
  const pool = createAvailabilityPool();
  const dirty = new Set<Session>();
  // Sessions whose durable state changed in this operation, for `persist`; nothing to track without it.
  const touch: (session: Session) => void = deps.persist ? (session) => void dirty.add(session) : () => {};
  let errorSeq = 0;
  const matchLimit: RateLimit | undefined =
    options.matchesPerMinute === undefined ? undefined : { perSecond: options.matchesPerMinute / 60, burst: options.matchesPerMinute };
  const probes = new Map<string, Probe>(); // by userId
  const takeoverProbeMs = options.takeoverProbeMs ?? 0;
  const setTimer =
    deps.setTimer ??
    ((ms: number, fn: () => void) => {
      const timer = setTimeout(fn, ms);
      return () => clearTimeout(timer);
    });

  const metrics = createMetrics();
  // Every message to one recipient goes out through here (room broadcasts count themselves once).
  // Messages are built with `type` first, so the type is read off the text without parsing it.
  const send = (conn: ConnId, text: string) => {
    metrics.inc('aleatoria_messages_out_total', text.slice(9, text.indexOf('"', 9)));
    deps.send(conn, text);
  };
  // Under load many messages share a millisecond: format each one once.
  let stampedAt = NaN;
  let stamp = '';
  const timestamp = () => {
    const now = deps.now();
    if (now !== stampedAt) {
      stampedAt = now;
      stamp = new Date(now).toISOString();
    }
    return stamp;
  };
  const encode = (message: ServerMessage) => JSON.stringify(message);

  function stateOf(session: Session): SessionState {
    return {
      userId: session.userId,
      ...(session.token === undefined ? {} : { token: session.token }),
      rooms: [...session.rooms],
      available: pool.has(session.userId),
      ...(session.partner === undefined ? {} : { partner: session.partner }),
    };
  }

  function flush() {
    if (dirty.size === 0) return;
    if (deps.persist) for (const session of dirty) if (byConn.get(session.conn) === session) deps.persist(session.conn, stateOf(session));
    dirty.clear();
  }

  function respondError(conn: ConnId, userId: string, code: ResponseErrorCode, error: string, details: string) {
    errorSeq = (errorSeq + 1) % Number.MAX_SAFE_INTEGER;
    metrics.inc('aleatoria_errors_total', code);
    send(conn, encode({
      type: 'error_response',
      toUser: userId,
      messageId: `err-${deps.now().toString(36)}-${errorSeq.toString(36)}`,
      payload: { error, details: details.slice(0, MAX_DETAILS_LENGTH), code },
      createTime: timestamp(),
    }));
  }

  function refuse(conn: ConnId, userId: string, code: RefusalCode, error: string) {
    metrics.inc('aleatoria_errors_total', code);
    send(conn, encode({ type: 'error', fromUser: SYSTEM_USER, toUser: userId, payload: { error, code }, createTime: timestamp() }));
  }

  function joinRoom(session: Session, room: string) {
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(session);
    session.rooms.add(room);
    touch(session);
  }

  function leaveRoom(session: Session, room: string) {
    const members = rooms.get(room);
    members?.delete(session);
    if (members?.size === 0) rooms.delete(room);
    session.rooms.delete(room);
    touch(session);
  }

  /** Ends `session`'s pair; the partner is told with a server `hangup` when `reason` is given. */
  function unpair(session: Session, reason?: string) {
    const partner = session.partner === undefined ? undefined : sessions.get(session.partner);
    session.partner = undefined;
    touch(session);
    if (!partner || partner.partner !== session.userId) return;
    partner.partner = undefined;
    touch(partner);
    if (reason !== undefined) {
      send(partner.conn, encode({
        type: 'hangup',
        fromUser: session.userId,
        toUser: partner.userId,
        payload: { reason },
        createTime: timestamp(),
      }));
    }
  }

  function setAvailable(session: Session, available: boolean) {
    if (available && !pool.has(session.userId)) session.availableSince = deps.now();
    if (available) pool.add(session.userId);
    else pool.delete(session.userId);
    touch(session);
  }

  function remove(session: Session) {
    if (probes.size > 0) settleProbe(session, 'gone');
    for (const room of session.rooms) leaveRoom(session, room);
    setAvailable(session, false);
    unpair(session, 'peer_disconnected');
    sessions.delete(session.userId);
    byConn.delete(session.conn);
    dirty.delete(session);
  }

  /**
   * Ends the probe of `session`'s socket, if one runs. `silent`: the socket gave no sign of life in
   * time, so it is closed and its session ended as on a disconnect (the partner is told); nothing
   * of it carries over to whoever opens next.
   */
  function settleProbe(session: Session, outcome: 'alive' | 'silent' | 'gone' | 'unknown') {
    const probe = probes.get(session.userId);
    if (probe?.session !== session) return;
    probes.delete(session.userId);
    probe.cancelTimer();
    metrics.inc('aleatoria_takeover_probes_total', outcome);
    if (outcome === 'silent' && byConn.get(session.conn) === session) {
      refuse(session.conn, session.userId, 'replaced', 'This session was replaced by a new connection.');
      metrics.inc('aleatoria_closes_total', 'replaced');
      deps.close(session.conn, CloseCode.replaced, 'silent; replaced by a new connection');
      remove(session);
      flush();
    }
    probe.resolve();
  }

  /** A frame or a pong from `session`'s socket: if it is being probed, it is alive. */
  function signOfLife(session: Session) {
    if (probes.size > 0) settleProbe(session, 'alive');
  }

  function startProbe(session: Session): Promise<void> {
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    const probe: Probe = { session, settled, resolve, cancelTimer: () => {} };
    probes.set(session.userId, probe);
    // Where the runtime could not ask, silence proves nothing: the socket counts as alive ('unknown').
    const asked = deps.ping?.(session.conn) === true;
    probe.cancelTimer = setTimer(takeoverProbeMs, () => settleProbe(session, asked ? 'silent' : 'unknown'));
    return settled;
  }

  /** Matches `session` with a random available user; false when nobody was available. */
  function requestRandomPeer(session: Session, currentPeerId: string | undefined, messageId: string | undefined): boolean {
    const chosen = pool.pick(deps.random, [session.userId, currentPeerId || undefined]);
    const partner = chosen === undefined ? undefined : sessions.get(chosen);
    if (!partner) {
      send(session.conn, encode({
        type: 'no_peer_available',
        fromUser: SYSTEM_USER,
        toUser: session.userId,
        payload: { message: NO_PEER_MESSAGE },
        messageId,
        createTime: timestamp(),
      }));
      return false;
    }
    setAvailable(session, false);
    setAvailable(partner, false);
    // A user is in one pair at most: whoever either side was paired with learns the call is over.
    if (session.partner !== partner.userId) {
      unpair(session, 'peer_left');
      unpair(partner, 'peer_left');
    }
    session.partner = partner.userId;
    partner.partner = session.userId;
    metrics.inc('aleatoria_matches_total');
    metrics.observeMatch(Math.max(0, deps.now() - partner.availableSince) / 1000);
    const createTime = timestamp();
    send(session.conn, encode({
      type: 'assign_role',
      fromUser: SYSTEM_USER,
      toUser: session.userId,
      payload: { role: 'impolite', peerId: partner.userId },
      messageId,
      createTime,
    }));
    send(partner.conn, encode({
      type: 'assign_role',
      fromUser: SYSTEM_USER,
      toUser: partner.userId,
      payload: { role: 'polite', peerId: session.userId },
      createTime,
    }));
    return true;
  }

  function dispatch(session: Session, msg: ClientMessage) {
    const { conn, userId } = session;
    const messageId = msg.messageId ?? undefined;
    switch (msg.type) {
      case 'chat_message': {
        const createTime = timestamp();
        if (msg.room != null) {
          const members = rooms.get(msg.room);
          if (!session.rooms.has(msg.room) || !members) {
            refuse(conn, userId, 'not_in_room', 'You are not in that room. Join the room first.');
            return;
          }
          // Serialized once for every member, the sender included.
          const text = encode({ type: 'chat_message', fromUser: userId, room: msg.room, payload: msg.payload, messageId, createTime });
          metrics.inc('aleatoria_messages_out_total', 'chat_message', members.size);
          for (const member of members) deps.send(member.conn, text);
          return;
        }
        const recipient = sessions.get(msg.toUser!);
        if (!recipient) {
          metrics.inc('aleatoria_relays_to_unknown_total');
          refuse(conn, userId, 'user_not_found', 'That user is not connected.');
          return;
        }
        // Serialized once: the sender's copy differs only in `incoming`, the last field.
        const text = encode({ type: 'chat_message', fromUser: userId, toUser: recipient.userId, payload: msg.payload, messageId, createTime, incoming: true });
        send(recipient.conn, text);
        send(conn, `${text.slice(0, -INCOMING_TRUE.length)}${INCOMING_FALSE}`);
        return;
      }
      case 'join_room': {
        if (!session.rooms.has(msg.room)) {
          if (session.rooms.size >= options.maxRoomsPerConnection) {
            refuse(conn, userId, 'too_many_rooms', `You are already in ${options.maxRoomsPerConnection} rooms. Leave one first.`);
            return;
          }
          joinRoom(session, msg.room);
        }
        send(conn, encode({
          type: 'room_joined',
          fromUser: SYSTEM_USER,
          toUser: userId,
          room: msg.room,
          payload: { room: msg.room, action: 'joined' },
          messageId,
          createTime: timestamp(),
        }));
        return;
      }
      case 'leave_room': {
        // Idempotent, as join_room is: the spec answers room_left, and a UI waits for it.
        if (session.rooms.has(msg.room)) leaveRoom(session, msg.room);
        send(conn, encode({
          type: 'room_left',
          fromUser: SYSTEM_USER,
          toUser: userId,
          room: msg.room,
          payload: { room: msg.room, action: 'left' },
          messageId,
          createTime: timestamp(),
        }));
        return;
      }
      case 'get_rooms':
        send(conn, encode({
          type: 'rooms_list',
          fromUser: SYSTEM_USER,
          toUser: userId,
          payload: { rooms: [...session.rooms] },
          messageId,
          createTime: timestamp(),
        }));
        return;
      case 'user_available_webrtc':
        setAvailable(session, true);
        return;
      case 'user_unavailable_webrtc':
        setAvailable(session, false);
        return;
      case 'request_random_peer': {
        // Only matches made cost a token: a client re-asking until someone arrives is never refused.
        if (matchLimit && session.matchBucket && !hasToken(session.matchBucket, matchLimit, deps.now())) {
          refuse(conn, userId, 'rate_limited', 'Too many new strangers in a minute. Wait a moment.');
          return;
        }
        if (requestRandomPeer(session, msg.payload?.currentPeerId ?? undefined, messageId) && matchLimit) {
          session.matchBucket ??= createTokenBucket(matchLimit, deps.now());
          takeToken(session.matchBucket, matchLimit, deps.now());
        }
        return;
      }
      case 'get_ice_servers': {
        const turn = options.turn ?? { secret: undefined, turnUrls: [], stunUrls: [], ttlSeconds: 0, staticServers: [] };
        void iceServersFor(turn, userId, deps.now()).then((reply) => {
          // Web Crypto is asynchronous: the user may have gone (or reconnected) meanwhile.
          if (sessions.get(userId) !== session) return;
          send(session.conn, encode({ type: 'ice_servers', fromUser: SYSTEM_USER, toUser: userId, payload: reply, messageId, createTime: timestamp() }));
        });
        return;
      }
      case 'webrtc_offer':
      case 'webrtc_answer':
      case 'webrtc_candidate':
      case 'hangup': {
        const recipient = sessions.get(msg.toUser);
        if (!recipient) {
          metrics.inc('aleatoria_relays_to_unknown_total');
          refuse(conn, userId, 'user_not_found', 'That user is not connected.');
          return;
        }
        if (msg.type === 'hangup' && session.partner === recipient.userId) unpair(session);
        send(recipient.conn, encode({
          type: msg.type,
          fromUser: userId,
          toUser: recipient.userId,
          // Verbatim: `null` (end of candidates, an empty hangup) stays null; an absent payload stays absent.
          payload: msg.payload,
          messageId,
          createTime: timestamp(),
        } as ServerMessage));
        return;
      }
      default:
        msg satisfies never;
    }
  }

  function describeIssue(issue: v.BaseIssue<unknown>): string {
    const path = v.getDotPath(issue) ?? 'message';
    // Valibot's messages end in "but received <the input>": never echo client input back.
    return `${path}: ${issue.message.replace(/ but received[\s\S]*$/, '')}`;
  }

  function handleText(session: Session, text: string) {
    const { conn, userId } = session;
    const parsed = parseJson(text);
    if (!parsed.ok) {
      metrics.inc('aleatoria_messages_in_total', 'invalid');
      const details = parsed.reason === 'depth' ? `JSON nested deeper than ${MAX_JSON_DEPTH} levels` : 'not valid JSON';
      respondError(conn, userId, 'invalid_json', 'Invalid message structure', details);
      return;
    }
    const value = parsed.value;
    const type = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { type?: unknown }).type : undefined;
    if (typeof type !== 'string') {
      metrics.inc('aleatoria_messages_in_total', 'invalid');
      respondError(conn, userId, 'invalid_message', 'Invalid message structure', 'type: expected a string naming the message type');
      return;
    }
    const schema = CLIENT_MESSAGE_SCHEMAS.get(type);
    if (!schema) {
      metrics.inc('aleatoria_messages_in_total', 'invalid');
      respondError(conn, userId, 'unknown_type', 'Unknown message type', 'type: not a client message type');
      return;
    }
    const result = v.safeParse(schema, value, PARSE_CONFIG);
    if (!result.success) {
      metrics.inc('aleatoria_messages_in_total', 'invalid');
      respondError(conn, userId, 'invalid_message', 'Invalid message structure', describeIssue(result.issues[0]));
      return;
    }
    metrics.inc('aleatoria_messages_in_total', result.output.type);
    dispatch(session, result.output);
  }

  /** Applies the per-connection token bucket; false means the frame is dropped. */
  function admit(session: Session): boolean {
    const now = deps.now();
    if (takeToken(session.bucket, options.rateLimit, now)) return true;
    const { bucket } = session;
    if (options.rateLimitCloseAfterMs > 0 && now - bucket.limitedSince >= options.rateLimitCloseAfterMs) {
      metrics.inc('aleatoria_closes_total', 'rate_limited');
      deps.close(session.conn, CloseCode.policyViolation, 'rate limit exceeded');
      remove(session);
      return false;
    }
    // One error per second at most: answering every dropped frame would amplify the flood.
    if (now - bucket.notifiedAt >= 1000) {
      bucket.notifiedAt = now;
      refuse(session.conn, session.userId, 'rate_limited', 'Too many messages. Slow down.');
    }
    return false;
  }

  function register(conn: ConnId, state: SessionState): Session {
    const session: Session = {
      conn,
      userId: state.userId,
      token: state.token,
      rooms: new Set(),
      partner: state.partner,
      bucket: createTokenBucket(options.rateLimit, deps.now()),
      matchBucket: undefined,
      availableSince: deps.now(),
    };
    sessions.set(session.userId, session);
    byConn.set(conn, session);
    for (const room of state.rooms) joinRoom(session, room);
    if (state.available) pool.add(session.userId);
    return session;
  }

  function stats(): HubStats {
    let pairs = 0;
    for (const session of sessions.values()) {
      // Each mutual pair once; a half restored after a wake (partner not back yet) is not a pair.
      if (session.partner !== undefined && session.userId < session.partner && sessions.get(session.partner)?.partner === session.userId) pairs++;
    }
    return { connections: sessions.size, rooms: rooms.size, available: pool.size, pairs };
  }

  return {
    prepare(request) {
      const existing = sessions.get(request.userId);
      if (!existing || takeoverProbeMs === 0 || (existing.token !== undefined && existing.token === request.token)) return undefined;
      const probe = probes.get(request.userId);
      return probe?.session === existing ? probe.settled : startProbe(existing);
    },
    heard(conn) {
      const session = probes.size > 0 ? byConn.get(conn) : undefined;
      if (session) signOfLife(session);
    },
    open(conn, request) {
      const room = request.room ?? DEFAULT_ROOM;
      const existing = sessions.get(request.userId);
      let result: OpenResult;
      if (!existing) {
        touch(register(conn, { userId: request.userId, token: request.token, rooms: [room], available: false }));
        result = { accepted: true };
      } else if (existing.token !== undefined && existing.token === request.token) {
        // Takeover: the same client reconnecting before its old socket timed out keeps its
        // rooms, availability and call; the old socket is told why it is being dropped.
        const replaced = existing.conn;
        refuse(replaced, existing.userId, 'replaced', 'This session was taken over by a new connection.');
        metrics.inc('aleatoria_closes_total', 'replaced');
        deps.close(replaced, CloseCode.replaced, 'replaced by a new connection');
        byConn.delete(replaced);
        existing.conn = conn;
        byConn.set(conn, existing);
        if (!existing.rooms.has(room) && existing.rooms.size < options.maxRoomsPerConnection) joinRoom(existing, room);
        touch(existing);
        result = { accepted: true, replaced };
      } else {
        refuse(conn, request.userId, 'user_id_taken', 'That userId is already connected.');
        metrics.inc('aleatoria_closes_total', 'user_id_taken');
        deps.close(conn, CloseCode.userIdTaken, 'userId already connected');
        result = { accepted: false, code: 'user_id_taken' };
      }
      flush();
      return result;
    },
    message(conn, text) {
      const session = byConn.get(conn);
      if (session) signOfLife(session);
      if (!session || !admit(session)) return flush();
      handleText(session, text);
      flush();
    },
    binary(conn) {
      const session = byConn.get(conn);
      if (session) signOfLife(session);
      if (!session || !admit(session)) return flush();
      respondError(conn, session.userId, 'binary_not_supported', 'Binary frames are not supported', 'send JSON in text frames');
      flush();
    },
    close(conn) {
      const session = byConn.get(conn);
      if (session) remove(session);
      flush();
    },
    restore(conn, state) {
      const parsed = v.safeParse(SessionState, state);
      if (!parsed.success || sessions.has(parsed.output.userId)) return false;
      // The state came from storage: nothing to write back until it changes.
      dirty.delete(register(conn, parsed.output));
      return true;
    },
    state(conn) {
      const session = byConn.get(conn);
      return session && stateOf(session);
    },
    metrics,
    renderMetrics() {
      const now = stats();
      return metrics.render({
        aleatoria_connections: now.connections,
        aleatoria_rooms: now.rooms,
        aleatoria_pool_size: now.available,
        aleatoria_pairs: now.pairs,
      });
    },
    stats,

  };
}
