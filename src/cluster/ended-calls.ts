/**
 * Calls that ended while their user was away (`src/core/resume.ts`), kept in Redis for one more
 * window so that the user, back with its token on any node, is told the call is over: STRING
 * `ended:{userId}` = the token's digest, a newline, the partner; expiring after `CALL_RESUME_MS`.
 * Taken once, by the token's holder only (`TAKE_ENDED`). Redis unreachable: nothing is kept or
 * told, as for any live delivery (the page's ICE recovery then ends the call itself).
 */
import type { EndedCalls } from '../core/seams.ts';
import { digest } from './claims.ts';
import type { RedisLink } from './redis.ts';
import { TAKE_ENDED } from './scripts.ts';

export function createRedisEndedCalls(
  link: RedisLink,
  prefix: string,
  warn: (event: string) => (error: unknown) => void,
): EndedCalls {
  const keyOf = (userId: string) => `${prefix}ended:${userId}`;
  return {
    keep(userId, token, partner, ms) {
      const value = `${digest(token)}\n${partner}`;
      link
        .send('SET', keyOf(userId), value, 'PX', Math.max(1, ms))
        .catch(warn('cluster_ended_call_failed'));
    },
    take: (userId, token) =>
      link.run(TAKE_ENDED, [keyOf(userId)], [digest(token)]).then(
        (partner) => (typeof partner === 'string' ? partner : undefined),
        () => undefined,
      ),
  };
}
