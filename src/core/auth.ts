/**
 * Optional token auth (DECISIONS.md): a JWT from the `Sec-WebSocket-Protocol` header (kept out of
 * access logs) or the `access_token` query parameter, verified before the upgrade with `jose`
 * (runtime-neutral Web Crypto): HS256 with `AUTH_JWT_SECRET`, or the keys of `AUTH_JWKS_URL`
 * (fetched and cached by jose). `exp` and `nbf` are enforced; `sub` is the userId.
 */
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';

export interface AuthOptions {
  secret: string | undefined;
  jwksUrl: string | undefined;
}

export type AuthResult =
  | { ok: true; subject: string }
  | { ok: false; reason: 'missing' | 'invalid' | 'subject' };

export interface Authenticator {
  /**
   * Checks the request's token: the first JWT-shaped entry of the raw `Sec-WebSocket-Protocol`
   * header, else `accessToken`; its subject must be `userId` when one is given.
   */
  check(
    protocols: string | undefined,
    accessToken: string | undefined,
    userId: string | undefined,
  ): Promise<AuthResult>;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** Tolerance for clocks that disagree a little on `exp`/`nbf`. */
const CLOCK_TOLERANCE_S = 5;

/** Undefined when auth is off (neither variable set). */
export function createAuthenticator(options: AuthOptions): Authenticator | undefined {
  let key: Uint8Array | JWTVerifyGetKey;
  let algorithms: string[] | undefined;
  if (options.secret !== undefined) {
    key = new TextEncoder().encode(options.secret);
    algorithms = ['HS256'];
  } else if (options.jwksUrl !== undefined) {
    key = createRemoteJWKSet(new URL(options.jwksUrl));
    // Whatever the key set's keys declare; never "none" or a symmetric algorithm against a public key.
    algorithms = [
      'RS256',
      'RS384',
      'RS512',
      'PS256',
      'PS384',
      'PS512',
      'ES256',
      'ES384',
      'ES512',
      'EdDSA',
    ];
  } else {
    return undefined;
  }

  return {
    async check(protocols, accessToken, userId) {
      const offered = (protocols ?? '')
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
      const token = offered.find((item) => JWT_SHAPE.test(item)) ?? accessToken;
      if (!token || token.length > 8192) return { ok: false, reason: 'missing' };
      try {
        const { payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
          algorithms,
          clockTolerance: CLOCK_TOLERANCE_S,
        });
        if (typeof payload.sub !== 'string' || payload.sub === '')
          return { ok: false, reason: 'subject' };
        if (userId !== undefined && userId !== payload.sub) return { ok: false, reason: 'subject' };
        return { ok: true, subject: payload.sub };
      } catch {
        return { ok: false, reason: 'invalid' };
      }
    },
  };
}
