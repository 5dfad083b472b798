/**
 * A node's inbox channel, `inbox:{node}`: everything addressed to one user held there (a DM or
 * relay, a pair change, a hangup) and the questions about userIds between nodes, with their
 * answers. The `UserDirectory` seam of a node sends to it; `onMessage` receives from it.
 *
 * A frame for a user of this node is delivered at once; for a user elsewhere one script (`ROUTE`)
 * reads the holder in HASH `users` and publishes to its inbox, so a DM costs one round trip and a
 * node only hears what is addressed to its own users. What a node routes within one turn of its
 * event loop goes as one script, and what it has for one other node as one message on that node's
 * inbox: under load, the Redis commands and the pub/sub messages per frame fall with the batch.
 * Held routes go out before any other command of the node (`RedisLink.beforeEachCommand`), so a
 * pool take or a room message never overtakes a DM or a `hangup` made before it; pair changes go
 * at once.
 */
import { setImmediate } from 'node:timers';
import type { HistoryConfig } from '../core/config.ts';
import { nameMessage, UNNAMED } from '../core/history.ts';
import type { Logger } from '../core/log.ts';
import type { HubHost, Keep, UserDirectory, Yield } from '../core/seams.ts';
import type { Claims, Question } from './claims.ts';
import { appendArguments, idCounterKey } from './redis-history.ts';
import type { RedisMatchPool } from './redis-pool.ts';
import { type RedisArg, type RedisLink, RedisUnavailableError } from './redis.ts';
import { BATCH_SEPARATOR, ROUTE } from './scripts.ts';

/**
 * How long after it is sent a script that acts for a waiting user may still run (ms, Redis's
 * clock): below the link's 1 s command timeout, after which the user was told `unavailable`.
 */
const SCRIPT_BUDGET_MS = 750;

/** The most messages one `ROUTE` script carries (a turn with more sends several). */
const MAX_BATCH = 256;

/** What crosses a node's inbox: one letter, then fields separated by newlines. */
export const Op = {
  deliver: 'd',
  /** Several messages for this node, separated by BATCH_SEPARATOR. */
  batch: 'b',
  pair: 'p',
  endPair: 'e',
  ask: 'q',
  answer: 'r',
  evict: 'x',
} as const;

export interface InboxOptions {
  link: RedisLink;
  /** `REDIS_PREFIX`. */
  prefix: string;
  /** HASH `users`: userId -> claim. */
  usersKey: string;
  /** Channel prefix of the nodes' inboxes (`{prefix}inbox:`). */
  inboxPrefix: string;
  claims: Claims;
  /** The hub, once it has asked for its seams. */
  host(): HubHost | undefined;
  /** This process's users, from the hub. */
  localUsers(): UserDirectory | undefined;
  /** The pool, once the hub has asked for it. */
  pool(): RedisMatchPool | undefined;
  /** History's settings, once the hub has asked for the store (it does when `HISTORY` is on). */
  historyConfig(): HistoryConfig | undefined;
  /** A new id for a message of `conversation` (the history store's `nextId`). */
  nextId(conversation: string): Promise<string>;
  log: Logger;
  warn(event: string): (error: unknown) => void;
}

export interface Inbox {
  /** The hub's seam: this node's users at once, the others through their node's inbox. */
  users(local: UserDirectory): UserDirectory;
  /** A message on this node's inbox. */
  onMessage(message: string): void;
  /**
   * Sends what waits to be routed now, for a command that must not overtake it (a room
   * broadcast after a DM from the same user).
   */
  flush(): void;
}

/** A message waiting for the end of the turn to be routed. */
interface Routed {
  readonly userId: string;
  readonly header: string;
  readonly frame: string;
  readonly keep: Keep | undefined;
  resolve(heard: number): void;
  reject(error: unknown): void;
}

