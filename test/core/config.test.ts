import { describe, it, expect } from 'vitest';
import { ConfigError, parseConfig, type Config } from '../../src/core/config.ts';
import { parseAllowedOrigins } from '../../src/core/origin.ts';

/** Runs parseConfig expecting a ConfigError, and returns it. */
function configError(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`parseConfig accepted ${JSON.stringify(env)}`);
}

describe('parseConfig defaults', () => {
  it("equal DECISIONS.md's table for an empty environment", () => {
    const config = parseConfig({});
    expect(config).toMatchObject<Partial<Config>>({
      port: 8085,
      host: '0.0.0.0',
      allowNoOrigin: false,
      maxMessageBytes: 65536,
      maxRoomsPerConnection: 32,
      rateLimitPerSecond: 50,
      rateLimitBurst: 100,
      rateLimitCloseAfterMs: 10_000,
      maxConnectionsPerIp: 0,
      sendQueueMaxBytes: 1_048_576,
      pingIntervalMs: 54_000,
      pongTimeoutMs: 60_000,
      shutdownTimeoutMs: 10_000,
      matchesPerMinute: 30,
      takeoverProbeMs: 2000,
      presenceRoomLimit: 50,
      presenceListLimit: 100,
      history: { enabled: true, limit: 100, ttlMs: 24 * 3_600_000, maxBytes: 64 * 1024 * 1024 },
    });
    expect(config.allowedOrigins).toStrictEqual({
      any: false,
      entries: [{ scheme: 'https:', host: 'www.aleatoria.chat', port: '443', wildcard: false }],
    });
  });

  it('treats empty and blank values as unset', () => {
    const config = parseConfig({ PORT: '', HOST: '  ', ALLOWED_ORIGINS: '', ALLOW_NO_ORIGIN: ' ' });
    expect(config.port).toBe(8085);
    expect(config.host).toBe('0.0.0.0');
    expect(config.allowNoOrigin).toBe(false);
    expect(config.allowedOrigins).toStrictEqual(parseAllowedOrigins('https://www.aleatoria.chat'));
  });
});

describe('parseConfig overrides', () => {
  it('parses every variable it is given', () => {
    const config = parseConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      ALLOWED_ORIGINS: 'https://a.example.com,http://localhost:3000',
      ALLOW_NO_ORIGIN: 'true',
      MAX_MESSAGE_BYTES: '1024',
      MAX_ROOMS_PER_CONNECTION: '5',
      RATE_LIMIT_PER_SECOND: '7',
      RATE_LIMIT_BURST: '9',
      MAX_CONNECTIONS_PER_IP: '3',
      SEND_QUEUE_MAX_BYTES: '2048',
      PING_INTERVAL_MS: '1000',
      PONG_TIMEOUT_MS: '2000',
      SHUTDOWN_TIMEOUT_MS: '500',
      MATCHES_PER_MINUTE: '4',
      TAKEOVER_PROBE_MS: '750',
      PRESENCE_ROOM_LIMIT: '0',
      PRESENCE_LIST_LIMIT: '7',
      HISTORY: 'off',
      HISTORY_LIMIT: '20',
      HISTORY_TTL_HOURS: '2',
      HISTORY_MAX_BYTES: '4096',
    });
    expect(config).toMatchObject<Partial<Config>>({
      port: 9000,
      host: '127.0.0.1',
      allowNoOrigin: true,
      maxMessageBytes: 1024,
      maxRoomsPerConnection: 5,
      rateLimitPerSecond: 7,
      rateLimitBurst: 9,
      maxConnectionsPerIp: 3,
      sendQueueMaxBytes: 2048,
      pingIntervalMs: 1000,
      pongTimeoutMs: 2000,
      shutdownTimeoutMs: 500,
      matchesPerMinute: 4,
      takeoverProbeMs: 750,
      presenceRoomLimit: 0,
      presenceListLimit: 7,
      history: { enabled: false, limit: 20, ttlMs: 2 * 3_600_000, maxBytes: 4096 },
    });
    expect(config.allowedOrigins).toStrictEqual(
      parseAllowedOrigins('https://a.example.com,http://localhost:3000'),
    );
  });

  it('accepts ALLOWED_ORIGINS=* as allow-any', () => {
    expect(parseConfig({ ALLOWED_ORIGINS: '*' }).allowedOrigins).toStrictEqual({
      any: true,
      entries: [],
    });
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('reads ALLOW_NO_ORIGIN=%s as %s', (value, expected) => {
    expect(parseConfig({ ALLOW_NO_ORIGIN: value }).allowNoOrigin).toBe(expected);
  });

  it('trims surrounding whitespace from numbers', () => {
    expect(parseConfig({ PORT: ' 8086 ' }).port).toBe(8086);
  });
});

