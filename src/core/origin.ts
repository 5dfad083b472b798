/**
 * The Origin policy of DECISIONS.md: an Origin is allowed when it matches an `ALLOWED_ORIGINS`
 * entry by scheme, host and normalized port (subdomains only through an explicit `*.` entry),
 * when it is the server's own origin (Origin host equals the request's Host), or when the policy
 * is `*`. A missing Origin is refused unless `ALLOW_NO_ORIGIN` is set.
 */

export interface OriginEntry {
  scheme: 'http:' | 'https:';
  /** Lower-case host name; for a wildcard entry, the suffix after `*.`. */
  host: string;
  port: string;
  wildcard: boolean;
}

export interface OriginPolicy {
  any: boolean;
  entries: OriginEntry[];
}

export type OriginVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'missing' | 'malformed' | 'not_allowed' };

const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' };

interface ParsedOrigin {
  scheme: 'http:' | 'https:';
  host: string;
  port: string;
}

/** Parses a serialized origin (`scheme://host[:port]`); anything else (paths, credentials, `null`) is malformed. */
function parseOrigin(text: string): ParsedOrigin | undefined {
  if (text.length > 2048) return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/')
    return undefined;
  // `new URL` tolerates a trailing slash; an Origin header never has one, nor does a sane entry.
  if (text.endsWith('/')) return undefined;
  return {
    scheme: url.protocol,
    host: url.hostname.toLowerCase(),
    port: url.port || DEFAULT_PORTS[url.protocol]!,
  };
}

/** Parses `ALLOWED_ORIGINS`; throws with the offending entry on a malformed one. */
export function parseAllowedOrigins(list: string): OriginPolicy {
  const items = list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
  if (items.length === 0) throw new Error('no origin given (use * to allow any)');
  if (items.includes('*')) {
    if (items.length > 1) throw new Error('* cannot be combined with other entries');
    return { any: true, entries: [] };
  }
  const entries = items.map((item): OriginEntry => {
    const wildcard = /^https?:\/\/\*\./i.test(item);
    const parsed = parseOrigin(wildcard ? item.replace('*.', 'wildcard.') : item);
    if (!parsed)
      throw new Error(
        `${JSON.stringify(item)} is not an origin like https://example.com[:port] or https://*.example.com`,
      );
    if (!wildcard) return { ...parsed, wildcard };
    return { ...parsed, host: parsed.host.slice('wildcard.'.length), wildcard };
  });
  return { any: false, entries };
}

/** Splits a Host header into host name and port (port empty when the header has none). */
function parseHostHeader(host: string): { host: string; port: string } | undefined {
  const match = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(host.trim());
  if (!match) return undefined;
  return { host: match[1]!.toLowerCase(), port: match[2] ?? '' };
}

function isSameOrigin(origin: ParsedOrigin, hostHeader: string | undefined): boolean {
  if (!hostHeader) return false;
  const host = parseHostHeader(hostHeader);
  if (!host || host.host !== origin.host) return false;
  // Without a port, Host means the default port of whatever scheme the page was loaded over.
  return host.port === ''
    ? origin.port === DEFAULT_PORTS[origin.scheme]
    : host.port === origin.port;
}

function matchesEntry(origin: ParsedOrigin, entry: OriginEntry): boolean {
  if (origin.scheme !== entry.scheme || origin.port !== entry.port) return false;
  if (!entry.wildcard) return origin.host === entry.host;
  return origin.host.endsWith(`.${entry.host}`);
}

/**
 * Decides whether an upgrade with this `Origin` header may proceed.
 * @param origin the request's Origin header, if any
 * @param host the request's Host header, for the same-origin rule
 */
export function checkOrigin(
  policy: OriginPolicy,
  allowNoOrigin: boolean,
  origin: string | undefined | null,
  host: string | undefined | null,
): OriginVerdict {
  if (origin === undefined || origin === null || origin === '') {
    return allowNoOrigin ? { allowed: true } : { allowed: false, reason: 'missing' };
  }
  if (policy.any) return { allowed: true };
  const parsed = parseOrigin(origin);
  if (!parsed) return { allowed: false, reason: 'malformed' };
  if (isSameOrigin(parsed, host ?? undefined)) return { allowed: true };
  return policy.entries.some((entry) => matchesEntry(parsed, entry))
    ? { allowed: true }
    : { allowed: false, reason: 'not_allowed' };
}
