/**
 * Calls from one Durable Object to others, the platform's way (issue 14): a failed call is made
 * once more only when the runtime marks its error `.retryable` and not `.overloaded` (Cloudflare's
 * Durable Objects error-handling guide: retrying an overloaded object adds to its overload);
 * anything else is the caller's to count and leave. Nothing loops. The calls are handed in, so
 * these rules are unit-tested without workerd (test/cloudflare/fanout.test.ts).
 */

/** Whether a failed call may be made again: the runtime says so, and the callee can take it. */
export function mayRetry(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { retryable, overloaded } = error as { retryable?: unknown; overloaded?: unknown };
  return retryable === true && overloaded !== true;
}

/**
 * Whether the stub a call failed on is done for: a stub that threw is broken for good, unless the
 * error is one the callee's own code threw (`.remote`), which leaves the stub working. A caller
 * takes a new stub after a broken one; keeping a working one keeps the order of its calls.
 */
export function stubBroken(error: unknown): boolean {
  return (
    typeof error !== 'object' || error === null || (error as { remote?: unknown }).remote !== true
  );
}

/**
 * `attempt()`, and once more at once if it failed in a way `may` allows; never a third time. At
 * once: the runtime's own retries of a call that never arrived have backed off already, and the
 * second attempt goes through a new stub (the caller's `attempt` takes one), which reaches the
 * object where it now runs.
 */
export async function retryOnce<T>(
  attempt: () => PromiseLike<T>,
  may: (error: unknown) => boolean = mayRetry,
): Promise<T> {
  try {
    return await attempt();
  } catch (error) {
    if (!may(error)) throw error;
    return attempt();
  }
}

export interface FanOut {
  /** Members reached, over every target that answered. */
  reached: number;
  /** Targets that answered 0: they hold no member of the room any more. */
  emptied: string[];
  /** Targets whose delivery failed (after its one retry, if allowed) or answered nonsense. */
  failed: { target: string; error: unknown }[];
}

/**
 * One `deliver(target)` per target, all at once, each retried once where {@link mayRetry} allows.
 * Every first attempt is made before this returns its promise (in the order of `targets`), so the
 * calls of two fan-outs started one after the other leave in that order.
 */
export async function fanOut(
  targets: Iterable<string>,
  deliver: (target: string) => PromiseLike<number>,
  may: (error: unknown) => boolean = mayRetry,
): Promise<FanOut> {
  const result: FanOut = { reached: 0, emptied: [], failed: [] };
  await Promise.all(
    Array.from(targets, (target) =>
      retryOnce(() => deliver(target), may).then(
        (reached) => {
          // A count is a whole number: anything else must not empty the target's members.
          if (!Number.isSafeInteger(reached) || reached < 0)
            result.failed.push({ target, error: new TypeError('not a member count') });
          else if (reached === 0) result.emptied.push(target);
          else result.reached += reached;
        },
        (error: unknown) => {
          result.failed.push({ target, error });
        },
      ),
    ),
  );
  return result;
}
