/** Where the page's server is, and the ICE servers its `/config.json` lists. */

/**
 * `ws` next to the page (`/ws`, or `/chat/ws` when the server is mounted under `/chat`), unless
 * `?server=ws://host:port/ws` overrides it.
 */
export function serverUrl(): string {
  const override = new URLSearchParams(location.search).get('server');
  if (override) return override;
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  return url.href;
}

function isIceServer(value: unknown): value is RTCIceServer {
  if (typeof value !== 'object' || value === null) return false;
  const urls = (value as { urls?: unknown }).urls;
  return (
    typeof urls === 'string' ||
    (Array.isArray(urls) && urls.every((url) => typeof url === 'string'))
  );
}

export async function loadIceServers(): Promise<RTCIceServer[]> {
  try {
    const response = await fetch('config.json', { cache: 'no-store' });
    if (!response.ok) return [];
    const config: unknown = await response.json();
    const servers = (config as { iceServers?: unknown } | null)?.iceServers;
    return Array.isArray(servers) ? servers.filter(isIceServer) : [];
  } catch {
    return [];
  }
}
