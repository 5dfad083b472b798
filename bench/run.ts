/**
 * `npm run bench [-- --quick] [-- --runtime node|deno|workerd|all | --cluster]
 * [-- --scenarios room,match]`: our server against the raw-ws baseline (bench/baseline-server.ts),
 * alternately in one invocation, same machine, same minutes: for every scenario and repetition,
 * each server is started fresh and loaded in turn. Server and load generator run in separate
 * processes pinned to different cores (when `taskset` exists). "Per core" = rate / the server's
 * CPU share over the measurement window (CPU seconds from /proc over wall seconds), which stays
 * comparable when other work shares the machine. Figures are medians over the repetitions (3, or
 * 1 with --quick). `--runtime all` runs Node, Deno and workerd, each against the same Node raw-ws
 * baseline of the run. workerd runs inside a network namespace with loopback only: the runner
 * re-executes itself through scripts/isolated.sh when it needs one. Prints one markdown table,
 * writes JSON to bench/results/.
 *
 * `--cluster` compares clusters over Redis with one Node process instead (issue 13): the single
 * process (REDIS_URL unset) is the reference, then 2 and 4 Node nodes sharing one redis-server
 * (bench/targets.ts). Every DM crosses nodes and match clients are spread over all of them
 * (bench/scenarios/common.ts). Nodes and redis-server share core 0, so "per core" counts all of
 * their CPU against the one core the single process has.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, constants as osConstants } from 'node:os';
import {
  CLUSTERS,
  hasTaskset,
  LABELS,
  pinnedCommand,
  RUNTIMES,
  startServer,
  type Server,
  type TargetName,
} from './targets.ts';

const argv = process.argv.slice(2);
const option = (name: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined;
const quick = argv.includes('--quick');
const runtimeOption = option('runtime') ?? 'node';
const cluster = argv.includes('--cluster');
if (cluster && runtimeOption !== 'node') {
  console.error('--cluster: clusters of Node processes only, against one Node process');
  process.exit(2);
}
if (runtimeOption !== 'all' && !(RUNTIMES as readonly string[]).includes(runtimeOption)) {
  console.error(`--runtime: expected ${RUNTIMES.join(', ')} or all, got ${runtimeOption}`);
  process.exit(2);
}
const runtimes: TargetName[] =
  runtimeOption === 'all' ? [...RUNTIMES] : [runtimeOption as TargetName];

// workerd must not reach outside: run the whole bench in a loopback-only network namespace.
if (runtimes.includes('workerd') && !process.env.ALEATORIA_BENCH_ISOLATED) {
  const result = spawnSync(
    'bash',
    ['scripts/isolated.sh', process.execPath, '--import', 'tsx', 'bench/run.ts', ...argv],
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
  process.exit(result.status ?? 1);
}

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
  /** A count that must be 0 (no ratio; the run fails otherwise). */
  mustBeZero?: boolean;
  /** The ratio to the reference should stay at or under this. */
  maxRatio?: number;
  /** The ratio to the reference should stay at or above this. */
  minRatio?: number;
  /** The value should exceed the reference's by at most this (in its own unit). */
  maxExcess?: number;
}

