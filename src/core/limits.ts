/**
 * Open connections per client address (`MAX_CONNECTIONS_PER_IP`). A slot is taken when a socket
 * opens and given back when it closes, so a handshake that never completes holds nothing.
 */
export interface PerIpCounter {
  /** True when `ip` may not open another socket (always false when the cap is off). */
  full(ip: string | undefined): boolean;
  /** Counts a socket from `ip`; returns what to hand to `remove` later (nothing when the cap is off). */
  add(ip: string | undefined): string | undefined;
  remove(ip: string | undefined): void;
}

/** @param max the cap; 0 turns it off. */
export function createPerIpCounter(max: number): PerIpCounter {
  const open = new Map<string, number>();
  return {
    full: (ip) => max > 0 && ip !== undefined && (open.get(ip) ?? 0) >= max,
    add(ip) {
      if (max <= 0 || ip === undefined) return undefined;
      open.set(ip, (open.get(ip) ?? 0) + 1);
      return ip;
    },
    remove(ip) {
      if (max <= 0 || ip === undefined) return;
      const left = (open.get(ip) ?? 1) - 1;
      if (left <= 0) open.delete(ip);
      else open.set(ip, left);
    },
  };
}

/** Body of the 429 answer to an upgrade past the per-IP cap. */
export const PER_IP_REFUSAL = 'too many connections from this address';
