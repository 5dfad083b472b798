/**
 * The availability pool: users who sent `user_available_webrtc`, each with the time it entered.
 * Add, remove and a uniform random pick that skips up to two excluded users are all O(1), so
 * matching stays flat as the pool grows.
 */
export interface AvailabilityPool {
  readonly size: number;
  has(userId: string): boolean;
  /** Adds `userId`, in the pool since `since`; a second add keeps the first `since`. */
  add(userId: string, since: number): void;
  delete(userId: string): void;
  /** When `userId` entered the pool; undefined when it is not in it. */
  since(userId: string): number | undefined;
  /**
   * Picks uniformly among members other than `exclude`, using one draw of `random()` in [0, 1).
   * Returns undefined when nobody else is available.
   */
  pick(random: () => number, exclude: readonly (string | undefined)[]): string | undefined;
  members(): string[];
}

const NONE: readonly number[] = [];

/** The distinct positions of the `exclude`d members, ascending. */
function positionsOf(
  index: ReadonlyMap<string, number>,
  exclude: readonly (string | undefined)[],
): number[] {
  return [...new Set(exclude)]
    .map((userId) => (userId === undefined ? undefined : index.get(userId)))
    .filter((at): at is number => at !== undefined)
    .sort((a, b) => a - b);
}

/** A uniform pick among `items` but the `skipped` positions (distinct, ascending), one draw. */
function pickAmong(
  items: readonly string[],
  random: () => number,
  skipped: readonly number[],
): string | undefined {
  const eligible = items.length - skipped.length;
  if (eligible <= 0) return undefined;
  // Draw a rank among the eligible, then step over excluded positions at or below it.
  let at = Math.min(Math.floor(random() * eligible), eligible - 1);
  for (const position of skipped) if (at >= position) at++;
  return items[at];
}

export function createAvailabilityPool(): AvailabilityPool {
  // Member i is `items[i]`, in the pool since `entered[i]`; `index` gives i by userId. The time
  // is kept beside the member rather than in a Map of its own, so that an add or a delete (two of
  // each per match) writes one Map, not two.
  const items: string[] = [];
  const entered: number[] = [];
  const index = new Map<string, number>();

  return {
    get size() {
      return items.length;
    },
    has: (userId) => index.has(userId),
    add(userId, since) {
      if (index.has(userId)) return;
      index.set(userId, items.length);
      items.push(userId);
      entered.push(since);
    },
    delete(userId) {
      const at = index.get(userId);
      if (at === undefined) return;
      // The last member takes the place of the one removed.
      const last = items.pop()!;
      const lastEntered = entered.pop()!;
      index.delete(userId);
      if (at < items.length) {
        items[at] = last;
        entered[at] = lastEntered;
        index.set(last, at);
      }
    },
    since(userId) {
      const at = index.get(userId);
      return at === undefined ? undefined : entered[at];
    },
    pick(random, exclude) {
      // Every request excludes two users at most (the requester, its current peer): their
      // positions are held in two slots, without building a list per request.
      let low = -1;
      let high = -1;
      for (const userId of exclude) {
        const at = userId === undefined ? undefined : index.get(userId);
        if (at === undefined || at === low || at === high) continue;
        if (low < 0) low = at;
        else if (high < 0) high = at;
        else return pickAmong(items, random, positionsOf(index, exclude));
      }
      const skipped =
        high >= 0 ? (high < low ? [high, low] : [low, high]) : low >= 0 ? [low] : NONE;
      return pickAmong(items, random, skipped);
    },
    members: () => [...items],
  };
}
