/**
 * One connection per userId across the cluster: the `UserClaims` seam of a node
 * (`docs/cluster.md`, "One connection per userId").
 *
 * A newcomer claims its userId before the upgrade (`CLAIM`, set if free or held by a dead node).
 * Held by a live node: that node is asked over its inbox to hand the session over (same token) or
 * to probe its socket (no token), exactly as one process does it locally; then the newcomer's node
 * claims again, replacing only the claim it asked about.
 */
import { createHash } from 'node:crypto';
import type { OpenRequest } from '../core/identity.ts';
import type { HubHost, UserClaims, Yield } from '../core/seams.ts';
import type { SessionState } from '../core/session.ts';
import { Op } from './inbox.ts';
import type { RedisLink } from './redis.ts';
import { CLAIM, RELEASE } from './scripts.ts';

export interface ClaimsOptions {
  link: RedisLink;
  nodeId: string;
  /** Keys: HASH `users`, ZSET `nodes`, and this node's SET of users. */
  key: { users: string; nodes: string; myUsers: string };
  /** Channel prefix of the nodes' inboxes (`{prefix}inbox:`). */
  inboxPrefix: string;
  /** `NODE_DEAD_AFTER_MS`: a claim held by a node silent this long is free. */
  deadAfterMs: number;
  /** `TAKEOVER_PROBE_MS`: how long another node may take to answer a probe, plus a margin. */
  takeoverProbeMs: number;
  /** The hub, once it has asked for its seams. */
  host(): HubHost | undefined;
  warn(event: string): (error: unknown) => void;
}

/** Another node's newcomer asking this node to yield a userId, as it crosses the inbox. */
export interface Question {
  id: number;
  from: string;
  userId: string;
  /** The digest of the newcomer's token. */
  token?: string;
}

export interface Claims {
  /** The hub's seam. */
  readonly seam: UserClaims;
  /**
   * Claims `userId` for this node, replacing the claim `replacing` (another node's that yielded);
   * resolves with the claim of the live node holding it instead, if any.
   */
  claim(userId: string, replacing: string): Promise<string | undefined>;
  /** Answers `question`: whether the user held here is alive, handed over, or gone. */
  answer(question: Question): Promise<Yield>;
  /** Another node answered the question `id`. */
  answered(id: number, yielded: Yield): void;
  /**
   * A newcomer elsewhere took `userId` over without an answer from here: the session here is
   * evicted, unless this node holds the userId's claim again.
   */
  evicted(userId: string): void;
  /** Claims again the userIds whose claim failed, for the users still here. */
  claimAgain(): void;
  /**
   * Before everything this node holds is written again: releases again what failed to be, and
   * forgets the claims that failed (every session here is claimed again).
   */
  rewrite(): void;
  /** Drops claims won for newcomers that never opened, so the userId is not held for nobody. */
  expireAdmitted(): void;
}

/** The node of a claim ("{node}/{n}"). */
export const nodeOf = (claimed: string) => claimed.slice(0, claimed.indexOf('/') >>> 0);

/** A userId's token as it crosses Redis: never the secret itself. */
/** What a node says or keeps of a token (in a question, in Redis): never the token itself. */
export const digest = (token: string) => createHash('sha256').update(token).digest('base64url');

/** A newcomer's claim as `prepare` settled it, waiting for `open`. */
interface Settled {
  readonly refused: boolean;
  readonly state?: SessionState;
}

