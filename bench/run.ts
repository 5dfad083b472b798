/**
 * `npm run bench [-- --quick] [-- --runtime node|deno|workerd|all | --cluster]
 * [-- --scenarios room,match]`: our server against the raw-ws baseline (bench/baseline-server.ts),
 * alternately in one invocation, same machine, same minutes: for every scenario and repetition,
 * each server is started fresh and loaded in turn. Server and load generator run in separate
 * processes pinned to different cores (when `taskset` exists). "Per core" = rate / the server's
 * CPU share over the measurement window (CPU seconds from /proc over wall seconds), which stays
 * comparable when other work shares the machine. Figures are medians over the repetitions (3, or
 * 1 with --quick). `--runtime all` runs Node, Deno and workerd, each against the same Node raw-ws
 * baseline of the run. workerd runs twice, with one gateway object (`GATEWAY_SHARDS=1`, the old
 * "one hub object") and with four (sharded), and the table adds their ratio (issue 14).
 * workerd runs inside a network namespace with loopback only: the runner
 * re-executes itself through scripts/isolated.sh when it needs one. Prints one markdown table,
 * writes JSON to bench/results/.
 *
 * `--cluster` compares clusters over Redis with one Node process instead (issue 13): the single
 * process (REDIS_URL unset) is the reference, then 2 and 4 Node nodes sharing one redis-server
 * (bench/targets.ts). Every DM crosses nodes and match clients are spread over all of them
 * (bench/scenarios/common.ts). Nodes and redis-server share core 0, so "per core" counts all of
 * their CPU against the one core the single process has. Beside the clusters, `rate` and
 * `rate-light` measure the bare Redis hop at the same offered rate (`redisHop`: one process
 * PUBLISHing, another SUBSCRIBEd, through a redis-server started and pinned as a cluster's;
 * bench/scenarios/redis-hop.ts): the floor under what crossing nodes adds on this machine.
 *
 * `--spread` pins nothing (servers, redis-server, the load generator, the hop's processes): a
 * cluster's nodes can then run in parallel on every core, as on separate machines. CPU is still
 * read per process from /proc, so "per core" keeps its meaning.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, constants as osConstants } from 'node:os';
import {
  CLUSTERS,
  hasTaskset,
  LABELS,
  pinned,
  pinnedCommand,
  RUNTIMES,
  runIsolated,
  type SchedStat,
  schedStat,
  startServer,
  isWorkerd,
  type Server,
  type TargetName,
  unpin,
  WORKERD,
  waitPerRun,
} from './targets.ts';

const argv = process.argv.slice(2);
const option = (name: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined;
const quick = argv.includes('--quick');
const runtimeOption = option('runtime') ?? 'node';
const cluster = argv.includes('--cluster');
/** Pin nothing: every process goes where the scheduler puts it. */
const spread = argv.includes('--spread');
if (spread) unpin();
if (cluster && runtimeOption !== 'node') {
  console.error('--cluster: clusters of Node processes only, against one Node process');
  process.exit(2);
}
if (runtimeOption !== 'all' && !(RUNTIMES as readonly string[]).includes(runtimeOption)) {
  console.error(`--runtime: expected ${RUNTIMES.join(', ')} or all, got ${runtimeOption}`);
  process.exit(2);
}
// workerd is measured twice, with one gateway object and with four (bench/targets.ts, issue 14).
const runtimes: TargetName[] = (runtimeOption === 'all' ? [...RUNTIMES] : [runtimeOption]).flatMap(
  (runtime) =>
    runtime === 'workerd' ? (Object.keys(WORKERD) as TargetName[]) : [runtime as TargetName],
);
const withWorkerd = runtimes.some(isWorkerd);
/** Both workerd shapes run: the table gets a column of four gateways against one. */
const shardColumn = runtimes.includes('workerd1') && runtimes.includes('workerd4');

// workerd must not reach outside: run the whole bench in a loopback-only network namespace.
if (withWorkerd && !process.env.ALEATORIA_BENCH_ISOLATED) runIsolated('bench/run.ts', argv);

