/**
 * One connected user as the hub keeps it: identity, rooms, partner and rate buckets. Small and
 * serializable ({@link SessionState}), so a Durable Object can keep it with the socket.
 */
import * as v from 'valibot';
import { ReconnectToken, RoomName, UserId } from './protocol.ts';
import type { TokenBucket } from './rate-limit.ts';

/** An adapter's handle for one socket; opaque to the hub. */
export type ConnId = string;

/** What the hub remembers of one user: small, and serializable as it is. */
export const SessionState = v.object({
  userId: UserId,
  token: v.optional(ReconnectToken),
  rooms: v.pipe(v.array(RoomName), v.maxLength(10_000)),
  available: v.boolean(),
  partner: v.optional(UserId),
  /** Handed over while it waited for its user with no socket (`resume.ts`): the partner is told. */
  resuming: v.optional(v.literal(true)),
});
export type SessionState = v.InferOutput<typeof SessionState>;

/** A user connected to this process. */
export interface Session {
  /** The socket now serving the user (a takeover moves the session to a new one). */
  conn: ConnId;
  readonly userId: string;
  readonly token: string | undefined;
  readonly rooms: Set<string>;
  /** Who the user is in a call with, as far as this session knows. */
  partner: string | undefined;
  /**
   * The per-connection frame budget (`RATE_LIMIT_*`), made at the first frame: a new bucket is
   * full, as one made at connect would be by then, and an idle socket keeps none.
   */
  bucket: TokenBucket | undefined;
  /** The number of the latest match this user was part of (`Taken.match`); 0 before any. */
  pairedAt: number;
  /** Matches made for this user as requester (`MATCHES_PER_MINUTE`); created on the first one. */
  matchBucket: TokenBucket | undefined;
  /**
   * While this user's own match is being settled with another process (a shared pool): what
   * others said about its pairs meanwhile (a pairing, a hangup), sent once its own `assign_role`
   * is out, so the user hears of its pairs in the order they were made.
   */
  held: string[] | undefined;
  /**
   * This user's writes to state shared with other processes (the pool, room membership) not yet
   * acknowledged: its next frames wait in `queue` until they are, so that what one connection
   * does takes effect in order across processes.
   */
  pending: Promise<void> | undefined;
  /** Made when the first frame has to wait (a cluster node), so an idle socket keeps none. */
  queue: (() => void)[] | undefined;
  /**
   * While this user's own take runs in a pool shared with other processes: pair endings that
   * arrived for a partner it does not have yet, judged again once the take has answered.
   */
  taking: (() => void)[] | undefined;
  /**
   * The numbers of matches this user was told of and left before their pairings arrived
   * (`Taken.preempted`), oldest first: each pairing, when it comes, is then ignored. More than one
   * when pairings are slow to come (a loaded cluster); the oldest is forgotten past
   * `MAX_PREEMPTED`, a pairing that never came (its process died).
   */
  preempted: number[] | undefined;
}

/** How many preempted matches a session remembers (`Session.preempted`). */
export const MAX_PREEMPTED = 8;

/** This process's sessions, by userId and by connection. */
export interface Sessions {
  readonly byUser: Map<string, Session>;
  readonly byConn: Map<ConnId, Session>;
}

/** The session's durable state; `available` is the pool's to say, `resuming` the window's. */
export function stateOf(session: Session, available: boolean, resuming = false): SessionState {
  return {
    userId: session.userId,
    ...(session.token === undefined ? {} : { token: session.token }),
    rooms: [...session.rooms],
    available,
    ...(session.partner === undefined ? {} : { partner: session.partner }),
    ...(resuming ? { resuming } : {}),
  };
}

/** A new session on `conn` for `state`'s user, with no rooms yet (they are joined after). */
export function createSession(conn: ConnId, state: SessionState): Session {
  return {
    conn,
    userId: state.userId,
    token: state.token,
    rooms: new Set(),
    partner: state.partner,
    bucket: undefined,
    matchBucket: undefined,
    held: undefined,
    pending: undefined,
    queue: undefined,
    preempted: undefined,
    taking: undefined,
    pairedAt: 0,
  };
}

/**
 * The pairs among `byUser`, each mutual pair once; a half restored after a wake (partner not
 * back yet) is not a pair. `partnersElsewhere`: other processes hold users too (a cluster), so a
 * partner not held here is counted by the process of the pair's lower userId, and the processes'
 * figures add up to the cluster's.
 */
export function countPairs(
  byUser: ReadonlyMap<string, Session>,
  partnersElsewhere = false,
): number {
  let pairs = 0;
  for (const session of byUser.values()) {
    const { partner } = session;
    if (partner === undefined || session.userId > partner) continue;
    const other = byUser.get(partner);
    if (other === undefined ? partnersElsewhere : other.partner === session.userId) pairs++;
  }
  return pairs;
}
