/**
 * The servers `npm run bench` compares, launched as their npm scripts do (test/contract/launchers.ts),
 * each in its own process group, pinned to core 0 once started. The CPU and memory read for a
 * server are those of the processes that serve: found from the listening port (/proc/net/tcp ->
 * socket inode -> /proc/PID/fd), then, for workerd, every `workerd` process of that group
 * (`wrangler dev` runs two: a proxy worker on the public port and the Worker with its Durable
 * Object behind it; every frame crosses both, so both count). workerd runs twice (`workerd1`,
 * `workerd4`): `GATEWAY_SHARDS=1` and `=4`, every Durable Object of either in that one Worker
 * process.
 *
 * A cluster (`cluster2`, `cluster4`: `npm run bench -- --cluster`) is N Node processes started as
 * the Node target is, with `REDIS_URL` and `NODE_ID`, and one `redis-server`
 * (test/contract/cluster-launcher.ts). All of them are pinned to core 0, the one core the single
 * Node server gets: with 2 vCPUs there is no core per node, and on one core "per core" stays
 * comparable with the single process. Its CPU is every node's plus redis-server's.
 *
 * `redisHop` is no server: a redis-server alone, started and pinned as a cluster's, for the
 * `redis-hop` load scenario (bench/scenarios/redis-hop.ts) to measure the bare PUBLISH ->
 * subscriber hop through it, the floor under what crossing nodes adds.
 *
 * `unpin()` (`npm run bench -- --spread`) pins nothing from then on: servers, redis-server and the
 * load generator run wherever the scheduler puts them, so a cluster's nodes can run in parallel.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { startRedis } from '../test/cluster/redis-server.ts';
import { launchCluster } from '../test/contract/cluster-launcher.ts';
import type { LaunchedServer } from '../test/contract/harness.ts';
import {
  launchCloudflare,
  launchDeno,
  launchNode,
  launchProcess,
  procRss,
  procStat,
} from '../test/contract/launchers.ts';

export type TargetName =
  | 'baseline'
  | 'node'
  | 'deno'
  | 'workerd1'
  | 'workerd4'
  | 'nodeHistoryOff'
  | 'cluster2'
  | 'cluster4'
  | 'redisHop';
export const RUNTIMES = ['node', 'deno', 'workerd'] as const;
/**
 * What `workerd` runs (issue 14): the same Worker twice, by its count of gateway objects
 * (`GATEWAY_SHARDS`). One gateway holds every socket, the old "one hub object" shape (rooms and
 * the matchmaker are their own objects all the same); four spread userIds by hash.
 */
export const WORKERD = { workerd1: 1, workerd4: 4 } as const;
export const isWorkerd = (name: TargetName): name is keyof typeof WORKERD => name in WORKERD;
/** The clusters `--cluster` measures, by their count of Node processes. */
export const CLUSTERS = { cluster2: 2, cluster4: 4 } as const;
const isCluster = (name: TargetName): name is keyof typeof CLUSTERS => name in CLUSTERS;

/**
 * Every limit of src/core/config.ts a scenario could hit, lifted so that the bench measures the
 * server, not its abuse protection (the baseline has none):
 *   RATE_LIMIT_PER_SECOND / RATE_LIMIT_BURST: 1,000,000 (the maximum), per connection;
 *   MATCHES_PER_MINUTE: 100,000 (the maximum) per user: its burst alone outlasts any run
 *     (a match client asks some 25 times a second);
 *   MAX_CONNECTIONS_PER_IP: 0 (off; the default, stated): idle opens 19,500 sockets from 4 addresses;
 *   SEND_QUEUE_MAX_BYTES: 64 MiB, so a load generator that falls behind for a moment on a room
 *     broadcast is measured, not closed with 1013;
 *   MAX_ROOMS_PER_CONNECTION (32), MAX_MESSAGE_BYTES (64 KiB), heartbeat (54 s): not reached.
 */
export const OURS_ENV: Record<string, string> = {
  LOG_LEVEL: 'error',
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  MATCHES_PER_MINUTE: '100000',
  MAX_CONNECTIONS_PER_IP: '0',
  SEND_QUEUE_MAX_BYTES: String(64 * 1024 * 1024),
};