const reps = quick ? 1 : 3;
const sizes = quick
  ? {
      durationMs: 2000,
      pairs: 100,
      window: 8,
      rateOffered: cluster ? 5000 : 10_000,
      lightRate: 1000,
      ratePairs: 100,
      rooms: 5,
      members: 20,
      roomRate: 500,
      matchClients: 1000,
      matchHoldMs: 2,
      idleSockets: 2000,
      workerdIdleSockets: 2000,
      idleHoldMs: 2000,
      historyRate: 2000,
      historyMs: 5000,
    }
  : {
      durationMs: 8000,
      pairs: 200,
      window: 8,
      rateOffered: cluster ? 5000 : 10_000,
      lightRate: 1000,
      ratePairs: 200,
      rooms: 10,
      members: 50,
      roomRate: 1000,
      matchClients: 1000,
      matchHoldMs: 2,
      idleSockets: 19_500,
      workerdIdleSockets: 2000,
      idleHoldMs: 45_000,
      historyRate: 5000,
      historyMs: 20_000,
    };
// Right after a ramp, RSS is mostly the heap's high-water mark from the garbage of the handshakes;
// V8's memory reducer gives that back after some 30 s without allocation. So the full run also
// holds the sockets `idleHoldMs` and reports the lowest RSS read meanwhile ("settled").
// `wrangler dev` holds ~0.3 MB and takes ~6 ms per idle socket (two workerd processes, see
// bench/targets.ts), and all three 5,000-socket ramps tried ended in "socket hang up": so
// workerd's idle run holds 2,000.

/** What one load run reports (bench/scenarios/*), plus what the runner read from /proc. */
interface Measurement {
  [field: string]: unknown;
  delivered?: number;
  wallMs?: number;
  p50?: number;
  p99?: number;
  violations?: number;
  /** Server CPU seconds per wall second over the measurement window. */
  cpuShare?: number;
  /** redis-server's part of `cpuShare` (a cluster only). */
  redisCpuShare?: number;
  /** The bare Redis hop's publisher and subscriber processes (the load reports them). */
  hopCpuShare?: number;
  /** The server processes' mean wait for a CPU per run over the window, us (`waitPerRun`). */
  cpuWaitUs?: number;
  /** The load generator's. */
  loadCpuWaitUs?: number;
  rate?: number;
  perCore?: number;
  perThousandMb?: number;
  at10sPerThousandMb?: number;
  settledPerThousandMb?: number;
  connectsPerS?: number;
  rssGrowthMb?: number;
}

interface Metric {
  name: string;
  value: (m: Measurement) => number | undefined;
  /** Decimals shown. */
  digits: number;
  /** A count that must be 0 in every run (summed over them; no ratio; the run fails otherwise). */
  mustBeZero?: boolean;
  /** The ratio to the reference should stay at or under this. */
  maxRatio?: number;
  /** The ratio to the reference should stay at or above this. */
  minRatio?: number;
  /** The value should exceed the reference's by at most this (in its own unit). */
  maxExcess?: number;
  /** Show the excess over the reference (`+x`) instead of the ratio (implied by `maxExcess`). */
  showExcess?: boolean;
}

interface Scenario {
  key: string;
  title: string;
  /** Server variables on top of the bench's own (`OURS_ENV`). */
  env?: Record<string, string>;
  /** Servers measured beside the runtimes for a comparison of their own (HISTORY=off). */
  extraTargets?: TargetName[];
  /**
   * With --cluster, the bare Redis hop is measured too, at this offered rate (msgs/s), with the
   * `redis-hop` load scenario (its own column).
   */
  hopRate?: number;
  args: (target: TargetName) => string[];
  metrics: Metric[];
}

const rate = (name: string): Metric => ({ name, value: (m) => m.rate, digits: 0 });
const perCore = (name: string, minRatio?: number): Metric => ({
  name: `${name} per core${minRatio ? ` (target >= ${minRatio}x)` : ''}`,
  value: (m) => m.perCore,
  digits: 0,
  minRatio,
});
const latency = (p: 'p50' | 'p99', maxRatio?: number): Metric => ({
  name: `${p} latency ms${maxRatio ? ` (target <= ${maxRatio}x)` : ''}`,
  value: (m) => m[p],
  digits: 2,
  maxRatio,
});
/** Issue 13: a DM across nodes may take at most half a millisecond more than within one process. */
const clusterP50: Metric = {
  name: 'p50 latency ms (target <= 1 process + 0.5 ms)',
  value: (m) => m.p50,
  digits: 2,
  maxExcess: 0.5,
};
/** The bare Redis hop at `rate` msgs/s (bench/scenarios/redis-hop.ts), for `redisHop`. */
const hopArgs = (rate: number) => [
  '--kind',
  'redis-hop',
  '--rate',
  String(rate),
  '--ms',
  String(sizes.durationMs),
];
/** Where a cluster's CPU goes: every server process, and redis-server's part of it. */
const CPU_METRICS: Metric[] = [
  {
    name: 'server CPU, cores (all nodes + Redis; hop: both processes + Redis)',
    value: (m) => m.cpuShare,
    digits: 2,
  },
  { name: 'of which redis-server, cores', value: (m) => m.redisCpuShare, digits: 2 },
  // Each process a DM crosses can be runnable and not running: with more processes than cores
  // this wait, paid at every hop, is what crossing nodes costs beyond the work.
  {
    name: 'wait for a CPU per wake-up, us: server processes',
    value: (m) => m.cpuWaitUs,
    digits: 0,
  },
  {
    name: 'wait for a CPU per wake-up, us: load generator',
    value: (m) => m.loadCpuWaitUs,
    digits: 0,
  },
];
const ms = ['--ms', String(sizes.durationMs)];
// What storing chat history costs: Node with it (the default) beside Node with HISTORY=off.
const historyOff: TargetName[] = runtimes.includes('node') && !cluster ? ['nodeHistoryOff'] : [];
const historyRooms = 100;
const historyMessages = sizes.historyRate * (sizes.historyMs / 1000);