export function createClaims(options: ClaimsOptions): Claims {
  const { link, nodeId, key, inboxPrefix, host, warn } = options;
  /** What `prepare` settled for each upgrade request, for its `open`. */
  const settled = new WeakMap<OpenRequest, Settled>();
  /** UserIds claimed for a newcomer here that has not opened yet, with when. */
  const admitted = new Map<string, number>();
  /** Claims being settled for newcomers here, by userId. */
  const claiming = new Map<string, Promise<void>>();
  /** Questions asked of other nodes (`ask`), by id, waiting for their answers. */
  const asked = new Map<number, (answer: Yield | undefined) => void>();
  let nextQuestion = 0;
  /** Releases and claims that failed while Redis was away, written again when it is back. */
  const unreleased = new Set<string>();
  const unclaimed = new Set<string>();

  function release(userId: string) {
    unreleased.delete(userId);
    link.run(RELEASE, [key.users, key.myUsers], [userId, nodeId]).catch((error) => {
      unreleased.add(userId);
      warn('cluster_release_failed')(error);
    });
  }

  let claimCount = 0;
  const claim = (userId: string, replacing: string) =>
    link
      .run(
        CLAIM,
        [key.users, key.nodes, key.myUsers],
        [
          userId,
          `${nodeId}/${(++claimCount).toString(36)}`,
          replacing,
          options.deadAfterMs,
          nodeId,
        ],
      )
      .then((owner) => (typeof owner === 'string' ? owner : undefined));

  /** Asks `node` to yield `userId` to a newcomer; undefined when it did not answer in time. */
  async function ask(node: string, userId: string, token: string | undefined) {
    const id = ++nextQuestion;
    const question = JSON.stringify({ id, from: nodeId, userId, token: token && digest(token) });
    const answer = new Promise<Yield | undefined>((resolve) => {
      const timer = setTimeout(() => settle(undefined), options.takeoverProbeMs + 1500);
      const settle = (value: Yield | undefined) => {
        clearTimeout(timer);
        asked.delete(id);
        resolve(value);
      };
      asked.set(id, settle);
    });
    const heard = await link
      .send('PUBLISH', `${inboxPrefix}${node}`, `${Op.ask}\n${question}`)
      .catch(() => 0);
    // Nobody listens on that inbox: the node is gone, whatever its last heartbeat says.
    if (heard === 0) asked.get(id)?.(undefined);
    return answer;
  }

  async function settle(request: OpenRequest): Promise<Settled> {
    const { userId, token } = request;
    const owner = await claim(userId, '');
    if (owner === undefined) return { refused: false };
    const holder = nodeOf(owner);
    const answer = await ask(holder, userId, token);
    if (answer?.outcome === 'alive') return { refused: true };
    // Another newcomer may have claimed it meanwhile: only the holder that yielded is replaced.
    if ((await claim(userId, owner)) !== undefined) return { refused: true };
    if (answer === undefined) {
      // The holder never answered: whatever socket it still has is not the user's any more.
      link.send('PUBLISH', `${inboxPrefix}${holder}`, `${Op.evict}\n${userId}`).catch(() => {});
    }
    return { refused: false, state: answer?.outcome === 'handed' ? answer.state : undefined };
  }

  const seam: UserClaims = {
    prepare(request) {
      const { userId } = request;
      const settling = settle(request).then(
        (result) => {
          settled.set(request, result);
          if (!result.refused) admitted.set(userId, Date.now());
        },
        (error) => {
          // Redis away: the newcomer is served here; its claim is written once Redis is back.
          unclaimed.add(userId);
          warn('cluster_claim_failed')(error);
        },
      );
      claiming.set(userId, settling);
      void settling.then(() => {
        if (claiming.get(userId) === settling) claiming.delete(userId);
      });
      return settling;
    },
    open(request) {
      admitted.delete(request.userId);
      const result = settled.get(request);
      if (result === undefined) return { refused: false };
      return result.refused ? { refused: true } : { refused: false, state: result.state };
    },
    released: release,
  };

  return {
    seam,
    claim,
    answer(question) {
      // A claim of this node for the userId may have won in Redis before its answer is back here.
      return (claiming.get(question.userId) ?? Promise.resolve()).then((): Promise<Yield> => {
        // A newcomer here claimed the userId and is about to open: it counts as alive.
        if (admitted.has(question.userId)) return Promise.resolve({ outcome: 'alive' });
        const hub = host();
        if (!hub) return Promise.resolve({ outcome: 'gone' });
        return hub.yieldUser(question.userId, (token) => question.token === digest(token));
      });
    },
    answered(id, yielded) {
      asked.get(id)?.(yielded);
    },
    evicted(userId) {
      void link
        .send('HGET', key.users, userId)
        .then((owner) => {
          if (typeof owner !== 'string' || nodeOf(owner) !== nodeId) host()?.evict(userId);
        })
        .catch(warn('cluster_evict_failed'));
    },
    claimAgain() {
      for (const userId of [...unclaimed]) {
        unclaimed.delete(userId);
        if (!host()?.has(userId)) continue;
        claim(userId, '').then(
          (owner) => {
            if (owner !== undefined) host()?.evict(userId);
          },
          () => unclaimed.add(userId),
        );
      }
    },
    rewrite() {
      unclaimed.clear();
      for (const userId of [...unreleased]) release(userId);
    },
    expireAdmitted() {
      const old = Date.now() - 30_000;
      for (const [userId, at] of admitted) {
        if (at > old) continue;
        admitted.delete(userId);
        if (!host()?.has(userId)) release(userId);
      }
    },
  };
}