export const LABELS: Record<TargetName, string> = {
  baseline: 'raw ws (Node)',
  node: 'ours Node',
  deno: 'ours Deno',
  workerd1: 'ours workerd, 1 gateway (one hub object)',
  workerd4: 'ours workerd, 4 gateways (sharded)',
  nodeHistoryOff: 'ours Node, HISTORY=off',
  cluster2: 'ours Node, 2 nodes + Redis',
  cluster4: 'ours Node, 4 nodes + Redis',
  redisHop: 'bare Redis hop',
};

export const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();

let pinning = hasTaskset;
/** Pins nothing from now on (`--spread`). */
export function unpin() {
  pinning = false;
}
/** Whether processes are pinned (taskset exists and `unpin` was not called). */
export const pinned = () => pinning;

/** `command args` to run pinned to `core`, when pinning. */
export const pinnedCommand = (core: number, command: string, args: string[]): [string, string[]] =>
  pinning ? ['taskset', ['-c', String(core), command, ...args]] : [command, args];

export interface Server {
  /** Every node's base URL (one, but for a cluster); the load generator spreads over them. */
  baseUrls: string[];
  /** `redisHop`'s redis-server, `redis://127.0.0.1:PORT` (no base URL then). */
  redisUrl?: string;
  /** CPU seconds (user + system) of each serving process so far; undefined when they were not found. */
  cpuSeconds: (() => number[]) | undefined;
  /** Their resident memory, bytes. */
  rss: (() => number) | undefined;
  /** The serving processes (the one listening on the port first; a cluster's redis-server last). */
  pids: number[];
  /** Their command names, in the same order (`redis-server` tells Redis's share apart). */
  names: string[];
  stop(): Promise<void>;
}

/** A reading of a process that may have died meanwhile (a NaN figure is dropped from medians). */
const orElse = <T>(read: () => T, fallback: T): T => {
  try {
    return read();
  } catch {
    return fallback;
  }
};
const pids = () =>
  readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);

/** The process holding the socket that listens on `port` (loopback, IPv4 or IPv6). */
function listenerOf(port: number): number | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT; state 0A is LISTEN; column 9 is the inode.
      if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === '0A') inodes.add(`socket:[${cols[9]}]`);
    }
  }
  for (const pid of pids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return pid;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}

/** The processes that serve: the listener, and for workerd every other workerd of its process group. */
function servingProcesses(port: number, workerd: boolean): { serving: number[]; group: number[] } {
  const listener = listenerOf(port);
  if (listener === undefined) return { serving: [], group: [] };
  const pgrp = procStat(listener).pgrp;
  const group = pids().filter((pid) => {
    try {
      return procStat(pid).pgrp === pgrp;
    } catch {
      return false;
    }
  });
  // The listener first: for workerd that is the proxy worker, then the Worker's own process.
  const others = group.filter((pid) => pid !== listener && procStat(pid).comm === 'workerd');
  return { serving: workerd ? [listener, ...others] : [listener], group };
}

function launch(
  name: Exclude<TargetName, keyof typeof CLUSTERS | 'redisHop'>,
  extra: Record<string, string>,
): Promise<LaunchedServer> {
  const env = { ...OURS_ENV, ...extra };
  switch (name) {
    case 'baseline':
      return launchProcess(process.execPath, ['--import', 'tsx', 'bench/baseline-server.ts'], {});
    case 'node':
      return launchNode(env);
    case 'nodeHistoryOff':
      return launchNode({ ...env, HISTORY: 'off' });
    case 'deno':
      return launchDeno(env);
    case 'workerd1':
    case 'workerd4':
      // A scenario's own GATEWAY_SHARDS wins (bench/workerd-ceilings.ts --shards).
      return launchCloudflare({ GATEWAY_SHARDS: String(WORKERD[name]), ...env });
  }
}

/** Pins every thread of each of `pids` to core 0 (when pinning). */
function pinToCore0(pids: number[]) {
  for (const pid of pinning ? pids : []) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' });
    } catch {
      // Gone already (a short-lived helper of wrangler's).
    }
  }
}