const SCENARIOS: Scenario[] = [
  {
    key: 'relay',
    title: `DM relay (webrtc_candidate, init nested in payload.candidate), ${sizes.pairs} pairs, window ${sizes.window}`,
    args: () => [
      '--kind',
      'relay',
      '--pairs',
      String(sizes.pairs),
      '--window',
      String(sizes.window),
      ...ms,
    ],
    metrics: [
      rate('msgs/s'),
      perCore('msgs/s', cluster ? 0.5 : undefined),
      latency('p50'),
      latency('p99'),
    ],
  },
  {
    key: 'relay-flat',
    title: `DM relay (webrtc_candidate, payload: e.candidate), ${sizes.pairs} pairs, window ${sizes.window}`,
    args: () => [
      '--kind',
      'relay-flat',
      '--pairs',
      String(sizes.pairs),
      '--window',
      String(sizes.window),
      ...ms,
    ],
    metrics: [rate('msgs/s'), perCore('msgs/s'), latency('p50'), latency('p99')],
  },
  {
    key: 'chat',
    title: `DM chat with sender copy, ${sizes.pairs} pairs, window ${sizes.window}`,
    extraTargets: historyOff,
    args: () => [
      '--kind',
      'chat',
      '--pairs',
      String(sizes.pairs),
      '--window',
      String(sizes.window),
      ...ms,
    ],
    metrics: [rate('msgs/s'), perCore('msgs/s'), latency('p50'), latency('p99')],
  },
  {
    key: 'rate',
    title: `DM chat at ${sizes.rateOffered.toLocaleString('en')} msgs/s offered, ${sizes.ratePairs} pairs`,
    hopRate: sizes.rateOffered,
    args: (target) =>
      target === 'redisHop'
        ? hopArgs(sizes.rateOffered)
        : [
            '--kind',
            'rate',
            '--pairs',
            String(sizes.ratePairs),
            '--rate',
            String(sizes.rateOffered),
            ...ms,
          ],
    metrics: [
      rate('delivered msgs/s'),
      perCore('delivered msgs/s'),
      ...(cluster ? [clusterP50, latency('p99')] : [latency('p50'), latency('p99', 1.2)]),
    ],
  },
  {
    key: 'rate-light',
    title: `DM chat at ${sizes.lightRate.toLocaleString('en')} msgs/s offered, ${sizes.ratePairs} pairs`,
    hopRate: sizes.lightRate,
    args: (target) =>
      target === 'redisHop'
        ? hopArgs(sizes.lightRate)
        : [
            '--kind',
            'rate',
            '--pairs',
            String(sizes.ratePairs),
            '--rate',
            String(sizes.lightRate),
            ...ms,
          ],
    metrics: [
      rate('delivered msgs/s'),
      perCore('delivered msgs/s'),
      cluster
        ? { ...latency('p50'), name: 'p50 latency ms (above 1 process)', showExcess: true }
        : latency('p50'),
      latency('p99'),
    ],
  },
  {
    key: 'room',
    title: `room: ${sizes.rooms} rooms x ${sizes.members} members, ${sizes.roomRate.toLocaleString('en')} msgs/s offered`,
    extraTargets: historyOff,
    args: () => [
      '--kind',
      'room',
      '--rooms',
      String(sizes.rooms),
      '--members',
      String(sizes.members),
      '--rate',
      String(sizes.roomRate),
      ...ms,
    ],
    metrics: [rate('deliveries/s'), perCore('deliveries/s'), latency('p50'), latency('p99')],
  },
  {
    key: 'match',
    title: `match: ${sizes.matchClients.toLocaleString('en')} clients cycling available -> request -> hangup`,
    args: () => [
      '--kind',
      'match',
      '--clients',
      String(sizes.matchClients),
      '--hold',
      String(sizes.matchHoldMs),
      ...ms,
    ],
    metrics: [
      rate('matches/s'),
      perCore('matches/s'),
      {
        name: `invariant violations${reps > 1 ? `, all ${reps} runs` : ''} (must be 0)`,
        value: (m) => m.violations,
        digits: 0,
        mustBeZero: true,
      },
    ],
  },
  {
    key: 'history-memory',
    title: `history memory: ${historyMessages.toLocaleString('en')} room messages kept (${historyRooms} rooms x ${historyMessages / historyRooms}), default HISTORY_MAX_BYTES`,
    env: { HISTORY_LIMIT: String(historyMessages / historyRooms) },
    extraTargets: historyOff,
    args: () => [
      '--kind',
      'room',
      '--rooms',
      String(historyRooms),
      '--members',
      '1',
      '--rate',
      String(sizes.historyRate),
      '--ms',
      String(sizes.historyMs),
    ],
    metrics: [
      rate('messages/s'),
      { name: 'server RSS growth MB over the window', value: (m) => m.rssGrowthMb, digits: 1 },
    ],
  },
  {
    key: 'idle',
    title: `idle: ${sizes.idleSockets.toLocaleString('en')} sockets${withWorkerd && sizes.workerdIdleSockets !== sizes.idleSockets ? ` (workerd: ${sizes.workerdIdleSockets.toLocaleString('en')})` : ''}`,
    args: (target) => [
      '--kind',
      'idle',
      '--sockets',
      String(isWorkerd(target) ? sizes.workerdIdleSockets : sizes.idleSockets),
      '--timeout',
      String(sizes.idleHoldMs + 120_000),
    ],
    metrics: [
      {
        name: 'server RSS per 1,000 sockets MB, 2 s after the ramp',
        value: (m) => m.perThousandMb,
        digits: 2,
      },
      ...(sizes.idleHoldMs > 10_000
        ? [
            {
              name: 'server RSS per 1,000 sockets MB, 10 s after the ramp (target <= 1.25x)',
              value: (m: Measurement) => m.at10sPerThousandMb,
              digits: 2,
              maxRatio: 1.25,
            },
          ]
        : []),
      ...(sizes.idleHoldMs > 2000
        ? [
            {
              name: `server RSS per 1,000 sockets MB, settled (lowest in ${sizes.idleHoldMs / 1000} s)`,
              value: (m: Measurement) => m.settledPerThousandMb,
              digits: 2,
            },
          ]
        : []),
      { name: 'connects/s', value: (m) => m.connectsPerS, digits: 0 },
    ],
  },
];
// By default: issue 13's three figures with --cluster (and the hop at a load the clusters carry),
// otherwise every scenario but that one.
const only =
  option('scenarios')?.split(',') ??
  (cluster
    ? ['rate', 'rate-light', 'relay', 'match']
    : SCENARIOS.map((s) => s.key).filter((key) => key !== 'rate-light'));
