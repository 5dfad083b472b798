/**
 * One connection's frames take effect in order even where state is shared with other processes:
 * while a write of the connection (to the pool, to a room's membership) is not yet acknowledged,
 * its next frames and `after` work wait in the session's queue. Nothing waits for a write this
 * process made at once, so one process never queues anything.
 */
import type { MaybePromise } from './seams.ts';
import type { ConnId, Session } from './session.ts';

/** Frames one connection may have waiting for its writes to shared state; past it, refused. */
export const MAX_QUEUED_FRAMES = 256;

export interface Ordering {
  /** `session`'s next frames (and `after` work) wait until `write` is acknowledged or failed. */
  wait(session: Session, write: MaybePromise<void>): void;
  /** Runs `fn` once `session`'s pending writes are acknowledged (at once when there are none). */
  after(session: Session, fn: () => void): void;
  /** Queues `fn` behind `session`'s pending writes; false when its queue is full. */
  enqueue(session: Session, fn: () => void): boolean;
}

const noop = () => {};

/**
 * `current(conn)`: the session a connection has now (a session gone meanwhile has its queue
 * dropped: nothing it sent is to be done); `flush`: persists what the queued work changed.
 */
export function createOrdering(
  current: (conn: ConnId) => Session | undefined,
  flush: () => void,
): Ordering {
  function wait(session: Session, write: MaybePromise<void>) {
    if (!(write instanceof Promise)) return;
    const done = write.then(noop, noop);
    const all = session.pending ? Promise.all([session.pending, done]).then(noop) : done;
    session.pending = all;
    void all.then(() => {
      if (session.pending !== all) return;
      session.pending = undefined;
      const { queue } = session;
      if (current(session.conn) !== session) return void (session.queue = undefined);
      while (queue && queue.length > 0 && !session.pending) queue.shift()!();
      flush();
    });
  }

  return {
    wait,
    after(session, fn) {
      if (session.pending) (session.queue ??= []).push(fn);
      else fn();
    },
    enqueue(session, fn) {
      const queue = (session.queue ??= []);
      if (queue.length >= MAX_QUEUED_FRAMES) return false;
      queue.push(fn);
      return true;
    },
  };
}