/** A started server whose CPU and memory are read from `serving` (none found: not read). */
function measured(baseUrls: string[], serving: number[], stop: () => Promise<void>): Server {
  const found = serving.length > 0;
  return {
    baseUrls,
    pids: serving,
    names: serving.map((pid) => orElse(() => procStat(pid).comm, '?')),
    cpuSeconds: found
      ? () => serving.map((pid) => orElse(() => procStat(pid).cpuSeconds, NaN))
      : undefined,
    rss: found
      ? () => serving.reduce((sum, pid) => sum + orElse(() => procRss(pid), NaN), 0)
      : undefined,
    stop,
  };
}

/** What the scheduler says of one thread: its time on a CPU and runnable but waiting for one (ns). */
export interface SchedStat {
  runNs: number;
  waitNs: number;
  /** Times it was given a CPU: a wake-up, or a turn back after being preempted. */
  runs: number;
}

/**
 * `/proc/PID/schedstat`: the process's main thread, which is the event loop of a Node, Deno or
 * Redis process (undefined once it is gone, or where the kernel keeps no schedstats).
 */
export function schedStat(pid: number): SchedStat | undefined {
  const fields = orElse(() => readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' '), []);
  if (fields.length < 3) return undefined;
  return { runNs: Number(fields[0]), waitNs: Number(fields[1]), runs: Number(fields[2]) };
}

/**
 * The mean wait for a CPU per run (us) of the threads read as `before` then `after`: how long an
 * event loop that had work sat runnable while others held the cores.
 */
export function waitPerRun(
  before: (SchedStat | undefined)[],
  after: (SchedStat | undefined)[],
): number | undefined {
  let waitNs = 0;
  let runs = 0;
  for (const [i, end] of after.entries()) {
    const start = before[i];
    if (!start || !end) continue;
    waitNs += end.waitNs - start.waitNs;
    runs += end.runs - start.runs;
  }
  return runs > 0 ? waitNs / runs / 1000 : undefined;
}

const portOf = (baseUrl: string) => Number(new URL(baseUrl).port);

/**
 * Starts `nodes` Node processes sharing a new redis-server, pins them all to core 0 and reads the
 * CPU of every node and of redis-server. Stopping stops the nodes (by process group), then Redis.
 */
async function startCluster(nodes: number, env: Record<string, string>): Promise<Server> {
  const cluster = await launchCluster(
    { ...OURS_ENV, ...env },
    Array.from({ length: nodes }, () => 'node' as const),
  );
  try {
    const found = cluster.nodes.map((node) => servingProcesses(portOf(node.baseUrl), false));
    pinToCore0([...found.flatMap((f) => f.group), cluster.redis.pid]);
    const listeners = found.flatMap((f) => f.serving);
    return measured(
      cluster.nodes.map((node) => node.baseUrl),
      listeners.length === nodes ? [...listeners, cluster.redis.pid] : [],
      () => cluster.stop(),
    );
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

/** A redis-server alone, pinned as a cluster's (`redisHop`); its CPU is read, the load adds its own. */
async function startRedisAlone(): Promise<Server> {
  const redis = await startRedis();
  pinToCore0([redis.pid]);
  return { ...measured([], [redis.pid], () => redis.stop()), redisUrl: redis.url };
}

/** Starts `name`, pins its process group to core 0 and finds the processes whose CPU counts. */
export async function startServer(
  name: TargetName,
  env: Record<string, string> = {},
): Promise<Server> {
  if (isCluster(name)) return startCluster(CLUSTERS[name], env);
  if (name === 'redisHop') return startRedisAlone();
  const server = await launch(name, env);
  try {
    const { serving, group } = servingProcesses(portOf(server.baseUrl), isWorkerd(name));
    pinToCore0(group);
    return measured([server.baseUrl], serving, () => server.stop());
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/**
 * Runs `script` again with `argv` inside a network namespace with loopback only
 * (scripts/isolated.sh), as workerd must run, and exits with its status once `afterwards` (the
 * cleaning up after wrangler) has run.
 */
export function runIsolated(
  script: string,
  argv: readonly string[],
  afterwards?: () => void,
): never {
  const result = spawnSync(
    'bash',
    ['scripts/isolated.sh', process.execPath, '--import', 'tsx', script, ...argv],
    {
      stdio: 'inherit',
      env: {
        ...process.env,
        ALEATORIA_BENCH_ISOLATED: '1',
        WRANGLER_SEND_METRICS: 'false',
        CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      },
    },
  );
  afterwards?.();
  process.exit(result.status ?? 1);
}