const scenarios = SCENARIOS.filter((s) => only.includes(s.key)).map((s) =>
  cluster && s.key !== 'idle' ? { ...s, metrics: [...s.metrics, ...CPU_METRICS] } : s,
);
/** The bare Redis hop's column, when a cluster scenario measures it. */
const hopColumn: TargetName[] =
  cluster && scenarios.some((s) => s.hopRate !== undefined) ? ['redisHop'] : [];

/** The load generator running now, killed should the runner exit before it. */
let loadRunning: ReturnType<typeof spawn> | undefined;
process.once('exit', () => loadRunning?.kill('SIGKILL'));
// Ctrl-C or a kill: exit through the `exit` hooks, which SIGKILL every server's process group
// (test/contract/launchers.ts) and redis-server (test/cluster/redis-server.ts) by their PIDs.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(signal, () => process.exit(128 + osConstants.signals[signal]));

/**
 * Runs bench/load.ts pinned to `core` (1, but for the bare Redis hop, whose publisher stands for
 * a node) and returns its result line. `onLine` sees every JSON line as it comes (phases,
 * readiness); a load that outlives its own watchdog is killed.
 */
function runLoad(
  server: Server,
  args: string[],
  onLine: (line: Record<string, unknown>, stdin: NodeJS.WritableStream, loadPid: number) => void,
  core = 1,
): Promise<Measurement> {
  const [command, commandArgs] = pinnedCommand(core, process.execPath, [
    '--import',
    'tsx',
    'bench/load.ts',
    ...(server.redisUrl
      ? ['--redis', server.redisUrl]
      : [
          '--url',
          server.baseUrls.map((baseUrl) => `${baseUrl.replace('http', 'ws')}/ws`).join(','),
        ]),
    ...args,
  ]);
  const child = spawn(command, commandArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
  loadRunning = child;
  const killer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    errors = (errors + chunk.toString()).slice(-1000);
  });
  let pending = '';
  let last: Measurement | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (!line.startsWith('{')) continue;
      last = JSON.parse(line) as Measurement;
      onLine(last, child.stdin, child.pid!);
    }
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      loadRunning = undefined;
      if (code === 0 && last) resolve(last);
      else
        reject(
          new Error(
            `load ${args[1]} exited with ${code ?? signal}${errors.trim() ? `: ${errors.trim().split('\n').at(-1)}` : ''}`,
          ),
        );
    });
  });
}

