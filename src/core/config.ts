/**
 * Configuration from a plain environment record (`process.env`, `Deno.env.toObject()`, a Worker's
 * `env`), with the defaults of DECISIONS.md. Every value is range-checked; a bad value fails at
 * start-up with a message naming the variable, never later at run time.
 */
import * as v from 'valibot';
import { parseAllowedOrigins, type OriginPolicy } from './origin.ts';

/** `ICE_SERVERS`: the STUN/TURN servers handed to browsers, as `RTCIceServer` objects. */
const IceServers = v.pipe(
  v.array(
    v.strictObject({
      urls: v.union([
        v.pipe(v.string(), v.regex(/^(stun|stuns|turn|turns):/)),
        v.pipe(
          v.array(v.pipe(v.string(), v.regex(/^(stun|stuns|turn|turns):/))),
          v.minLength(1),
          v.maxLength(8),
        ),
      ]),
      username: v.optional(v.pipe(v.string(), v.maxLength(512))),
      credential: v.optional(v.pipe(v.string(), v.maxLength(512))),
    }),
  ),
  v.maxLength(16),
);
export type IceServer = v.InferOutput<typeof IceServers>[number];

export interface Config {
  port: number;
  host: string;
  allowedOrigins: OriginPolicy;
  allowNoOrigin: boolean;
  maxMessageBytes: number;
  maxRoomsPerConnection: number;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  /** Milliseconds of continuous excess after which a flooding connection is closed with 1008. */
  rateLimitCloseAfterMs: number;
  maxConnectionsPerIp: number;
  sendQueueMaxBytes: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  shutdownTimeoutMs: number;
  trustProxy: boolean;
  logLevel: LogLevel;
  /** Handed to the demo page at `GET /config.json` and in every `ice_servers` reply. */
  iceServers: IceServer[];
  /** TURN/STUN for `get_ice_servers` (coturn REST-API credentials). */
  turn: { secret: string | undefined; turnUrls: string[]; stunUrls: string[]; ttlSeconds: number };
  /** Matches made for one requester per minute (bots cycling Next); unanswered requests are free. */
  matchesPerMinute: number;
  /** How long a silent old socket has to show a sign of life before a newcomer without its token replaces it. */
  takeoverProbeMs: number;
  /**
   * How long a call waits for a partner whose socket dropped (no close frame, or the heartbeat) and
   * who holds a token; 0: the partner is hung up at once, as for a clean close.
   */
  callResumeMs: number;
  /** Rooms of at most this many members get `user_status` when someone joins or leaves (0: none). */
  presenceRoomLimit: number;
  /** The most members `room_members` lists (its count is always exact). */
  presenceListLimit: number;
  /** Chat history (`HISTORY`, `HISTORY_LIMIT`, `HISTORY_TTL_HOURS`, `HISTORY_MAX_BYTES`). */
  history: HistoryConfig;
  /** Token auth; off when both are undefined. */
  auth: { secret: string | undefined; jwksUrl: string | undefined };
  /** When set, `GET /metrics` wants `Authorization: Bearer <token>`. */
  metricsToken: string | undefined;
  /** When set, the operator page is served at `/admin`, its figures for `Authorization: Bearer <token>`. */
  adminToken: string | undefined;
  /** One node of many sharing state through Redis (`REDIS_URL`); undefined: one process. */
  cluster: ClusterConfig | undefined;
  /** Cloudflare only: the gateway objects userIds are spread over (`GATEWAY_SHARDS`). */
  gatewayShards: number;
}

export interface ClusterConfig {
  /** `redis://` or `rediss://`, with user, password and database if any. */
  redisUrl: string;
  /** Prefix of every key and channel (`REDIS_PREFIX`), so clusters can share one Redis. */
  prefix: string;
  /** This node's name in Redis (`NODE_ID`); default: random, new at every start. */
  nodeId: string | undefined;
  /** How often a node writes its heartbeat. */
  heartbeatMs: number;
  /** A node whose heartbeat is older than this is dead: its users are swept. */
  deadAfterMs: number;
}

