/**
 * The connection to an Aleatoria server: one WebSocket, reopened with backoff when it drops, with
 * typed events for every server message and helpers for every client message. Dependency-free:
 * the protocol is imported for its types only, which the bundler erases.
 */
import type { ClientMessage, ServerMessage } from '../core/protocol.ts';
import { createBackoff, type BackoffOptions } from './backoff.ts';
import { diagnoseConnection, type Diagnosis } from './diagnose.ts';
import { createCatchUp } from './catch-up.ts';
import type {
  ChatMessage,
  Conversation,
  HistoryGap,
  HistoryOptions,
  HistoryPageOptions,
} from './history.ts';
import { createRequests } from './requests.ts';
import { randomToken } from './token.ts';

/** The `type` of any message the server sends. */
export type ServerMessageType = ServerMessage['type'];

/** The server message of one `type`, e.g. `ServerMessageOf<'assign_role'>`. */
export type ServerMessageOf<T extends ServerMessageType> = Extract<ServerMessage, { type: T }>;

/**
 * `connecting`: the first attempt is under way. `open`: messages flow. `reconnecting`: the socket
 * dropped or an attempt failed, another is scheduled. `closed`: final, after `close()` or a fatal error.
 */
export type ClientStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What came with a status change. */
export interface StatusDetail {
  /** Close code of the socket that ended (1006 when it never opened). */
  code?: number;
  reason?: string;
  /** True when the client gave up for good: retrying cannot help. */
  fatal?: boolean;
  diagnosis?: Diagnosis;
  /** With `reconnecting`: the delay before the next attempt. */
  retryInMs?: number;
}

/** Inputs of {@link createClient}. */
export interface ClientOptions {
  /** The server's WebSocket endpoint, e.g. `ws://localhost:8085/ws`. */
  url: string;
  userId: string;
  /** Initial room (the server's default, `Lobby`, when absent). */
  room?: string;
  /** The secret that lets a reconnect take this session over; a random one is made when absent. */
  token?: string;
  /** A WebSocket class, for runtimes without a global one or for tests. */
  WebSocket?: typeof WebSocket;
  /** Used to diagnose failed connection attempts; defaults to the global `fetch`. */
  fetch?: typeof fetch;
  reconnect?: BackoffOptions;
  /** Catching up on chat after a reconnect, and the history requests. */
  history?: HistoryOptions;
}

/** Handler of one server message type. */
export type MessageHandler<T extends ServerMessageType> = (message: ServerMessageOf<T>) => void;

/** Handler of status changes. */
export type StatusHandler = (status: ClientStatus, detail: StatusDetail) => void;

/** Handler of messages the SDK could not recover. */
export type HistoryGapHandler = (gap: HistoryGap) => void;

/** A live connection made by {@link createClient}. */
export interface AleatoriaClient {
  readonly userId: string;
  /** The reconnect token sent on every attempt (keep it to take the session over after a reload). */
  readonly token: string;
  readonly status: ClientStatus;
  /**
   * Calls `handler` for every server message of `type`; returns the unsubscribe function.
   * `chat_message` handlers see each message once, in server order per room and per user, the
   * ones missed while disconnected included (see {@link AleatoriaClient.onHistoryGap}).
   * Answers to the history requests below go to their promises only.
   */
  on<T extends ServerMessageType>(type: T, handler: MessageHandler<T>): () => void;
  /** Calls `handler` on every status change; returns the unsubscribe function. */
  onStatus(handler: StatusHandler): () => void;
  /**
   * Calls `handler` when chat messages may have been lost: after a reconnect the server's history
   * did not reach back to the last message delivered (or could not be asked). Called before the
   * messages that follow the gap are delivered; returns the unsubscribe function.
   */
  onHistoryGap(handler: HistoryGapHandler): () => void;
  /** Sends one message; `false` (and nothing sent) when the socket is not open. */
  send(message: ClientMessage): boolean;
  joinRoom(room: string): boolean;
  leaveRoom(room: string): boolean;
  /** Asks for `rooms_list`. */
  getRooms(): boolean;
  sendRoomMessage(room: string, content: string): boolean;
  sendDirectMessage(toUser: string, content: string): boolean;
  /** Enters (`true`) or leaves (`false`) the pool of users available for a random call. */
  setAvailable(available: boolean): boolean;
  /** Asks for a random partner, never `currentPeerId`; answered by `assign_role` or `no_peer_available`. */
  requestRandomPeer(currentPeerId?: string): boolean;
  /** Tells `toUser` the call is over. */
  hangup(toUser: string, reason?: string): boolean;
  /**
   * STUN/TURN servers from the server (`get_ice_servers`), TURN credentials included; rejects when
   * not connected or unanswered within `timeoutMs`.
   */
  getIceServers(timeoutMs?: number): Promise<{ iceServers: RTCIceServer[]; ttl: number }>;
  /**
   * Who is in `room` (the members listed, at most the server's `PRESENCE_LIST_LIMIT`, and how
   * many there are); rejects when not connected or unanswered within `timeoutMs`.
   */
  getRoomMembers(
    room: string,
    timeoutMs?: number,
  ): Promise<{ room: string; members: string[]; count: number }>;
  /**
   * One page of `room`'s history (`get_recent_messages`), newest first, each message as it was
   * delivered. Only for a room this connection is in: otherwise the server answers with
   * `error not_in_room` and the promise rejects on timeout.
   */
  getRecentMessages(room: string, options?: HistoryPageOptions): Promise<ChatMessage[]>;
  /** One page of this user's conversation with `withUser` (`get_direct_messages`), oldest first. */
  getDirectMessages(withUser: string, options?: HistoryPageOptions): Promise<ChatMessage[]>;
  /**
   * Seeds a view: delivers the conversation's last `limit` messages (default 50) to the
   * `chat_message` handlers, oldest first, before any live message of that conversation, and
   * follows it from then on (caught up after each reconnect). When messages of it were delivered
   * already, only newer ones come. May be called before the socket opens; resolves with what it
   * delivered.
   */
  loadHistory(conversation: Conversation, options?: { limit?: number }): Promise<ChatMessage[]>;
  /** Closes the socket for good: no reconnect. */
  close(): void;
}