describe('parseConfig refusals', () => {
  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['PORT', '1e3'],
    ['ALLOW_NO_ORIGIN', 'maybe'],
    ['ALLOWED_ORIGINS', 'not-a-url'],
    ['ALLOWED_ORIGINS', 'https://ok.example.com,https://x.com/path'],
    ['MAX_MESSAGE_BYTES', '0'],
    ['MAX_ROOMS_PER_CONNECTION', '0'],
    ['RATE_LIMIT_PER_SECOND', 'fast'],
    ['LOG_LEVEL', 'chatty'],
    ['MATCHES_PER_MINUTE', '0'],
    ['TAKEOVER_PROBE_MS', '60001'],
  ])('throws ConfigError naming %s for %j', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.message).toContain(name);
    expect(error.problems).toHaveLength(1);
  });

  it('reads HISTORY as on or off, and refuses anything else', () => {
    expect(parseConfig({ HISTORY: 'ON' }).history.enabled).toBe(true);
    expect(parseConfig({ HISTORY: 'false' }).history.enabled).toBe(false);
    const error = configError({ HISTORY: 'maybe', HISTORY_LIMIT: '0' });
    expect(error.problems).toHaveLength(2);
    expect(error.message).toContain('HISTORY="maybe": expected on or off');
    expect(error.message).toContain('HISTORY_LIMIT');
  });

  it('fails start-up on the old MATCH_REQUESTS_PER_MINUTE, naming MATCHES_PER_MINUTE', () => {
    const error = configError({ MATCH_REQUESTS_PER_MINUTE: '30' });
    expect(error.problems).toHaveLength(1);
    expect(error.message).toContain('MATCH_REQUESTS_PER_MINUTE');
    expect(error.message).toContain('MATCHES_PER_MINUTE');
  });

  it('names every bad variable in one error', () => {
    const error = configError({
      PORT: 'abc',
      ALLOW_NO_ORIGIN: 'maybe',
      ALLOWED_ORIGINS: 'not-a-url',
      PING_INTERVAL_MS: 'soon',
    });
    for (const name of ['PORT', 'ALLOW_NO_ORIGIN', 'ALLOWED_ORIGINS', 'PING_INTERVAL_MS'])
      expect(error.message).toContain(name);
    expect(error.problems).toHaveLength(4);
  });

  it.each([
    ['AUTH_JWT_SECRET', 'short'],
    ['AUTH_JWKS_URL', 'not a url'],
  ])('refuses a weak or malformed %s', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.message).toContain(name);
  });

  it('takes an AUTH_JWT_SECRET of 32 bytes or an AUTH_JWKS_URL, not both', () => {
    expect(parseConfig({ AUTH_JWT_SECRET: 'x'.repeat(32) }).auth).toEqual({
      secret: 'x'.repeat(32),
      jwksUrl: undefined,
    });
    expect(
      parseConfig({ AUTH_JWKS_URL: 'https://id.example.com/.well-known/jwks.json' }).auth.jwksUrl,
    ).toBe('https://id.example.com/.well-known/jwks.json');
    expect(
      configError({ AUTH_JWT_SECRET: 'x'.repeat(32), AUTH_JWKS_URL: 'https://id.example.com/jwks' })
        .message,
    ).toContain('not both');
  });

  it('checks TURN settings together', () => {
    expect(configError({ TURN_SECRET: 's' }).message).toContain('TURN_URLS');
    expect(configError({ TURN_URLS: 'turn:t.example' }).message).toContain('TURN_SECRET');
    expect(configError({ TURN_SECRET: 's', TURN_URLS: 'http://nope' }).message).toContain(
      'TURN_URLS',
    );
    expect(
      parseConfig({ TURN_SECRET: 's', TURN_URLS: 'turn:a.example:3478, turns:a.example:5349' }).turn
        .turnUrls,
    ).toEqual(['turn:a.example:3478', 'turns:a.example:5349']);
  });

  it('is one process without REDIS_URL, and one node of a cluster with it', () => {
    expect(parseConfig({}).cluster).toBeUndefined();
    expect(parseConfig({ REDIS_PREFIX: 'x:' }).cluster).toBeUndefined();
    expect(
      parseConfig({ REDIS_URL: 'rediss://user:pa%40ss@cache.example:6380/2' }).cluster,
    ).toEqual({
      redisUrl: 'rediss://user:pa%40ss@cache.example:6380/2',
      prefix: 'aleatoria:',
      nodeId: undefined,
      heartbeatMs: 2000,
      deadAfterMs: 15_000,
    });
    expect(
      parseConfig({
        REDIS_URL: 'redis://127.0.0.1',
        REDIS_PREFIX: 'chat-eu:',
        NODE_ID: 'fra-1.a',
        NODE_HEARTBEAT_MS: '500',
        NODE_DEAD_AFTER_MS: '2500',
      }).cluster,
    ).toMatchObject({ prefix: 'chat-eu:', nodeId: 'fra-1.a', heartbeatMs: 500, deadAfterMs: 2500 });
  });

  it('refuses a REDIS_URL of another scheme, a bad prefix or node id, and a dead-node window shorter than five beats', () => {
    expect(configError({ REDIS_URL: 'http://cache:6379' }).message).toContain('REDIS_URL');
    expect(configError({ REDIS_URL: 'redis://c', REDIS_PREFIX: 'a b' }).message).toContain(
      'REDIS_PREFIX',
    );
    expect(configError({ REDIS_URL: 'redis://c', NODE_ID: 'a/b' }).message).toContain('NODE_ID');
    expect(
      configError({ REDIS_URL: 'redis://c', NODE_HEARTBEAT_MS: '1000', NODE_DEAD_AFTER_MS: '4000' })
        .message,
    ).toContain('NODE_DEAD_AFTER_MS');
  });
});