export function createInbox(options: InboxOptions): Inbox {
  const { link, usersKey, inboxPrefix, claims, host, warn } = options;

  const deadline = () => Math.floor(link.redisNow() + SCRIPT_BUDGET_MS);
  let waiting: Routed[] = [];

  /**
   * Publishes `header` + `frame` to the inbox of whoever holds `userId` (keeping `frame` in history
   * if `keep` and history is on), with the rest of this turn's messages; resolves with whether a
   * node holds the user.
   */
  function route(
    userId: string,
    header: string,
    frame = '',
    keep?: Keep,
    now = false,
  ): Promise<boolean> {
    return new Promise<number>((resolve, reject) => {
      const hold = !now;
      if (waiting.length === 0 && hold) setImmediate(flush);
      waiting.push({ userId, header, frame, keep, resolve, reject });
      if (!hold) flush();
    }).then((heard) => {
      if (heard === -1) throw new RedisUnavailableError('Redis unavailable: routed too late');
      return heard > 0;
    });
  }

  function flush() {
    const batch = waiting;
    if (batch.length === 0) return;
    waiting = [];
    for (let from = 0; from < batch.length; from += MAX_BATCH)
      send(batch.slice(from, from + MAX_BATCH));
  }

  function send(batch: Routed[]) {
    const keys = [usersKey];
    const args: RedisArg[] = [inboxPrefix, deadline()];
    const historyConfig = options.historyConfig();
    for (const { userId, header, frame, keep } of batch) {
      if (!keep || !historyConfig) {
        // ROUTED_FIELDS: not kept, so nothing more.
        args.push(userId, header, frame, 0);
        continue;
      }
      args.push(userId, header, frame);
      const { prefix } = options;
      const kept = appendArguments(prefix, historyConfig, keep.conversation, keep.message);
      keys.push(kept.key);
      const stream = keys.length;
      if (keep.message.id !== UNNAMED)
        args.push(stream, kept.args[0], kept.args[1], kept.args[3], kept.args[4], 0, 0);
      else {
        // Named in the script: its id goes where the placeholder is, this far from the end.
        keys.push(idCounterKey(prefix, keep.conversation));
        const tail = frame.length - frame.lastIndexOf(UNNAMED) - UNNAMED.length;
        args.push(stream, '', 0, kept.args[3], kept.args[4], keys.length, tail);
      }
    }
    link.run(ROUTE, keys, args).then(
      (reply) => {
        const answers = reply as (number | string)[];
        for (let i = 0; i < batch.length; i++) {
          const { keep, resolve } = batch[i]!;
          const id = answers[batch.length + i];
          // The sender's copy is made from the message as it was named.
          if (keep && typeof id === 'string' && id !== '')
            keep.message = nameMessage(keep.message, id);
          resolve(answers[i] as number);
        }
      },
      (error) => {
        for (const routed of batch) routed.reject(error);
      },
    );
  }

  const users = (local: UserDirectory): UserDirectory => ({
    deliver(userId, text, keep) {
      if (keep?.message.id === UNNAMED && host()?.has(userId)) {
        // To a user of this node: named first, as the routing script names what it routes.
        return Promise.resolve(options.nextId(keep.conversation)).then((id) => {
          keep.message = nameMessage(keep.message, id);
          return local.deliver(userId, keep.message.text, keep);
        });
      }
      if (local.deliver(userId, text, keep)) return true;
      return route(userId, `${Op.deliver}\n${userId}\n`, text, keep);
    },
    pair(userId, partner, announce, match) {
      if (host()?.has(userId)) return local.pair(userId, partner, announce, match);
      // Pair changes go out at once (with what waits before them), in the order the matches
      // were made relative to the pool's own commands: held for the turn, they let takes on
      // other nodes cross them, and the match bench counted double and one-sided matches.
      return route(
        userId,
        `${Op.pair}\n${userId}\n${partner}\n${match}\n`,
        announce,
        undefined,
        true,
      );
    },
    endPair(userId, formerPartner, hangup) {
      if (host()?.has(userId)) return local.endPair(userId, formerPartner, hangup);
      const header = `${Op.endPair}\n${userId}\n${formerPartner}\n`;
      return route(userId, header, hangup ?? '', undefined, true).then(() => {});
    },
  });

  function onMessage(message: string) {
    const op = message[0];
    const fields = (count: number) => {
      // The last field is the rest of the message (a frame may hold newlines in its strings).
      const parts: string[] = [];
      let from = 2;
      for (let i = 1; i < count; i++) {
        const end = message.indexOf('\n', from);
        parts.push(message.slice(from, end));
        from = end + 1;
      }
      parts.push(message.slice(from));
      return parts;
    };
    switch (op) {
      case Op.batch: {
        for (const one of message.slice(2).split(BATCH_SEPARATOR)) onMessage(one);
        return;
      }
      case Op.deliver: {
        const [userId, text] = fields(2) as [string, string];
        options.localUsers()?.deliver(userId, text);
        return;
      }
      case Op.pair: {
        const [userId, partner, match, announce] = fields(4) as [string, string, string, string];
        options.pool()?.markTaken(userId);
        const found = options.localUsers()?.pair(userId, partner, announce, Number(match)) === true;
        const hub = host();
        if (!found && hub) {
          // Gone between the draw and the pairing: the requester's call is over before it began.
          const hangup = hub.envelopes.hangup(userId, partner, 'peer_disconnected');
          route(partner, `${Op.endPair}\n${partner}\n${userId}\n`, hangup, undefined, true).catch(
            () => {},
          );
        }
        host()?.flush();
        return;
      }
      case Op.endPair: {
        const [userId, former, hangup] = fields(3) as [string, string, string];
        options.localUsers()?.endPair(userId, former, hangup === '' ? undefined : hangup);
        host()?.flush();
        return;
      }
      case Op.ask: {
        const question = JSON.parse(message.slice(2)) as Question;
        void claims
          .answer(question)
          .then((yielded) => {
            host()?.flush();
            flush();
            return link.send(
              'PUBLISH',
              `${inboxPrefix}${question.from}`,
              `${Op.answer}\n${JSON.stringify({ id: question.id, ...yielded })}`,
            );
          })
          .catch(warn('cluster_answer_failed'));
        return;
      }
      case Op.answer: {
        const { id, ...yielded } = JSON.parse(message.slice(2)) as Yield & { id: number };
        claims.answered(id, yielded as Yield);
        return;
      }
      case Op.evict: {
        const [userId] = fields(1) as [string];
        claims.evicted(userId);
        return;
      }
      default:
        options.log.warn('cluster_unknown_op', { op });
    }
  }

  return { users, onMessage, flush };
}
