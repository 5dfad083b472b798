/**
 * What every load scenario shares: arguments, opening sockets over several loopback source
 * addresses, a bounded latency histogram, the measurement window the runner reads server CPU
 * around, and an open-loop sender. Runs in the load generator's process (bench/load.ts).
 */
import { WebSocket, type RawData } from 'ws';

export const arg = (name: string, fallback: string): string => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
};
/** A whole-number argument, clamped to [min, max] so a typo cannot make the load unbounded. */
export const intArg = (name: string, fallback: number, min: number, max: number): number => {
  const value = Math.floor(Number(arg(name, String(fallback))));
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
};

/**
 * `--url`: the server's WebSocket URL, or a cluster's, one per node, comma-separated. Socket `i`
 * goes to node `i` mod N unless its scenario says otherwise (`openAll`).
 */
export const urls = arg('url', 'ws://127.0.0.1:8085/ws').split(',');
// Load goes to loopback only.
for (const url of urls)
  if (!/^127\.\d+\.\d+\.\d+$|^localhost$|^\[::1\]$/.test(new URL(url).hostname))
    throw new Error(`load: ${url} is not a loopback address`);
/** Makes user ids unique per run, so a server that outlives a run never sees a taken id. */
export const run = Math.random().toString(36).slice(2, 8);
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Each loopback source address has ~28k ephemeral ports; spreading over 4 allows ~110k sockets. */
const SOURCE_ADDRESSES = 4;
/**
 * The source addresses are in a /24 of 127/8 drawn per run: the ~20k TIME_WAIT sockets an earlier
 * run leaves behind keep their ports taken on their own addresses for a minute, and binding new
 * sockets among them slowed a 19,500-socket ramp tenfold.
 */
const SOURCE_NET = `127.${1 + Math.floor(Math.random() * 254)}.${Math.floor(Math.random() * 256)}`;

/** Opens `userId`'s socket to node `node` (mod N), from source address `index` (mod 4). */
export function open(userId: string, index = 0, node = index): Promise<WebSocket> {
  const url = urls[node % urls.length]!;
  const ws = new WebSocket(`${url}?userId=${encodeURIComponent(userId)}`, {
    headers: { origin: 'https://www.aleatoria.chat' },
    perMessageDeflate: false,
    localAddress: `${SOURCE_NET}.${1 + (index % SOURCE_ADDRESSES)}`,
    handshakeTimeout: 10_000,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * Opens one socket per id, `batch` handshakes at a time; the i-th to node `nodeOf(i)` (default:
 * round-robin, so a cluster's nodes share the clients evenly).
 */
export async function openAll(
  ids: string[],
  nodeOf: (i: number) => number = (i) => i,
  batch = 100,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let i = 0; i < ids.length; i += batch) {
    const opening = ids.slice(i, i + batch).map((id, j) => open(id, i + j, nodeOf(i + j)));
    sockets.push(...(await Promise.all(opening)));
  }
  return sockets;
}

/**
 * Latency histogram with 1% wide logarithmic buckets from 1 us to ~100 s: constant memory however
 * many samples, percentiles within 1%.
 */
export class Histogram {
  private static readonly MIN_MS = 0.001;
  private static readonly GROWTH = Math.log(1.01);
  private readonly buckets = new Float64Array(1900);
  count = 0;

  record(ms: number) {
    const at =
      ms <= Histogram.MIN_MS
        ? 0
        : Math.min(
            this.buckets.length - 1,
            Math.ceil(Math.log(ms / Histogram.MIN_MS) / Histogram.GROWTH),
          );
    this.buckets[at]!++;
    this.count++;
  }

  /** The upper edge of the bucket holding the p-th percentile, in ms (NaN without samples). */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let at = 0; at < this.buckets.length; at++) {
      seen += this.buckets[at]!;
      if (seen >= rank) return Histogram.MIN_MS * Math.exp(at * Histogram.GROWTH);
    }
    return NaN;
  }
}

const STAMP = '"messageId":"';
/** The send time a message carries in its messageId (set with `performance.now()`), or NaN. */
export function stampOf(data: RawData): number {
  const buffer = data as Buffer;
  const at = buffer.indexOf(STAMP);
  if (at < 0) return NaN;
  const start = at + STAMP.length;
  return Number(buffer.toString('latin1', start, buffer.indexOf('"', start)));
}

/**
 * Warm-up (a quarter of the window, 1 s at most), then the measurement window. The runner samples
 * the server's CPU when it reads the `measure` and `stop` lines, so per-core figures cover exactly
 * the window. Also returns this process's own CPU share over the window: near 1, the load
 * generator was the bottleneck.
 */
export async function measureWindow(
  durationMs: number,
  state: { measuring: boolean },
): Promise<{ wallMs: number; loadCpuShare: number }> {
  await sleep(Math.min(1000, durationMs / 4));
  console.log(JSON.stringify({ phase: 'measure' }));
  state.measuring = true;
  const started = performance.now();
  const cpu = process.cpuUsage();
  await sleep(durationMs);
  state.measuring = false;
  const used = process.cpuUsage(cpu);
  const wallMs = performance.now() - started;
  console.log(JSON.stringify({ phase: 'stop' }));
  return { wallMs, loadCpuShare: (used.user + used.system) / 1000 / wallMs };
}

export const latencies = (histogram: Histogram) => ({
  p50: histogram.percentile(50),
  p99: histogram.percentile(99),
});

/** `--ms`: the measurement window. */
export const durationArg = () => intArg('ms', 5000, 100, 120_000);

/**
 * The open loop's sender: every `--tick` ms, `sendOne()` is called as many times as `perSecond`
 * says are due by now, whatever came back. A stalled tick catches up, capped at 100 ms worth so a
 * long stall cannot turn into an unbounded burst. Returns the function that stops it.
 */
export function offer(perSecond: number, sendOne: () => void): () => void {
  const started = performance.now();
  let sent = 0;
  const timer = setInterval(
    () => {
      const due = Math.floor(((performance.now() - started) * perSecond) / 1000) - sent;
      sent += due;
      for (let i = Math.min(due, Math.ceil(perSecond / 10)); i > 0; i--) sendOne();
    },
    intArg('tick', 2, 1, 100),
  );
  return () => clearInterval(timer);
}

/**
 * Open loop at `--rate` messages/s (`offer`). Every message a `receivers` socket gets in the
 * window is a delivery, its latency read from the send time in its messageId.
 */
export async function openLoop(receivers: WebSocket[], perSecond: number, sendOne: () => void) {
  const histogram = new Histogram();
  const state = { measuring: false };
  let delivered = 0;
  for (const ws of receivers) {
    ws.on('message', (data) => {
      if (!state.measuring) return;
      delivered++;
      histogram.record(performance.now() - stampOf(data));
    });
  }
  const stop = offer(perSecond, sendOne);
  const measured = await measureWindow(durationArg(), state);
  stop();
  return { delivered, ...measured, offeredPerS: perSecond, ...latencies(histogram) };
}
