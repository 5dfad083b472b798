/**
 * The availability pool: users who sent `user_available_webrtc`. Add, remove and a uniform random
 * pick that skips up to two excluded users are all O(1), so matching stays flat as the pool grows.
 */
export interface AvailabilityPool {
  readonly size: number;
  has(userId: string): boolean;
  add(userId: string): void;
  delete(userId: string): void;
  /**
   * Picks uniformly among members other than `exclude`, using one draw of `random()` in [0, 1).
   * Returns undefined when nobody else is available.
   */
  pick(random: () => number, exclude: readonly (string | undefined)[]): string | undefined;
  members(): string[];
}

export function createAvailabilityPool(): AvailabilityPool {
  const items: string[] = [];
  const index = new Map<string, number>();

  return {
    get size() {
      return items.length;
    },
    has: (userId) => index.has(userId),
    add(userId) {
      if (index.has(userId)) return;
      index.set(userId, items.length);
      items.push(userId);
    },
    delete(userId) {
      const at = index.get(userId);
      if (at === undefined) return;
      const last = items.pop()!;
      index.delete(userId);
      if (at < items.length) {
        items[at] = last;
        index.set(last, at);
      }
    },
    pick(random, exclude) {
      const skipped = [...new Set(exclude)]
        .map((userId) => (userId === undefined ? undefined : index.get(userId)))
        .filter((at): at is number => at !== undefined)
        .sort((a, b) => a - b);
      const eligible = items.length - skipped.length;
      if (eligible <= 0) return undefined;
      // Draw a rank among the eligible, then step over excluded positions at or below it.
      let at = Math.min(Math.floor(random() * eligible), eligible - 1);
      for (const position of skipped) if (at >= position) at++;
      return items[at];
    },
    members: () => [...items],
  };
}