/**
 * One server, one load run: the rate over the window and the server's CPU share over it (summed
 * over its processes; each one's share is kept too, for workerd's two). For the bare Redis hop,
 * the load is itself part of what is measured: its two processes' CPU is added to redis-server's.
 */
async function measureLoad(server: Server, args: string[], core?: number): Promise<Measurement> {
  let cpuAt: number[] | undefined;
  let wallAt = 0;
  let cpuShares: number[] | undefined;
  let rssAt: number | undefined;
  let rssGrowthMb: number | undefined;
  const schedStats = (loadPid: number) => [...server.pids, loadPid].map(schedStat);
  let schedAt: (SchedStat | undefined)[] = [];
  let cpuWaitUs: number | undefined;
  let loadCpuWaitUs: number | undefined;
  const result = await runLoad(
    server,
    args,
    (line, _stdin, loadPid) => {
      if (line.phase === 'measure') {
        schedAt = schedStats(loadPid);
        cpuAt = server.cpuSeconds?.();
        rssAt = server.rss?.();
        wallAt = performance.now();
      } else if (line.phase === 'stop' && cpuAt !== undefined) {
        const wallS = (performance.now() - wallAt) / 1000;
        cpuShares = server.cpuSeconds!().map((seconds, i) => (seconds - cpuAt![i]!) / wallS);
        const schedNow = schedStats(loadPid);
        cpuWaitUs = waitPerRun(schedAt.slice(0, -1), schedNow.slice(0, -1));
        loadCpuWaitUs = waitPerRun(schedAt.slice(-1), schedNow.slice(-1));
        const rss = server.rss?.();
        if (rss !== undefined && rssAt !== undefined) rssGrowthMb = (rss - rssAt) / 1048576;
      }
    },
    core,
  );
  const serverShare = cpuShares?.reduce((sum, share) => sum + share, 0);
  const cpuShare =
    serverShare === undefined ? undefined : serverShare + Number(result.hopCpuShare ?? 0);
  const redisCpuShare = server.names.includes('redis-server')
    ? cpuShares?.reduce(
        (sum, share, i) => sum + (server.names[i] === 'redis-server' ? share : 0),
        0,
      )
    : undefined;
  const rate = (result.delivered ?? NaN) / ((result.wallMs ?? NaN) / 1000);
  return {
    ...result,
    cpuShare,
    cpuShares,
    redisCpuShare,
    cpuWaitUs,
    loadCpuWaitUs,
    rssGrowthMb,
    rate,
    perCore: cpuShare === undefined ? undefined : rate / Math.max(cpuShare, 0.01),
  };
}

/**
 * Opens the idle sockets and reads the server's RSS 2 s after they are all open, then every second
 * until `idleHoldMs` (the lowest reading is the settled one).
 */
