/**
 * Why a WebSocket never opened. Browsers hide the HTTP status of a refused upgrade (the socket just
 * closes with 1006), so the same URL is fetched as a plain GET: the server refuses it for the same
 * reasons as the upgrade, in the same order (400 userId/room/token, 403 Origin, then 426 because
 * it is not an upgrade), and sends refusals with `Access-Control-Allow-Origin: *`, so the status is
 * readable cross-origin.
 */

/**
 * What went wrong with a connection. The first five come from {@link diagnoseConnection}; the last
 * two from the server's close codes 4009 and 4000.
 */
export type Diagnosis =
  | 'origin_not_allowed'
  | 'bad_request'
  | 'too_many_connections'
  | 'server_restarting'
  | 'unreachable'
  | 'user_id_taken'
  | 'replaced';

/** The verdict: `fatal` means retrying cannot help. No `diagnosis` means nothing conclusive was learnt. */
export interface DiagnosisResult {
  diagnosis?: Diagnosis;
  fatal: boolean;
  /** The HTTP status of the probe, when it got one. */
  httpStatus?: number;
}

export interface DiagnoseOptions {
  /** Defaults to the global `fetch`, looked up at call time. */
  fetch?: typeof fetch;
  /** The page's origin (defaults to `location.origin` where there is one). */
  pageOrigin?: string;
  /** Give up on the probe after this long and call the server unreachable (default 5000). */
  timeoutMs?: number;
}

/** `ws://h/p?q` -> `http://h/p?q`, `wss:` -> `https:`. */
export function probeUrl(wsUrl: string): URL {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' || url.protocol === 'https:' ? 'https:' : 'http:';
  return url;
}

function currentPageOrigin(): string | undefined {
  const location = (globalThis as { location?: { origin?: unknown } }).location;
  return typeof location?.origin === 'string' ? location.origin : undefined;
}

/** Probes `wsUrl` over HTTP and maps the answer to a {@link DiagnosisResult}. Never throws. */
export async function diagnoseConnection(
  wsUrl: string,
  options: DiagnoseOptions = {},
): Promise<DiagnosisResult> {
  const fetchImpl = options.fetch ?? (globalThis.fetch as typeof fetch | undefined);
  if (!fetchImpl) return { fatal: false };
  const url = probeUrl(wsUrl);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? 5000);
  let status: number;
  try {
    const response = await fetchImpl(url.href, {
      method: 'GET',
      cache: 'no-store',
      credentials: 'omit',
      signal: controller.signal,
    });
    status = response.status;
    // The body is a short refusal text; release it instead of leaving the stream open.
    void response.body?.cancel().catch(() => {});
  } catch {
    return { diagnosis: 'unreachable', fatal: false };
  } finally {
    clearTimeout(timer);
  }
  switch (status) {
    case 400:
      return { diagnosis: 'bad_request', fatal: true, httpStatus: status };
    case 403:
      // A same-origin GET carries no Origin header (Fetch standard), so the server refuses it as
      // "no Origin"; the upgrade itself did carry one, and the server's own origin is always
      // allowed. The 403 says nothing about the upgrade then.
      if (url.origin === (options.pageOrigin ?? currentPageOrigin()))
        return { fatal: false, httpStatus: status };
      return { diagnosis: 'origin_not_allowed', fatal: true, httpStatus: status };
    case 429:
      return { diagnosis: 'too_many_connections', fatal: false, httpStatus: status };
    case 503:
      return { diagnosis: 'server_restarting', fatal: false, httpStatus: status };
    default:
      // 426 means the request was acceptable and only lacked the upgrade: the failure was transient.
      return { fatal: false, httpStatus: status };
  }
}
