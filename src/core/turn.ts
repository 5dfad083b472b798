/**
 * ICE servers for one user: the configured STUN/static servers plus, with `TURN_SECRET`, TURN
 * credentials in coturn's REST-API form (`use-auth-secret`): `username = "<expiry>:<userId>"`,
 * `credential = base64(HMAC-SHA1(secret, username))`. Web Crypto only, so it runs everywhere.
 */
import type { IceServer } from './config.ts';

export interface TurnOptions {
  /** Shared with coturn's `static-auth-secret`; undefined turns TURN credentials off. */
  secret: string | undefined;
  turnUrls: string[];
  stunUrls: string[];
  /** Seconds a credential stays valid. */
  ttlSeconds: number;
  /** `ICE_SERVERS`, handed out as they are. */
  staticServers: IceServer[];
}

export interface IceServersReply {
  iceServers: IceServer[];
  /** Seconds until the TURN credential expires (0 without TURN). */
  ttl: number;
}

function base64(bytes: ArrayBuffer): string {
  let binary = '';
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** coturn's REST-API credential for `username`. */
export async function turnCredential(secret: string, username: string): Promise<string> {
  const encoder = new TextEncoder();
  const key = await crypto.subtle.importKey(
    'raw',
    encoder.encode(secret),
    { name: 'HMAC', hash: 'SHA-1' },
    false,
    ['sign'],
  );
  return base64(await crypto.subtle.sign('HMAC', key, encoder.encode(username)));
}

/** The ICE servers for `userId` at `nowMs`. */
export async function iceServersFor(
  options: TurnOptions,
  userId: string,
  nowMs: number,
): Promise<IceServersReply> {
  const iceServers: IceServer[] = [...options.staticServers];
  if (options.stunUrls.length > 0) iceServers.push({ urls: options.stunUrls });
  if (options.secret === undefined || options.turnUrls.length === 0) return { iceServers, ttl: 0 };
  const username = `${Math.floor(nowMs / 1000) + options.ttlSeconds}:${userId}`;
  iceServers.push({
    urls: options.turnUrls,
    username,
    credential: await turnCredential(options.secret, username),
  });
  return { iceServers, ttl: options.ttlSeconds };
}