async function measureIdle(server: Server, args: string[]): Promise<Measurement> {
  await new Promise((r) => setTimeout(r, 500));
  const rssBefore = server.rss?.();
  let rssAfter: number | undefined;
  let rssAt10s: number | undefined;
  let rssSettled: number | undefined;
  const result = await runLoad(server, args, (line, stdin) => {
    if (line.ready !== true) return;
    const readyAt = performance.now();
    const read = () => {
      const rss = server.rss?.();
      rssAfter ??= rss;
      // What a connect storm leaves 10 s on, before V8's memory reducer: what sizes a machine.
      if (rssAt10s === undefined && performance.now() - readyAt >= 10_000) rssAt10s = rss;
      if (rss !== undefined) rssSettled = Math.min(rssSettled ?? rss, rss);
      if (performance.now() - readyAt >= sizes.idleHoldMs) stdin.end();
      else setTimeout(read, 1000);
    };
    setTimeout(read, 2000);
  });
  const sockets = Number(result.sockets);
  const perThousand = (rss: number | undefined) =>
    rssBefore === undefined || rss === undefined
      ? undefined
      : (rss - rssBefore) / 1048576 / (sockets / 1000);
  return {
    ...result,
    perThousandMb: perThousand(rssAfter),
    at10sPerThousandMb: perThousand(rssAt10s),
    settledPerThousandMb: perThousand(rssSettled),
    connectsPerS: sockets / (Number(result.connectMs) / 1000),
    rssAfterMb: rssAfter === undefined ? undefined : rssAfter / 1048576,
  };
}