/** Close codes after which reconnecting would be wrong (DECISIONS.md, identity). */
const FATAL_CLOSE_CODES: ReadonlyMap<number, Diagnosis> = new Map([
  [4009, 'user_id_taken'],
  [4000, 'replaced'],
]);

const OPEN = 1; // WebSocket.OPEN, spelled out so injected classes need no static constants.

/** The URL of a connection attempt: `url?userId=...&room=...&token=...`. */
export function connectUrl(
  url: string,
  userId: string,
  room: string | undefined,
  token: string,
): string {
  const target = new URL(url);
  target.searchParams.set('userId', userId);
  if (room !== undefined) target.searchParams.set('room', room);
  target.searchParams.set('token', token);
  return target.href;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A handler's exception must not stop the others, nor vanish: rethrow it outside the dispatch loop. */
function reportError(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** Calls every subscriber (a copy: one may unsubscribe itself), whatever the others throw. */
function callEach<A extends unknown[]>(subscribers: Iterable<(...args: A) => void>, ...args: A) {
  for (const handler of [...subscribers]) {
    try {
      handler(...args);
    } catch (error) {
      reportError(error);
    }
  }
}

/**
 * Connects to `options.url` at once and keeps the connection up: after a drop it retries with
 * full-jitter backoff and the same token, so the server hands the session (rooms, availability,
 * call) over to the new socket. It stops for good after `close()`, close 4009 (userId taken),
 * close 4000 (replaced by another connection with this token), or when a failed attempt is
 * diagnosed as unfixable (origin not allowed, bad request). After each reconnect it sends
 * `get_rooms` and asks the history for the chat it missed (`history.ts`, `catch-up.ts`).
 */
export function createClient(options: ClientOptions): AleatoriaClient {
  const found = options.WebSocket ?? (globalThis.WebSocket as typeof WebSocket | undefined);
  if (!found) throw new Error('no WebSocket implementation: pass options.WebSocket');
  const WebSocketImpl: typeof WebSocket = found;
  const userId = options.userId;
  const token = options.token ?? randomToken();
  const url = connectUrl(options.url, userId, options.room, token);
  const backoff = createBackoff(options.reconnect);
  const handlers = new Map<string, Set<(message: ServerMessage) => void>>();
  const statusHandlers = new Set<StatusHandler>();
  const gapHandlers = new Set<HistoryGapHandler>();

  let status: ClientStatus = 'connecting';
  let socket: WebSocket | undefined;
  let socketOpen = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  function setStatus(next: ClientStatus, detail: StatusDetail = {}): void {
    status = next;
    callEach(statusHandlers, next, detail);
  }

  const requests = createRequests(send);
  const history = createCatchUp({
    userId,
    requests,
    send,
    deliver,
    reportGap: (gap) => callEach(gapHandlers, gap),
    options: options.history,
  });

  function dropped(): void {
    socketOpen = false;
    history.onClose();
    requests.rejectAll('disconnected');
  }

  function deliver(message: ServerMessage): void {
    const subscribers = handlers.get(message.type);
    if (subscribers) callEach(subscribers, message);
  }

  function dispatch(data: unknown): void {
    if (typeof data !== 'string') return;
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (!isRecord(message) || typeof message.type !== 'string') return;
    // The server is trusted to send what protocol.ts describes; validating here would put valibot
    // in every bundle.
    const known = message as ServerMessage;
    if (requests.settle(known) || history.onFrame(known)) return;
    deliver(known);
  }

  function connect(): void {
    retryTimer = undefined;
    let opened = false;
    const ws = new WebSocketImpl(url);
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      opened = true;
      socketOpen = true;
      backoff.reset();
      // The server's default room (DEFAULT_ROOM, not imported: the SDK takes types only from core).
      history.onOpen(options.room || 'Lobby');
      setStatus('open');
    };
    ws.onmessage = (event) => {
      if (socket === ws) dispatch(event.data);
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = undefined;
      if (opened) dropped();
      void afterClose(event.code, event.reason, opened);
    };
  }

  async function afterClose(code: number, reason: string, opened: boolean): Promise<void> {
    if (stopped) return;
    const detail: StatusDetail = { code };
    if (reason) detail.reason = reason;
    const fatalDiagnosis = FATAL_CLOSE_CODES.get(code);
    if (fatalDiagnosis) {
      stopped = true;
      setStatus('closed', { ...detail, fatal: true, diagnosis: fatalDiagnosis });
      return;
    }
    if (!opened) {
      const result = await diagnoseConnection(url, options.fetch ? { fetch: options.fetch } : {});
      if (stopped) return;
      if (result.diagnosis) detail.diagnosis = result.diagnosis;
      if (result.fatal) {
        stopped = true;
        setStatus('closed', { ...detail, fatal: true });
        return;
      }
    }
    const delay = backoff.next();
    retryTimer = setTimeout(connect, delay);
    setStatus('reconnecting', { ...detail, retryInMs: delay });
  }

  function send(message: ClientMessage): boolean {
    if (!socket || !socketOpen || socket.readyState !== OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  connect();

  return {
    userId,
    token,
    get status() {
      return status;
    },
    on(type, handler) {
      let subscribers = handlers.get(type);
      if (!subscribers) handlers.set(type, (subscribers = new Set()));
      const untyped = handler as (message: ServerMessage) => void;
      subscribers.add(untyped);
      return () => {
        subscribers.delete(untyped);
      };
    },
    onStatus(handler) {
      statusHandlers.add(handler);
      return () => {
        statusHandlers.delete(handler);
      };
    },
    onHistoryGap(handler) {
      gapHandlers.add(handler);
      return () => {
        gapHandlers.delete(handler);
      };
    },
    send,
    joinRoom: (room) => send({ type: 'join_room', room }),
    leaveRoom: (room) => send({ type: 'leave_room', room }),
    getRooms: () => send({ type: 'get_rooms' }),
    sendRoomMessage: (room, content) => send({ type: 'chat_message', room, payload: { content } }),
    sendDirectMessage: (toUser, content) =>
      send({ type: 'chat_message', toUser, payload: { content } }),
    setAvailable: (available) =>
      send({ type: available ? 'user_available_webrtc' : 'user_unavailable_webrtc' }),
    requestRandomPeer: (currentPeerId) =>
      send(
        currentPeerId
          ? { type: 'request_random_peer', payload: { currentPeerId } }
          : { type: 'request_random_peer' },
      ),
    hangup: (toUser, reason) =>
      send(reason ? { type: 'hangup', toUser, payload: { reason } } : { type: 'hangup', toUser }),
    getIceServers: (timeoutMs = 5000) =>
      requests
        .request((messageId) => ({ type: 'get_ice_servers', messageId }), 'ice_servers', {
          timeoutMs,
          consume: false,
        })
        .then((reply) => reply.payload),
    getRoomMembers: (room, timeoutMs = 5000) =>
      requests
        .request((messageId) => ({ type: 'get_room_members', room, messageId }), 'room_members', {
          timeoutMs,
          consume: false,
        })
        .then((reply) => reply.payload),
    getRecentMessages: history.getRecentMessages,
    getDirectMessages: history.getDirectMessages,
    loadHistory: history.loadHistory,
    close() {
      if (stopped && status === 'closed') return;
      stopped = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      retryTimer = undefined;
      const ws = socket;
      socket = undefined;
      if (socketOpen) dropped();
      history.stop();
      ws?.close(1000);
      setStatus('closed', { code: 1000 });
    },
  };
}
