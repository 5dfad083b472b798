/**
 * `redis-hop`: the bare transport a cross-node DM adds, with no server around it: this process
 * PUBLISHes timestamped messages with ioredis at `--rate` (the `rate` scenario's open loop and
 * tick, `offer` in common.ts) to a redis-server (`--redis`, started by bench/targets.ts as a
 * cluster's is), and a second Node process it forks SUBSCRIBEs to the channel and records
 * publish -> receive latency in the scenarios' histogram. Publisher -> redis-server -> subscriber
 * is the part of client -> node A -> redis-server -> node B -> client that the single process does
 * not have: two more processes to wake, so this is the floor under what crossing nodes can add on
 * this machine. The subscriber inherits this process's CPU affinity (bench/run.ts pins it with the
 * nodes, or pins nothing with --spread).
 *
 * Each message is a chat DM's frame (bench/scenarios/dm.ts) behind the send time, read from the
 * system-wide monotonic clock (`process.hrtime`, CLOCK_MONOTONIC: the same in both processes,
 * unlike `performance.now()`, whose origin is each process's start).
 * Args: --redis URL --rate MSGS_PER_S --tick MS --ms DURATION
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import {
  arg,
  durationArg,
  Histogram,
  intArg,
  latencies,
  measureWindow,
  offer,
  run,
} from './common.ts';
import { directMessage } from './dm.ts';

const ROLE = 'BENCH_REDIS_HOP_ROLE';

/** Milliseconds on CLOCK_MONOTONIC, comparable across processes of this machine. */
function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1000 + nanoseconds / 1e6;
}

/** ioredis as the cluster's link opens it (src/cluster/redis.ts), minus its reconnection policy. */
const connect = (url: string) =>
  new Redis(url, { protocol: 2, maxRetriesPerRequest: 0, enableReadyCheck: true });

/** What the subscriber process reports at the end of the window. */
interface HopReport {
  delivered: number;
  p50: number;
  p99: number;
  cpuShare: number;
}

type ToSubscriber = { measure: true } | { stop: true };
type FromSubscriber = { ready: true } | { report: HopReport };

/** The subscriber process: counts and times what arrives between `measure` and `stop`. */
async function subscriber() {
  const redis = connect(process.env.BENCH_REDIS_HOP_URL!);
  const histogram = new Histogram();
  let measuring = false;
  let delivered = 0;
  let cpu = process.cpuUsage();
  let started = 0;
  redis.on('message', (_channel: string, message: string) => {
    if (!measuring) return;
    delivered++;
    histogram.record(monotonicMs() - Number(message.slice(0, message.indexOf('\n'))));
  });
  await redis.subscribe(process.env.BENCH_REDIS_HOP_CHANNEL!);
  const send = (message: FromSubscriber) => process.send!(message);
  process.on('message', (message: ToSubscriber) => {
    if ('measure' in message) {
      measuring = true;
      cpu = process.cpuUsage();
      started = performance.now();
    } else {
      measuring = false;
      const used = process.cpuUsage(cpu);
      const wallMs = performance.now() - started;
      send({
        report: {
          delivered,
          ...latencies(histogram),
          cpuShare: (used.user + used.system) / 1000 / wallMs,
        },
      });
      redis.disconnect();
      process.disconnect();
    }
  });
  send({ ready: true });
}

export async function redisHop() {
  const url = arg('redis', '');
  if (!/^redis:\/\/127\.\d+\.\d+\.\d+:\d+$/.test(url))
    throw new Error(`redis-hop: --redis must be a loopback redis:// URL, got "${url}"`);
  const perSecond = intArg('rate', 5000, 1, 200_000);
  const channel = `bench-hop-${run}`;
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [], {
    env: {
      ...process.env,
      [ROLE]: 'subscriber',
      BENCH_REDIS_HOP_URL: url,
      BENCH_REDIS_HOP_CHANNEL: channel,
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    const next = () =>
      new Promise<FromSubscriber>((resolve, reject) => {
        const onExit = (code: number | null) =>
          reject(new Error(`redis-hop: the subscriber exited with ${code}`));
        child.once('exit', onExit);
        child.once('message', (message: FromSubscriber) => {
          child.off('exit', onExit);
          resolve(message);
        });
      });
    await next();
    const publisher = connect(url);
    await new Promise<void>((resolve) => publisher.once('ready', () => resolve()));
    let seq = 0;
    const stop = offer(perSecond, () => {
      const frame = directMessage('chat', `r${run}${seq % 200}`, seq++);
      void publisher.publish(channel, `${monotonicMs()}\n${frame}`);
    });
    // The subscriber counts over the same window: told when it opens and when it closes.
    let measuring = false;
    const state = {
      get measuring() {
        return measuring;
      },
      set measuring(on: boolean) {
        measuring = on;
        child.send(on ? { measure: true } : { stop: true });
      },
    };
    const measured = await measureWindow(durationArg(), state);
    stop();
    const message = await next();
    publisher.disconnect();
    if (!('report' in message)) throw new Error('redis-hop: no report from the subscriber');
    const { delivered, p50, p99, cpuShare } = message.report;
    return {
      delivered,
      ...measured,
      offeredPerS: perSecond,
      p50,
      p99,
      // Both processes of the hop, for the runner to add to redis-server's CPU.
      hopCpuShare: measured.loadCpuShare + cpuShare,
      subscriberCpuShare: cpuShare,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

if (process.env[ROLE] === 'subscriber') await subscriber();
