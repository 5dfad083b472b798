/**
 * Where `REDIS_URL` points: host, port, credentials, database and TLS, in the shape of the client
 * library's options (which only `redis.ts` imports).
 */
export interface RedisAddress {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: { servername?: string };
}

/** An IPv4 address, or an IPv6 one (the only hosts with a colon once brackets are off). */
const isIpAddress = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');

/** Connection options from a `redis://` or `rediss://` URL (user, password, db), as ioredis takes them. */
export function redisOptionsFromUrl(url: string): RedisAddress {
  const parsed = new URL(url);
  const scheme = parsed.protocol.toLowerCase();
  if (scheme !== 'redis:' && scheme !== 'rediss:')
    throw new Error(`REDIS_URL must be redis:// or rediss://, not ${parsed.protocol}`);
  // `[::1]` in a URL is `::1` to a socket.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const options: RedisAddress = { host, port: parsed.port ? Number(parsed.port) : 6379 };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.replace(/^\//, '');
  if (db) {
    if (!/^\d+$/.test(db)) throw new Error(`REDIS_URL database must be a number, not ${db}`);
    options.db = Number(db);
  }
  // The name the server's certificate must carry, sent as SNI; for an IP address the certificate's
  // IP entries are checked instead (SNI may not carry one: RFC 6066, and Node warns).
  if (scheme === 'rediss:') options.tls = isIpAddress(host) ? {} : { servername: host };
  return options;
}