interface Scenario {
  key: string;
  title: string;
  /** Server variables on top of the bench's own (`OURS_ENV`). */
  env?: Record<string, string>;
  /** Servers measured beside the runtimes for a comparison of their own (HISTORY=off). */
  extraTargets?: TargetName[];
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
/** Where a cluster's CPU goes: every server process, and redis-server's part of it. */
const CPU_METRICS: Metric[] = [
  { name: 'server CPU, cores (all nodes + Redis)', value: (m) => m.cpuShare, digits: 2 },
  { name: 'of which redis-server, cores', value: (m) => m.redisCpuShare, digits: 2 },
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
    args: () => [
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
    args: () => [
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
      latency('p50'),
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
        name: 'invariant violations (must be 0)',
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
    title: `idle: ${sizes.idleSockets.toLocaleString('en')} sockets${runtimes.includes('workerd') && sizes.workerdIdleSockets !== sizes.idleSockets ? ` (workerd: ${sizes.workerdIdleSockets.toLocaleString('en')})` : ''}`,
    args: (target) => [
      '--kind',
      'idle',
      '--sockets',
      String(target === 'workerd' ? sizes.workerdIdleSockets : sizes.idleSockets),
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

/** The load generator running now, killed should the runner exit before it. */
let loadRunning: ReturnType<typeof spawn> | undefined;
process.once('exit', () => loadRunning?.kill('SIGKILL'));
// Ctrl-C or a kill: exit through the `exit` hooks, which SIGKILL every server's process group
// (test/contract/launchers.ts) and redis-server (test/cluster/redis-server.ts) by their PIDs.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(signal, () => process.exit(128 + osConstants.signals[signal]));

/**
 * Runs bench/load.ts pinned to core 1 and returns its result line. `onLine` sees every JSON line
 * as it comes (phases, readiness); a load that outlives its own watchdog is killed.
 */
function runLoad(
  server: Server,
  args: string[],
  onLine: (line: Record<string, unknown>, stdin: NodeJS.WritableStream) => void,
): Promise<Measurement> {
  const [command, commandArgs] = pinnedCommand(1, process.execPath, [
    '--import',
    'tsx',
    'bench/load.ts',
    '--url',
    server.baseUrls.map((baseUrl) => `${baseUrl.replace('http', 'ws')}/ws`).join(','),
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
      onLine(last, child.stdin);
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
 * over its processes; each one's share is kept too, for workerd's two).
 */
async function measureLoad(server: Server, args: string[]): Promise<Measurement> {
  let cpuAt: number[] | undefined;
  let wallAt = 0;
  let cpuShares: number[] | undefined;
  let rssAt: number | undefined;
  let rssGrowthMb: number | undefined;
  const result = await runLoad(server, args, (line) => {
    if (line.phase === 'measure') {
      cpuAt = server.cpuSeconds?.();
      rssAt = server.rss?.();
      wallAt = performance.now();
    } else if (line.phase === 'stop' && cpuAt !== undefined) {
      const wallS = (performance.now() - wallAt) / 1000;
      cpuShares = server.cpuSeconds!().map((seconds, i) => (seconds - cpuAt![i]!) / wallS);
      const rss = server.rss?.();
      if (rss !== undefined && rssAt !== undefined) rssGrowthMb = (rss - rssAt) / 1048576;
    }
  });
  const cpuShare = cpuShares?.reduce((sum, share) => sum + share, 0);
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
    const result = await (scenario.key === 'idle' ? measureIdle : measureLoad)(
      server,
      scenario.args(target),
    );
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
    ...(runtimes.includes('workerd')
      ? { wrangler: version(process.execPath, ['node_modules/.bin/wrangler', '--version']) }
      : {}),
    loadAverage: loadavg().map((n) => Number(n.toFixed(2))),
    taskset: hasTaskset,
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
console.log(
  `bench: ${info.nproc} cores (${info.cpu}), Node ${info.node}${info.deno ? `, ${info.deno}` : ''}${info.wrangler ? `, wrangler ${info.wrangler}` : ''}, load average ${info.loadAverage.join(' ')}, taskset ${info.taskset ? 'on' : 'off'}`,
);
console.log(
  `bench: ${reps} run(s) per server and scenario, ${sizes.durationMs} ms windows; servers: ${targets.map((t) => LABELS[t]).join(', ')}; sizes ${JSON.stringify(sizes)}`,
);
const unpinned = info.taskset ? '' : ' (no taskset: nothing pinned)';
console.log(
  cluster
    ? `bench: pinned: all nodes and redis-server on core 0, load generator on core 1${unpinned}; ` +
        'every DM crosses nodes, match clients are spread over all nodes'
    : `bench: pinned: the server on core 0, the load generator on core 1${unpinned}`,
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
    for (const target of [...targets, ...(scenario.extraTargets ?? [])]) {
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
    for (const target of [...targets, ...(scenario.extraTargets ?? [])]) {
      const ok = (measurements[scenario.key]![target] ?? []).filter(
        (m): m is Measurement => !('error' in m),
      );
      const value = median(ok.map((m) => metric.value(m) ?? NaN));
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
  `\n| scenario | metric | ${LABELS[reference]} | ${compared.map((r) => `${LABELS[r]} | ratio`).join(' | ')} |`,
);
console.log(`|---|---|---|${compared.map(() => '---|---|').join('')}`);
for (const [i, { scenario, metric, values, ratios }] of rows.entries()) {
  const first = i === 0 || rows[i - 1]!.scenario !== scenario;
  const ratio = (r: TargetName) => (ratios[r] === undefined ? '-' : `${ratios[r]!.toFixed(2)}x`);
  console.log(
    `| ${first ? scenario : ''} | ${metric.name} | ${cell(values[reference], metric.digits)} | ${compared.map((r) => `${cell(values[r], metric.digits)} | ${ratio(r)}`).join(' | ')} |`,
  );
}

console.log(
  cluster
    ? '\nratio = cluster / one process: above 1 is better for rates, below 1 for latency. ' +
        'Per core = rate / CPU share over the window of all nodes and redis-server together.'
    : '\nratio = ours / raw ws: above 1 is better for rates, below 1 for latency and memory. Per core = rate / server CPU share over the window.',
);
const saturated = scenarios.flatMap((scenario) =>
  targets.flatMap((target) =>
    (measurements[scenario.key]![target] ?? []).some(
      (m) => 'loadCpuShare' in m && Number(m.loadCpuShare) > 0.9,
    )
      ? [`${scenario.key} (${LABELS[target]})`]
      : [],
  ),
);
if (runtimes.includes('workerd')) {
  const shares = scenarios.flatMap((scenario) =>
    (measurements[scenario.key]!.workerd ?? []).flatMap((m) =>
      'cpuShares' in m && Array.isArray(m.cpuShares) && m.cpuShares.length === 2
        ? [m.cpuShares[0] / (m.cpuShares[0] + m.cpuShares[1])]
        : [],
    ),
  );
  const proxy = median(shares);
  console.log(
    `workerd: CPU and memory of both of wrangler dev's workerd processes${proxy === undefined ? '' : `; its proxy worker took ${(proxy * 100).toFixed(0)}% of that CPU (median), the Worker and its Durable Object the rest`}.`,
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
      report(
        target,
        excess === undefined
          ? 'n/a'
          : `${cell(value, metric.digits)} - ${cell(base, metric.digits)} = ${excess.toFixed(2)}`,
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
    { machine: info, quick, reps, cluster, runtimes, sizes, rows, measurements, failures },
    null,
    2,
  ),
);
console.log(`\nwritten to ${file}`);
process.exit(failures.length > 0 ? 1 : 0);
