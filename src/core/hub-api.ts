/**
 * What the hub is given and what it offers: its dependencies (clock, random, outputs, timers,
 * persistence), its limits, the seams where its state may live, and its interface to adapters.
 */
import type { Config, HistoryConfig } from './config.ts';
import type { HistoryStore } from './history.ts';
import type { OpenRequest, OpenResult } from './identity.ts';
import type { Metrics, SharedGaugeName } from './metrics.ts';
import type { RateLimit } from './rate-limit.ts';
import type {
  EndedCalls,
  HubHost,
  MatchPool,
  RoomRegistry,
  UserClaims,
  UserDirectory,
} from './seams.ts';
import type { ConnId, SessionState } from './session.ts';
import type { TurnOptions } from './turn.ts';

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

/** Where state lives; each defaults to this process's memory (`local-state.ts`). */
export interface HubSeams {
  users?(local: UserDirectory): UserDirectory;
  rooms?(local: RoomRegistry): RoomRegistry;
  pool?(local: MatchPool): MatchPool;
  /** Where chat history is kept when `HISTORY` is on; default: this process's memory. */
  history?(config: HistoryConfig): HistoryStore;
  /**
   * Who holds userIds beyond this process, given what the hub offers (`HubHost`); absent: this
   * process alone.
   */
  claims?(host: HubHost): UserClaims;
  /**
   * Handed what the hub offers other processes, where they reach its users without claims (a
   * sharded deployment whose gateway is fixed by the userId).
   */
  host?(host: HubHost): void;
  /** Where calls that ended while their user was away are kept; default: this process's memory. */
  endedCalls?(): EndedCalls;
  /** The figures of `GET /stats` for every process sharing the state; absent: this hub's. */
  stats?(): Promise<PublicStats>;
  /** Gauges of where the state lives, added to `GET /metrics` (`aleatoria_cluster_nodes`...). */
  gauges?(): Partial<Record<SharedGaugeName, number>>;
}

/** The hub's limits, as configured (`MAX_ROOMS_PER_CONNECTION`, `RATE_LIMIT_*`...). */
export function hubOptionsFrom(config: Config): HubOptions {
  return {
    maxRoomsPerConnection: config.maxRoomsPerConnection,
    rateLimit: { perSecond: config.rateLimitPerSecond, burst: config.rateLimitBurst },
    rateLimitCloseAfterMs: config.rateLimitCloseAfterMs,
    matchesPerMinute: config.matchesPerMinute,
    takeoverProbeMs: config.takeoverProbeMs,
    callResumeMs: config.callResumeMs,
    presenceRoomLimit: config.presenceRoomLimit,
    presenceListLimit: config.presenceListLimit,
    history: config.history,
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
  /**
   * How long a call waits for a user whose socket ended abnormally and who holds a token
   * (`resume.ts`); absent or 0: its partner is hung up at once.
   */
  callResumeMs?: number;
  /** What `get_ice_servers` hands out; absent: no servers. */
  turn?: TurnOptions;
  /** Rooms of at most this many members get `user_status` on joins and leaves; absent or 0: none. */
  presenceRoomLimit?: number;
  /** The most members `room_members` lists; absent: 100. */
  presenceListLimit?: number;
  /** Chat history; absent: off (messages still carry ids). */
  history?: HistoryConfig;
}

/** What `GET /stats` tells anyone: users online, rooms in use, users available for a match. */
export type PublicStats = Pick<HubStats, 'connections' | 'rooms' | 'available'>;

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
  /** Whether `open` would accept `request` now (after `prepare`): a runtime may accept sockets it keeps differently. */
  accepts(request: OpenRequest): boolean;
  /** Registers a freshly upgraded socket. A refused one has already been sent `error` and closed. */
  open(conn: ConnId, request: OpenRequest): OpenResult;
  /** The socket answered a ping (any frame counts too, through `message`/`binary`). */
  heard(conn: ConnId): void;
  /** Handles one text frame. */
  message(conn: ConnId, text: string): void;
  /** Handles one binary frame (not part of the protocol). */
  binary(conn: ConnId): void;
  /**
   * The socket is gone; a connection that was replaced or never accepted is ignored. `abnormal`:
   * it ended without a close frame or was dropped by the heartbeat (a network blip), so a call
   * may wait for its user to come back (`callResumeMs`).
   */
  close(conn: ConnId, abnormal?: boolean): void;
  /** Sessions whose call waits for their user, with no socket (`callResumeMs`). */
  readonly waiting: number;
  /** Ends every such wait now, as the end of its window would: partners get their hangup. */
  endWaits(): void;
  /** Re-registers a session after the adapter lost its memory (Durable Object wake); sends nothing. */
  restore(conn: ConnId, state: unknown): boolean;
  state(conn: ConnId): SessionState | undefined;
  stats(): HubStats;
  /** Counters of this hub, for `GET /metrics`; adapters add the closes they make themselves. */
  readonly metrics: Metrics;
  /** The Prometheus exposition of this hub's metrics and gauges. */
  renderMetrics(): string;
}