async function measure(target: TargetName, scenario: Scenario): Promise<Measurement> {
  const server = await startServer(target, scenario.env);
  try {
    const args = scenario.args(target);
    const result = await (scenario.key === 'idle'
      ? measureIdle(server, args)
      : measureLoad(server, args, target === 'redisHop' ? 0 : 1));
    return { ...result, serverPids: server.pids, serverProcesses: server.names };
  } finally {
    await server.stop();
  }
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const version = (command: string, args: string[]) =>
    spawnSync(command, args, { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() || undefined;
  return {
    nproc: availableParallelism(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    node: process.version,
    ...(runtimes.includes('deno')
      ? { deno: version('node_modules/.bin/deno', ['--version']) }
      : {}),
    ...(withWorkerd
      ? { wrangler: version(process.execPath, ['node_modules/.bin/wrangler', '--version']) }
      : {}),
    loadAverage: loadavg().map((n) => Number(n.toFixed(2))),
    taskset: hasTaskset,
    pinned: pinned(),
  };
}

const median = (values: number[]) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length === 0 ? undefined : sorted[Math.floor(sorted.length / 2)];
};

const info = machine();
/** What the ratios are taken against, and what is compared with it. */
const reference: TargetName = cluster ? 'node' : 'baseline';
const compared: TargetName[] = cluster ? (Object.keys(CLUSTERS) as TargetName[]) : runtimes;
const targets: TargetName[] = [reference, ...compared];
/** Every target a scenario runs: the compared ones, the hop's, and its own extras. */
const targetsOf = (scenario: Scenario): TargetName[] => [
  ...targets,
  ...(cluster && scenario.hopRate !== undefined ? hopColumn : []),
  ...(scenario.extraTargets ?? []),
];
console.log(
  `bench: ${info.nproc} cores (${info.cpu}), Node ${info.node}${info.deno ? `, ${info.deno}` : ''}${info.wrangler ? `, wrangler ${info.wrangler}` : ''}, load average ${info.loadAverage.join(' ')}, taskset ${info.taskset ? 'on' : 'off'}`,
);
console.log(
  `bench: ${reps} run(s) per server and scenario, ${sizes.durationMs} ms windows; servers: ${[...targets, ...hopColumn].map((t) => LABELS[t]).join(', ')}; sizes ${JSON.stringify(sizes)}`,
);
const hopLine = hopColumn.length
  ? "\nbench: bare Redis hop: one process PUBLISHing (ioredis) at the scenario's offered rate " +
    "and tick, another SUBSCRIBEd, through a redis-server started as the clusters' is" +
    (pinned() ? ', all three on core 0 as the nodes are' : '')
  : '';
const placement = cluster
  ? '; every DM crosses nodes, match clients are spread over all nodes'
  : '';
console.log(
  pinned()
    ? `bench: pinned: ${cluster ? 'all nodes and redis-server' : 'the server'} on core 0, the load generator on core 1${placement}${hopLine}`
    : `bench: nothing pinned (${spread ? '--spread' : 'no taskset'}): servers${cluster ? ', redis-server' : ''} and the load generator run on any core; CPU is still read per process from /proc${placement}${hopLine}`,
);

const measurements: Record<
  string,
  Partial<Record<TargetName, Array<Measurement | { error: string }>>>
> = {};
const failures: string[] = [];
for (const scenario of scenarios) {
  const runs: Partial<Record<TargetName, Array<Measurement | { error: string }>>> = (measurements[
    scenario.key
  ] = {});
  for (let rep = 0; rep < reps; rep++) {
    for (const target of targetsOf(scenario)) {
      const started = performance.now();
      let result: Measurement | { error: string };
      try {
        result = await measure(target, scenario);
      } catch (error) {
        result = { error: error instanceof Error ? error.message.split('\n')[0]! : String(error) };
        failures.push(`${scenario.key} on ${LABELS[target]}: ${result.error}`);
      }
      (runs[target] ??= []).push(result);
      console.error(
        `  ${scenario.key} ${target} #${rep + 1}: ${((performance.now() - started) / 1000).toFixed(1)} s${'error' in result ? ` FAILED ${result.error}` : ''}`,
      );
    }
  }
}

interface Row {
  scenario: string;
  metric: Metric;
  values: Partial<Record<TargetName, number>>;
  ratios: Partial<Record<TargetName, number>>;
}
const rows: Row[] = [];
for (const scenario of scenarios) {
  for (const metric of scenario.metrics) {
    const values: Partial<Record<TargetName, number>> = {};
    for (const target of targetsOf(scenario)) {
      const ok = (measurements[scenario.key]![target] ?? []).filter(
        (m): m is Measurement => !('error' in m),
      );
      const figures = ok.map((m) => metric.value(m) ?? NaN);
      // A count that must be 0 must be 0 in every run: its sum, which a median would hide.
      const value = metric.mustBeZero
        ? figures.length === 0
          ? undefined
          : figures.reduce((sum, v) => sum + v, 0)
        : median(figures);
      if (value !== undefined) values[target] = value;
    }
    const ratios: Partial<Record<TargetName, number>> = {};
    const base = values[reference];
    if (!metric.mustBeZero && base)
      for (const target of compared)
        if (values[target] !== undefined) ratios[target] = values[target]! / base;
    rows.push({ scenario: scenario.title, metric, values, ratios });
  }
}

const cell = (value: number | undefined, digits: number) =>
  value === undefined
    ? 'n/a'
    : value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
console.log(
  `\n| scenario | metric | ${LABELS[reference]} | ${compared.map((r) => `${LABELS[r]} | ratio`).join(' | ')} |${hopColumn.map((r) => ` ${LABELS[r]} |`).join('')}${shardColumn ? ' workerd 4 / 1 gateway |' : ''}`,
);
console.log(
  `|---|---|---|${compared.map(() => '---|---|').join('')}${hopColumn.map(() => '---|').join('')}${shardColumn ? '---|' : ''}`,
);
for (const [i, { scenario, metric, values, ratios }] of rows.entries()) {
  const first = i === 0 || rows[i - 1]!.scenario !== scenario;
  // A latency held to the reference plus a margin: how much above it, not the ratio.
  const excess = metric.maxExcess !== undefined || metric.showExcess;
  const base = values[reference];
  const ratio = (r: TargetName) =>
    excess
      ? values[r] === undefined || base === undefined
        ? '-'
        : `${values[r]! >= base ? '+' : ''}${(values[r]! - base).toFixed(metric.digits)}`
      : ratios[r] === undefined
        ? '-'
        : `${ratios[r]!.toFixed(2)}x`;
  const sharded =
    values.workerd1 && values.workerd4 !== undefined && !metric.mustBeZero
      ? `${(values.workerd4 / values.workerd1).toFixed(2)}x`
      : '-';
  console.log(
    `| ${first ? scenario : ''} | ${metric.name} | ${cell(values[reference], metric.digits)} | ${compared.map((r) => `${cell(values[r], metric.digits)} | ${ratio(r)}`).join(' | ')} |${hopColumn.map((r) => ` ${values[r] === undefined ? '-' : cell(values[r], metric.digits)} |`).join('')}${shardColumn ? ` ${sharded} |` : ''}`,
  );
}

console.log(
  cluster
    ? '\nratio = cluster / one process: above 1 is better for rates, below 1 for latency; for ' +
        "p50 at a fixed offered rate, the cluster's p50 minus the one process's, in ms. " +
        'Per core = rate / CPU share over the window of all nodes and redis-server together.' +
        (hopColumn.length
          ? ' Bare Redis hop = publish -> receive between two Node processes through a ' +
            'redis-server at the same offered rate: the floor under what crossing nodes adds ' +
            "(a cross-node DM crosses one such hop); its CPU is both processes' and Redis's."
          : '')
    : '\nratio = ours / raw ws: above 1 is better for rates, below 1 for latency and memory. Per core = rate / server CPU share over the window.',
);
const saturated = scenarios.flatMap((scenario) =>
  targetsOf(scenario).flatMap((target) =>
    (measurements[scenario.key]![target] ?? []).some(
      (m) => 'loadCpuShare' in m && Number(m.loadCpuShare) > 0.9,
    )
      ? [`${scenario.key} (${LABELS[target]})`]
      : [],
  ),
);
if (withWorkerd) {
  const shares = scenarios.flatMap((scenario) =>
    runtimes
      .filter(isWorkerd)
      .flatMap((target) =>
        (measurements[scenario.key]![target] ?? []).flatMap((m) =>
          'cpuShares' in m && Array.isArray(m.cpuShares) && m.cpuShares.length === 2
            ? [m.cpuShares[0] / (m.cpuShares[0] + m.cpuShares[1])]
            : [],
        ),
      ),
  );
  const proxy = median(shares);
  console.log(
    `workerd: CPU and memory of both of wrangler dev's workerd processes${proxy === undefined ? '' : `; its proxy worker took ${(proxy * 100).toFixed(0)}% of that CPU (median), the Worker and its Durable Objects the rest`}. 1 gateway = GATEWAY_SHARDS=1 (every socket on one gateway object), 4 gateways = GATEWAY_SHARDS=4; either way one object per room and one matchmaker, all in the one Worker process.${shardColumn ? ' 4 / 1 = the sharded figure over the one-gateway figure.' : ''}`,
  );
}
if (saturated.length > 0)
  console.log(
    `load generator above 90% of its core, so these rates are partly the client's: ${saturated.join(', ')}`,
  );

// Chat history: Node storing it (the default) against Node with HISTORY=off, same run.
for (const { scenario, metric, values } of rows) {
  const on = values.node;
  const off = values.nodeHistoryOff;
  if (on === undefined || off === undefined) continue;
  if (metric.name.endsWith('per core')) {
    const ratio = on / off;
    console.log(
      `history: ${scenario}, ${metric.name}: on ${cell(on, 0)}, off ${cell(off, 0)} = ${ratio.toFixed(2)}x (target >= 0.90), ${ratio >= 0.9 ? 'met' : 'missed'}`,
    );
  } else if (metric.name.startsWith('server RSS growth')) {
    console.log(
      `history: ${scenario}: RSS grew ${cell(on, 1)} MB with history, ${cell(off, 1)} MB without; ${cell(on - off, 1)} MB for ${historyMessages.toLocaleString('en')} messages kept, bound 64 MiB`,
    );
  }
}

/**
 * "met" or "missed" for every target a metric has, for each server it applies to (a server
 * without a figure, its runs failed, misses).
 */
for (const { scenario, metric, values, ratios } of rows) {
  const { maxRatio, minRatio, maxExcess, mustBeZero } = metric;
  const report = (target: TargetName, figure: string, ok: boolean) =>
    console.log(
      `target ${scenario}, ${metric.name}: ${LABELS[target]} ${figure}, ${ok ? 'met' : 'missed'}`,
    );
  const base = values[reference];
  for (const target of compared) {
    const value = values[target];
    const ratio = ratios[target];
    if (maxRatio !== undefined || minRatio !== undefined)
      report(
        target,
        ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}x`,
        ratio !== undefined && ratio <= (maxRatio ?? ratio) && ratio >= (minRatio ?? ratio),
      );
    if (maxExcess !== undefined) {
      const excess = value === undefined || base === undefined ? undefined : value - base;
      const hop = values.redisHop;
      report(
        target,
        excess === undefined
          ? 'n/a'
          : `${cell(value, metric.digits)} - ${cell(base, metric.digits)} = ${excess.toFixed(2)}${hop === undefined ? '' : ` (the bare Redis hop's own: ${cell(hop, metric.digits)})`}`,
        excess !== undefined && excess <= maxExcess,
      );
    }
  }
  if (mustBeZero) {
    for (const target of targets) report(target, cell(values[target], 0), values[target] === 0);
    if (Object.values(values).some((v) => v !== 0))
      failures.push(`${scenario}: ${metric.name}: ${JSON.stringify(values)}`);
  }
}
if (failures.length > 0) console.log(`\nproblems:\n${failures.map((f) => `- ${f}`).join('\n')}`);

mkdirSync('bench/results', { recursive: true });
const file = `bench/results/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    { machine: info, quick, reps, cluster, spread, runtimes, sizes, rows, measurements, failures },
    null,
    2,
  ),
);
console.log(`\nwritten to ${file}`);
process.exit(failures.length > 0 ? 1 : 0);
