/**
 * A network for media that a test can change under a live call, inside the loopback-only
 * namespace of scripts/isolated.sh (where the test runs as root of its own network). Chromium
 * ignores addresses on `lo` itself (it skips loopback interfaces) and a `dummy` link needs a
 * kernel module this machine lacks, so the network is a veth pair: an address on one end is a
 * host candidate for every page, and moving that address is a real network change, after which
 * the old candidates are dead and only an ICE restart finds the new ones.
 */
import { execFileSync } from 'node:child_process';

const LINK = 'aleatoria0';
const PEER = 'aleatoria1';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Whether this process may change its network (it runs in scripts/isolated.sh's namespace). */
export function canChangeNetwork(): boolean {
  try {
    ip('link', 'add', LINK, 'type', 'veth', 'peer', 'name', PEER);
    ip('link', 'del', LINK);
    return true;
  } catch {
    return false;
  }
}

/** Brings the veth pair up with `address` (a /24) on its first end. */
export function addMediaNetwork(address: string): void {
  ip('link', 'add', LINK, 'type', 'veth', 'peer', 'name', PEER);
  ip('link', 'set', LINK, 'up');
  ip('link', 'set', PEER, 'up');
  ip('addr', 'add', `${address}/24`, 'dev', LINK);
}

/** The network change: `from` disappears and `to` appears, as after a Wi-Fi handover. */
export function moveMediaNetwork(from: string, to: string): void {
  ip('addr', 'del', `${from}/24`, 'dev', LINK);
  ip('addr', 'add', `${to}/24`, 'dev', LINK);
}

export function removeMediaNetwork(): void {
  try {
    ip('link', 'del', LINK);
  } catch {
    // Not there: nothing to undo.
  }
}