export interface HistoryConfig {
  /** `HISTORY=off` keeps nothing (messages still carry ids). */
  enabled: boolean;
  /** Messages kept per room and per pair. */
  limit: number;
  ttlMs: number;
  /** The in-memory store's arena, in bytes (UTF-8 texts and their headers); oldest evicted first. */
  maxBytes: number;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export type Env = Readonly<Record<string, unknown>>;

/** Every variable {@link parseConfig} reads, for tools that forward them (e.g. to `wrangler dev`). */
export const CONFIG_VARIABLES = [
  'PORT',
  'HOST',
  'ALLOWED_ORIGINS',
  'ALLOW_NO_ORIGIN',
  'MAX_MESSAGE_BYTES',
  'MAX_ROOMS_PER_CONNECTION',
  'RATE_LIMIT_PER_SECOND',
  'RATE_LIMIT_BURST',
  'RATE_LIMIT_CLOSE_AFTER_MS',
  'MAX_CONNECTIONS_PER_IP',
  'SEND_QUEUE_MAX_BYTES',
  'PING_INTERVAL_MS',
  'PONG_TIMEOUT_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'TRUST_PROXY',
  'LOG_LEVEL',
  'ICE_SERVERS',
  'TURN_SECRET',
  'TURN_URLS',
  'TURN_TTL',
  'STUN_URLS',
  'MATCHES_PER_MINUTE',
  'TAKEOVER_PROBE_MS',
  'CALL_RESUME_MS',
  'MATCH_REQUESTS_PER_MINUTE',
  'PRESENCE_ROOM_LIMIT',
  'PRESENCE_LIST_LIMIT',
  'HISTORY',
  'HISTORY_LIMIT',
  'HISTORY_TTL_HOURS',
  'HISTORY_MAX_BYTES',
  'AUTH_JWT_SECRET',
  'AUTH_JWKS_URL',
  'METRICS_TOKEN',
  'ADMIN_TOKEN',
  'REDIS_URL',
  'REDIS_PREFIX',
  'NODE_ID',
  'NODE_HEARTBEAT_MS',
  'NODE_DEAD_AFTER_MS',
  'GATEWAY_SHARDS',
] as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses `env` into a {@link Config}; throws {@link ConfigError} listing every bad variable. */
export function parseConfig(env: Env): Config {
  const problems: string[] = [];
  // A Worker's env also holds bindings (objects): only strings are configuration.
  const raw = (name: (typeof CONFIG_VARIABLES)[number]): string | undefined => {
    const value = env[name];
    if (typeof value !== 'string') return undefined;
    return value.trim() === '' ? undefined : value.trim();
  };
  const int = (
    name: (typeof CONFIG_VARIABLES)[number],
    fallback: number,
    min: number,
    max: number,
  ): number => {
    const value = raw(name);
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      problems.push(
        `${name}=${JSON.stringify(value)}: expected a whole number from ${min} to ${max}`,
      );
      return fallback;
    }
    return Number(value);
  };
  const bool = (name: (typeof CONFIG_VARIABLES)[number], fallback: boolean): boolean => {
    const value = raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (value === 'true' || value === '1' || value === 'yes') return true;
    if (value === 'false' || value === '0' || value === 'no') return false;
    problems.push(`${name}=${JSON.stringify(value)}: expected true or false`);
    return fallback;
  };
  const onOff = (name: (typeof CONFIG_VARIABLES)[number], fallback: boolean): boolean => {
    const value = raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['on', 'true', '1', 'yes'].includes(value)) return true;
    if (['off', 'false', '0', 'no'].includes(value)) return false;
    problems.push(`${name}=${JSON.stringify(value)}: expected on or off`);
    return fallback;
  };

  let allowedOrigins: OriginPolicy = { any: false, entries: [] };
  try {
    allowedOrigins = parseAllowedOrigins(raw('ALLOWED_ORIGINS') ?? 'https://www.aleatoria.chat');
  } catch (error) {
    problems.push(`ALLOWED_ORIGINS: ${(error as Error).message}`);
  }

  const logLevel = (raw('LOG_LEVEL')?.toLowerCase() ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel))
    problems.push(
      `LOG_LEVEL=${JSON.stringify(logLevel)}: expected one of ${LOG_LEVELS.join(', ')}`,
    );

  let iceServers: IceServer[] = [];
  const iceText = raw('ICE_SERVERS');
  if (iceText !== undefined) {
    let parsed: v.SafeParseResult<typeof IceServers> | undefined;
    try {
      parsed = v.safeParse(IceServers, JSON.parse(iceText));
    } catch {
      parsed = undefined;
    }
    if (parsed?.success) iceServers = parsed.output;
    else
      problems.push(
        'ICE_SERVERS: expected a JSON array of {"urls": "stun:…" | "turn:…" | [...], "username"?, "credential"?} (16 at most)',
      );
  }

  const urlList = (name: 'TURN_URLS' | 'STUN_URLS', scheme: 'turn' | 'stun'): string[] => {
    const items = (raw(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    const bad = items.filter(
      (item) => !new RegExp(`^${scheme}s?:`).test(item) || item.length > 512,
    );
    if (bad.length > 0)
      problems.push(
        `${name}: expected comma-separated ${scheme}: or ${scheme}s: URLs, got ${bad.map((item) => JSON.stringify(item)).join(', ')}`,
      );
    return items.slice(0, 8);
  };
  const turnUrls = urlList('TURN_URLS', 'turn');
  const stunUrls = urlList('STUN_URLS', 'stun');
  const turnSecret = raw('TURN_SECRET');
  if (turnSecret !== undefined && turnUrls.length === 0)
    problems.push('TURN_SECRET is set but TURN_URLS is empty');
  if (turnSecret === undefined && turnUrls.length > 0)
    problems.push('TURN_URLS is set but TURN_SECRET is not (coturn use-auth-secret)');

  const authSecret = raw('AUTH_JWT_SECRET');
  const authJwksUrl = raw('AUTH_JWKS_URL');
  if (authSecret !== undefined && authJwksUrl !== undefined)
    problems.push('AUTH_JWT_SECRET and AUTH_JWKS_URL: set one, not both');
  if (authSecret !== undefined && new TextEncoder().encode(authSecret).length < 32) {
    problems.push('AUTH_JWT_SECRET: at least 32 bytes (HS256 keys shorter than the hash are weak)');
  }
  if (authJwksUrl !== undefined && !/^https?:\/\/[^\s]+$/.test(authJwksUrl))
    problems.push('AUTH_JWKS_URL: expected an http(s) URL');

  // Renamed when it began counting matches instead of requests: an old deployment must not run on
  // a silently ignored limit.
  if (raw('MATCH_REQUESTS_PER_MINUTE') !== undefined) {
    problems.push(
      'MATCH_REQUESTS_PER_MINUTE: renamed MATCHES_PER_MINUTE (it counts matches made, not requests)',
    );
  }

  // The operator page shows every room's name and size: a guessable token would hand them out.
  const adminToken = raw('ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 16)
    problems.push('ADMIN_TOKEN: at least 16 characters');

  const redisUrl = raw('REDIS_URL');
  if (redisUrl !== undefined && !/^rediss?:\/\/[^\s]*$/i.test(redisUrl))
    problems.push('REDIS_URL: expected redis://[user:password@]host[:port][/db] or rediss://');
  const prefix = raw('REDIS_PREFIX') ?? 'aleatoria:';
  if (!/^[\x21-\x7e]{1,64}$/.test(prefix))
    problems.push('REDIS_PREFIX: 1-64 printable characters without spaces');
  const nodeId = raw('NODE_ID');
  if (nodeId !== undefined && !/^[\w.-]{1,64}$/.test(nodeId))
    problems.push('NODE_ID: 1-64 letters, digits, _, . or -');
  const heartbeatMs = int('NODE_HEARTBEAT_MS', 2000, 50, 60_000);
  const deadAfterMs = int('NODE_DEAD_AFTER_MS', 15_000, 200, 600_000);
  // A node misses a few beats before it is dead, and sweeps (every 1-2 beats) stay well inside it.
  if (deadAfterMs < heartbeatMs * 5)
    problems.push('NODE_DEAD_AFTER_MS: at least five NODE_HEARTBEAT_MS');

  const config: Config = {
    port: int('PORT', 8085, 0, 65535),
    host: raw('HOST') ?? '0.0.0.0',
    allowedOrigins,
    allowNoOrigin: bool('ALLOW_NO_ORIGIN', false),
    maxMessageBytes: int('MAX_MESSAGE_BYTES', 65536, 256, 16 * 1024 * 1024),
    maxRoomsPerConnection: int('MAX_ROOMS_PER_CONNECTION', 32, 1, 10_000),
    rateLimitPerSecond: int('RATE_LIMIT_PER_SECOND', 50, 1, 1_000_000),
    rateLimitBurst: int('RATE_LIMIT_BURST', 100, 1, 1_000_000),
    rateLimitCloseAfterMs: int('RATE_LIMIT_CLOSE_AFTER_MS', 10_000, 0, 3_600_000),
    maxConnectionsPerIp: int('MAX_CONNECTIONS_PER_IP', 0, 0, 1_000_000),
    sendQueueMaxBytes: int('SEND_QUEUE_MAX_BYTES', 1_048_576, 1024, 1024 * 1024 * 1024),
    pingIntervalMs: int('PING_INTERVAL_MS', 54_000, 10, 3_600_000),
    pongTimeoutMs: int('PONG_TIMEOUT_MS', 60_000, 10, 3_600_000),
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    trustProxy: bool('TRUST_PROXY', false),
    logLevel,
    iceServers,
    turn: {
      secret: turnSecret,
      turnUrls,
      stunUrls,
      ttlSeconds: int('TURN_TTL', 86_400, 60, 7 * 86_400),
    },
    matchesPerMinute: int('MATCHES_PER_MINUTE', 30, 1, 100_000),
    takeoverProbeMs: int('TAKEOVER_PROBE_MS', 2000, 0, 60_000),
    callResumeMs: int('CALL_RESUME_MS', 10_000, 0, 600_000),
    presenceRoomLimit: int('PRESENCE_ROOM_LIMIT', 50, 0, 100_000),
    presenceListLimit: int('PRESENCE_LIST_LIMIT', 100, 1, 10_000),
    history: {
      enabled: onOff('HISTORY', true),
      limit: int('HISTORY_LIMIT', 100, 1, 100_000),
      ttlMs: int('HISTORY_TTL_HOURS', 24, 1, 24 * 365) * 3_600_000,
      // The in-memory store's arena is addressed with int32 positions: 2 GiB at most.
      maxBytes: int('HISTORY_MAX_BYTES', 64 * 1024 * 1024, 1024, 2 * 1024 * 1024 * 1024 - 8),
    },
    auth: { secret: authSecret, jwksUrl: authJwksUrl },
    metricsToken: raw('METRICS_TOKEN'),
    adminToken,
    cluster:
      redisUrl === undefined ? undefined : { redisUrl, prefix, nodeId, heartbeatMs, deadAfterMs },
    gatewayShards: int('GATEWAY_SHARDS', 8, 1, 1024),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
