/**
 * Is relay throughput steady from one repetition to the next, and when it is not, why? Runs one
 * scenario (default `relay`) many times against fresh servers as `npm run bench` does (server on
 * core 0, load generator on core 1, the bench's limits lifted), and records per repetition, over
 * the measurement window: the rate, the server's CPU share and rate per core, the load generator's
 * own CPU share, each core's busy and steal time from /proc/stat (so the work of other processes on
 * the server's core shows), the server's GC (`--trace-gc`: count and pause time), and the speed of
 * the server's core itself: a probe at the lowest priority (`nice 19`) on core 0 times a fixed
 * piece of arithmetic per CPU second of its own, every second, so a core that delivers less work per
 * accounted CPU second (a busy host, a noisy neighbour on the SMT sibling) shows as a slower probe
 * while the server's code has not changed. With
 * `--profile` each server also writes a CPU profile (`--cpu-prof`, under bench/results/), to set a
 * slow repetition's beside a fast one's (bench/profile-summary.ts).
 *
 *   node --import tsx bench/steadiness.ts [--kind relay] [--reps 12] [--targets node,baseline]
 *        [--ms 8000] [--pairs 200] [--window 8] [--profile]
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import type { LaunchedServer } from '../test/contract/harness.ts';
import { launchProcess } from '../test/contract/launchers.ts';
import { OURS_ENV, pinnedCommand } from './targets.ts';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1]! : fallback;
const kind = option('kind', 'relay');
const reps = Number(option('reps', '12'));
const targets = option('targets', 'node,baseline').split(',') as Array<'node' | 'baseline'>;
const ms = option('ms', '8000');
const pairs = option('pairs', '200');
const inFlight = option('window', '8');
const profile = argv.includes('--profile');
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outDir = resolve('bench/results', `steadiness-${stamp}`);
mkdirSync(outDir, { recursive: true });

const ENTRY = { node: 'src/adapters/node.ts', baseline: 'bench/baseline-server.ts' };

/**
 * The core-speed probe: every second, a fixed loop of integer arithmetic, timed in the probe's own
 * CPU time (so being scheduled out does not count, a slower core does); prints CPU ns per step.
 */
const PROBE = `
const burst = () => { let x = 1; for (let i = 0; i < 2e6; i++) x = (x * 1103515245 + 12345) | 0; return x; };
burst();
setInterval(() => {
  const before = process.cpuUsage();
  let sink = 0;
  for (let n = 0; n < 5; n++) sink ^= burst();
  const used = process.cpuUsage(before);
  console.log(JSON.stringify({ nsPerOp: ((used.user + used.system) * 1000) / 1e7, sink }));
}, 1000);
setTimeout(() => process.exit(0), 600000);
`;

/** Busy and steal jiffies of each CPU (/proc/stat). */
function cpuTimes(): Array<{ busy: number; steal: number; total: number }> {
  return readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((line) => /^cpu\d+ /.test(line))
    .map((line) => {
      const [user, nice, system, idle, iowait, irq, softirq, steal] = line
        .split(/\s+/)
        .slice(1)
        .map(Number) as number[];
      const busy = user! + nice! + system! + irq! + softirq!;
      return { busy, steal: steal!, total: busy + idle! + iowait! + steal! };
    });
}
const JIFFY_S = 0.01;

/** GC events `--trace-gc` printed so far: count, pause ms, and how many were mark-compacts. */
function gcSoFar(output: string) {
  let count = 0;
  let pauseMs = 0;
  let markCompacts = 0;
  for (const match of output.matchAll(
    /ms: (Scavenge|Mark-Compact|Mark-sweep)[^\n]*?MB, ([\d.]+) \//g,
  )) {
    count++;
    pauseMs += Number(match[2]);
    if (match[1] !== 'Scavenge') markCompacts++;
  }
  return { count, pauseMs, markCompacts };
}

interface Result {
  rep: number;
  target: string;
  rate: number;
  cpuShare: number;
  perCore: number;
  loadCpuShare: number;
  /** Share of core 0 / core 1 busy over the window, and what of core 0 was not the server. */
  core0Busy: number;
  core1Busy: number;
  core0Others: number;
  stealShare: number;
  gc?: { count: number; pauseMs: number; markCompacts: number };
  /** The measurement window on CLOCK_MONOTONIC (µs), and the messages delivered in it. */
  windowUs?: [number, number];
  delivered?: number;
  /** The core-speed probe's median over the window, CPU ns per step of its loop (higher: slower core). */
  coreSpeed?: number;
  profile?: string;
}

async function once(rep: number, target: 'node' | 'baseline'): Promise<Result> {
  // A directory per run: tsx's loader thread writes a profile too (thread id 1, the server's is 0).
  const profileDir = resolve(outDir, `${target}-${rep}`);
  const flags = profile
    ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--trace-gc']
    : ['--trace-gc'];
  const [command, args] = pinnedCommand(0, process.execPath, [
    ...flags,
    '--import',
    'tsx',
    ENTRY[target],
  ]);
  const server: LaunchedServer = await launchProcess(
    command,
    args,
    target === 'node' ? OURS_ENV : {},
  );
  try {
    const [loadCommand, loadArgs] = pinnedCommand(1, process.execPath, [
      '--import',
      'tsx',
      'bench/load.ts',
      '--url',
      `${server.baseUrl.replace('http', 'ws')}/ws`,
      ...['--kind', kind, '--pairs', pairs, '--window', inFlight, '--ms', ms],
    ]);
    const [probeCommand, probeArgs] = pinnedCommand(0, 'nice', [
      '-n',
      '19',
      process.execPath,
      '-e',
      PROBE,
    ]);
    const probe = spawn(probeCommand, probeArgs, { stdio: ['ignore', 'pipe', 'ignore'] });
    const speeds: number[] = [];
    let measuring = false;
    let windowUs: [number, number] | undefined;
    probe.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().trim().split('\n'))
        if (measuring && line.startsWith('{')) speeds.push(JSON.parse(line).nsPerOp);
    });
    const child = spawn(loadCommand, loadArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
    let at:
      | {
          cpu: number;
          wall: number;
          monotonicUs: number;
          cores: ReturnType<typeof cpuTimes>;
          gc: ReturnType<typeof gcSoFar>;
        }
      | undefined;
    let measured: Omit<Result, 'rep' | 'target' | 'rate' | 'perCore' | 'loadCpuShare'> | undefined;
    let last: Record<string, number> = {};
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = JSON.parse(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        last = line;
        const now = {
          cpu: server.cpuSeconds!(),
          wall: performance.now(),
          // CLOCK_MONOTONIC, as V8 stamps profile samples: the window within a server's profile.
          monotonicUs: Number(process.hrtime.bigint() / 1000n),
          cores: cpuTimes(),
          gc: gcSoFar(server.output()),
        };
        if (line.phase === 'measure') {
          at = now;
          measuring = true;
        } else if (line.phase === 'stop' && at) {
          measuring = false;
          windowUs = [at.monotonicUs, now.monotonicUs];
          const wallS = (now.wall - at.wall) / 1000;
          const share = (i: number, field: 'busy' | 'steal') =>
            ((now.cores[i]![field] - at!.cores[i]![field]) * JIFFY_S) / wallS;
          const cpuShare = (now.cpu - at.cpu) / wallS;
          measured = {
            cpuShare,
            core0Busy: share(0, 'busy'),
            core1Busy: share(1, 'busy'),
            core0Others: share(0, 'busy') - cpuShare,
            stealShare: share(0, 'steal') + share(1, 'steal'),
            gc: {
              count: now.gc.count - at.gc.count,
              pauseMs: now.gc.pauseMs - at.gc.pauseMs,
              markCompacts: now.gc.markCompacts - at.gc.markCompacts,
            },
          };
        }
      }
    });
    const code = await new Promise<number | null>((done) => child.once('exit', done));
    probe.kill();
    speeds.sort((a, b) => a - b);
    if (code !== 0 || !measured) throw new Error(`load exited with ${code}`);
    const rate = last.delivered! / (last.wallMs! / 1000);
    return {
      rep,
      target,
      rate,
      perCore: rate / measured.cpuShare,
      loadCpuShare: last.loadCpuShare!,
      ...measured,
      coreSpeed: speeds[Math.floor(speeds.length / 2)],
      profile: profile ? profileDir : undefined,
      windowUs,
      delivered: last.delivered!,
    };
  } finally {
    // SIGTERM, not the group kill: the server exits by itself, and so writes its CPU profile.
    await server.kill('SIGTERM');
    await server.stop();
  }
}

console.log(
  `steadiness: ${kind}, ${reps} repetitions of ${targets.join(', ')}, ${pairs} pairs, window ${inFlight}, ${ms} ms; load average ${loadavg()
    .map((n) => n.toFixed(2))
    .join(' ')}`,
);
console.log(
  '| rep | server | msgs/s | server CPU | per core | load gen CPU | core 0 busy (others) | core 1 busy | steal | core 0 probe ns/step | GC in window (count, pause ms, mark-compacts) |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
const results: Result[] = [];
for (let rep = 1; rep <= reps; rep++) {
  for (const target of targets) {
    const r = await once(rep, target);
    results.push(r);
    const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
    console.log(
      `| ${rep} | ${target} | ${r.rate.toFixed(0)} | ${pct(r.cpuShare)} | ${r.perCore.toFixed(0)} | ${pct(r.loadCpuShare)} | ${pct(r.core0Busy)} (${pct(r.core0Others)}) | ${pct(r.core1Busy)} | ${pct(r.stealShare)} | ${r.coreSpeed?.toFixed(2) ?? '-'} | ${r.gc?.count}, ${r.gc?.pauseMs.toFixed(1)}, ${r.gc?.markCompacts} |`,
    );
  }
}
for (const target of targets) {
  const perCore = results.filter((r) => r.target === target).map((r) => r.perCore);
  const sorted = [...perCore].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `${target}: per core min ${sorted[0]!.toFixed(0)} (${(sorted[0]! / median).toFixed(2)}x the median), median ${median.toFixed(0)}, max ${sorted.at(-1)!.toFixed(0)}`,
  );
}
writeFileSync(
  resolve(outDir, 'results.json'),
  JSON.stringify({ kind, reps, pairs, window: inFlight, ms, results }, null, 2),
);
console.log(`written: ${outDir}/results.json`);
