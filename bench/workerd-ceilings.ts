/**
 * `npm run bench:ceilings [-- --quick] [-- --shards 4] [-- --members 50,8]
 * [-- --rates 250,500,1000,2000,4000] [-- --clients 100,300,1000] [-- --ms 5000] [-- --tmpfs]`: the measured
 * ceilings of one room object and of the matchmaker under workerd (`wrangler dev`, issue 14),
 * with the Worker's gateways sharded (`GATEWAY_SHARDS`, default 4).
 *
 * - **One room object**: for each room size S (`--members`), ONE room whose S members are spread
 *   evenly over the gateways (bench/scenarios/one-room.ts), at offered rates stepped up
 *   (`--rates`), a fresh server per step. A step is sustained while the deliveries follow the
 *   offer (>= 95% of rate x S) and p99 stays at or under 1 s; stepping stops at the first step that
 *   is not. The ceiling is the highest sustained offered rate (broadcasts/s), between it and the
 *   first step that failed.
 * - **The matchmaker**: the `match` scenario (closed loop, every client cycling available ->
 *   request -> hangup as fast as answers come) with N clients (`--clients`; their userIds spread
 *   over the gateways by the Worker's hash), a fresh server per step: matches/s, and whether the
 *   rate still grows with N or the process is at its core.
 *
 * Both read, over each measurement window, the CPU of both of `wrangler dev`'s workerd processes
 * (the proxy worker and the Worker with every Durable Object) and the busiest thread of each, from
 * /proc, as `npm run bench` does (bench/targets.ts): servers pinned to core 0 and the load
 * generator to core 1 when `taskset` exists. Everything runs on loopback inside a network
 * namespace with loopback only (it re-executes itself through scripts/isolated.sh), every count
 * and window is bounded, and each server's process group is stopped after its step. Prints
 * markdown tables; writes JSON to bench/results/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, constants as osConstants, tmpdir } from 'node:os';
import { procStat } from '../test/contract/launchers.ts';
import {
  hasTaskset,
  pinned,
  pinnedCommand,
  runIsolated,
  type Server,
  startServer,
} from './targets.ts';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1]! : fallback;
/** A comma-separated list of whole numbers, each clamped to [min, max], at most 8 of them. */
const list = (name: string, fallback: string, min: number, max: number) =>
  option(name, fallback)
    .split(',')
    .slice(0, 8)
    .map((n) => Math.min(max, Math.max(min, Math.floor(Number(n)))))
    .filter((n) => Number.isFinite(n));
const quick = argv.includes('--quick');
const shards = list('shards', '4', 1, 64)[0]!;
const memberSizes = list('members', quick ? '50' : '50,8', 1, 1000);
const rates = list('rates', quick ? '250,1000' : '250,500,1000,2000,4000', 1, 20_000);
const clientCounts = list('clients', quick ? '1000' : '100,300,1000', 2, 5000);
const windowMs = list('ms', quick ? '2000' : '5000', 500, 20_000)[0]!;
/**
 * `--tmpfs`: each `wrangler dev` keeps its Durable Objects' SQLite under /dev/shm instead of the
 * disk's temporary directory (launchCloudflare makes its state directory in `os.tmpdir()`). On
 * this machine the disk's commits, not the CPU, bound one object: this tells the two apart.
 */
const tmpfs = argv.includes('--tmpfs');
if (tmpfs) process.env.TMPDIR = '/dev/shm';
/**
 * What was in /dev/shm before this run: `wrangler dev`, stopped by SIGKILL of its group, leaves
 * its `miniflare-*` directories in the temporary directory (and tsx its cache): those this run
 * added are removed once the run inside the namespace has ended.
 */
const shmBefore = tmpfs ? new Set(readdirSync('/dev/shm')) : undefined;
/** A step is sustained while deliveries are at least this share of the offer... */
const FOLLOWS = 0.95;
/** ...and p99 is at or under this. */
const P99_BOUND_MS = 1000;

if (!process.env.ALEATORIA_BENCH_ISOLATED) {
  runIsolated('bench/workerd-ceilings.ts', argv, () => {
    // The run inside the namespace is over and every server with it: clean up after wrangler.
    for (const name of shmBefore ? readdirSync('/dev/shm') : [])
      if (!shmBefore!.has(name) && /^(miniflare-|tsx-|update-check$)/.test(name))
        rmSync(`/dev/shm/${name}`, { recursive: true, force: true });
  });
}

/** The load generator running now, killed should this process exit before it. */
let loadRunning: ReturnType<typeof spawn> | undefined;
process.once('exit', () => loadRunning?.kill('SIGKILL'));
// Ctrl-C or a kill: exit through the `exit` hooks, which SIGKILL every server's process group
// (test/contract/launchers.ts).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.once(signal, () => process.exit(128 + osConstants.signals[signal]));

/** CPU seconds of each thread of `pid` (by thread id), from /proc; empty once it is gone. */
function threadSeconds(pid: number): Map<number, number> {
  const seconds = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`).map(Number)) {
      try {
        seconds.set(tid, procStat(tid).cpuSeconds);
      } catch {
        // Ended meanwhile.
      }
    }
  } catch {
    // The process is gone.
  }
  return seconds;
}

interface Reading {
  wall: number;
  processes: number[];
  threads: Array<Map<number, number>>;
}
const read = (server: Server): Reading => ({
  wall: performance.now(),
  processes: server.cpuSeconds?.() ?? [],
  threads: server.pids.map(threadSeconds),
});

/** Per serving process over the window: its CPU share and its busiest thread's. */
function shares(server: Server, at: Reading, now: Reading) {
  const wallS = (now.wall - at.wall) / 1000;
  return server.pids.map((pid, i) => {
    let busiest = 0;
    for (const [tid, seconds] of now.threads[i]!)
      busiest = Math.max(busiest, (seconds - (at.threads[i]!.get(tid) ?? seconds)) / wallS);
    return {
      pid,
      name: server.names[i],
      cpu: (now.processes[i]! - at.processes[i]!) / wallS,
      busiestThread: busiest,
    };
  });
}
type Shares = ReturnType<typeof shares>;

/** Runs bench/load.ts against `server` (pinned to core 1) and reads the server around its window. */
function runLoad(
  server: Server,
  args: string[],
): Promise<Record<string, unknown> & { shares?: Shares }> {
  const [command, commandArgs] = pinnedCommand(1, process.execPath, [
    '--import',
    'tsx',
    'bench/load.ts',
    '--url',
    `${server.baseUrls[0]!.replace('http', 'ws')}/ws`,
    ...args,
    '--ms',
    String(windowMs),
  ]);
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
  loadRunning = child;
  const killer = setTimeout(() => child.kill('SIGKILL'), windowMs + 120_000);
  let errors = '';
  child.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    errors = (errors + chunk.toString()).slice(-1000);
  });
  let pending = '';
  let last: Record<string, unknown> | undefined;
  let at: Reading | undefined;
  let measured: Shares | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      last = JSON.parse(line) as Record<string, unknown>;
      if (last.phase === 'measure') at = read(server);
      else if (last.phase === 'stop' && at) measured = shares(server, at, read(server));
    }
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => {
      clearTimeout(killer);
      loadRunning = undefined;
      if (code === 0 && last) resolve({ ...last, shares: measured });
      else
        reject(
          new Error(
            `load ${args[1]} exited with ${code ?? signal}${errors.trim() ? `: ${errors.trim().split('\n').at(-1)}` : ''}`,
          ),
        );
    });
  });
}

/** A fresh sharded workerd for one step, stopped (its whole process group) afterwards. */
async function step(args: string[]) {
  const server = await startServer('workerd4', { GATEWAY_SHARDS: String(shards) });
  try {
    return await runLoad(server, args);
  } finally {
    await server.stop();
  }
}

const num = (value: unknown) => (typeof value === 'number' ? value : NaN);
const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : 'n/a';
const pct = (share: number | undefined) =>
  share === undefined || !Number.isFinite(share) ? 'n/a' : `${(share * 100).toFixed(0)}%`;
/** "proxy 31% (thread 31%), Worker 68% (thread 66%)": both workerd processes over the window. */
const cpuCell = (s: Shares | undefined) =>
  s === undefined
    ? 'n/a'
    : s
        .map(
          (p, i) =>
            `${i === 0 ? 'proxy' : 'Worker'} ${pct(p.cpu)} (busiest thread ${pct(p.busiestThread)})`,
        )
        .join(', ');
const total = (s: Shares | undefined) => s?.reduce((sum, p) => sum + p.cpu, 0);

const wrangler = spawnSync(process.execPath, ['node_modules/.bin/wrangler', '--version'], {
  encoding: 'utf8',
}).stdout?.trim();
const cpu =
  /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
const started = new Date();
console.log(
  `ceilings: ${started.toISOString()}, ${availableParallelism()} cores (${cpu}), Node ${process.version}, wrangler ${wrangler}, load average ${loadavg()
    .map((n) => n.toFixed(2))
    .join(
      ' ',
    )}, ${pinned() ? 'workerd on core 0, load generator on core 1' : `nothing pinned (taskset ${hasTaskset ? 'on' : 'off'})`}`,
);
console.log(
  `ceilings: GATEWAY_SHARDS=${shards}, ${windowMs} ms windows, a fresh wrangler dev per step, its state (SQLite) in ${tmpdir()}${tmpfs ? ' (tmpfs)' : ''}; sustained = deliveries >= ${FOLLOWS * 100}% of the offer and p99 <= ${P99_BOUND_MS} ms`,
);

const roomSteps: Array<Record<string, unknown>> = [];
const roomCeilings: Array<{ members: number; sustained?: number; failedAt?: number }> = [];
for (const members of memberSizes) {
  console.log(
    `\n### One room object: 1 room x ${members} members over ${shards} gateways\n\n| offered msgs/s | expected deliveries/s | delivered/s | delivered / expected | p50 ms | p99 ms | workerd CPU, cores | per process | placement | sustained |\n|---|---|---|---|---|---|---|---|---|---|`,
  );
  let sustained: number | undefined;
  let failedAt: number | undefined;
  for (const rate of rates) {
    const begun = performance.now();
    let row: Record<string, unknown>;
    try {
      const r = await step([
        '--kind',
        'one-room',
        '--members',
        String(members),
        '--gateways',
        String(shards),
        '--rate',
        String(rate),
      ]);
      const deliveredPerS = num(r.delivered) / (num(r.wallMs) / 1000);
      const follows = deliveredPerS / num(r.expectedPerS);
      const ok = follows >= FOLLOWS && num(r.p99) <= P99_BOUND_MS;
      row = { ...r, members, rate, deliveredPerS, follows, ok };
      console.log(
        `| ${fmt(rate)} | ${fmt(num(r.expectedPerS))} | ${fmt(deliveredPerS)} | ${follows.toFixed(2)} | ${fmt(num(r.p50), 1)} | ${fmt(num(r.p99), 1)} | ${fmt(total(r.shares) ?? NaN, 2)} | ${cpuCell(r.shares)} | ${Object.entries(
          (r.placement ?? {}) as Record<string, number>,
        )
          .map(([g, n]) => `${g.replace('gateway-', 'g')}:${n}`)
          .join(
            ' ',
          )}${num(r.misplaced) > 0 ? ` (${r.misplaced} misplaced)` : ''} | ${ok ? 'yes' : 'no'} |`,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
      row = { members, rate, error: message, ok: false };
      console.log(
        `| ${fmt(rate)} | ${fmt(rate * members)} | FAILED: ${message} | | | | | | | no |`,
      );
    }
    roomSteps.push(row);
    console.error(
      `  one-room ${members} @ ${rate}: ${((performance.now() - begun) / 1000).toFixed(1)} s`,
    );
    if (row.ok) sustained = rate;
    else {
      failedAt = rate;
      break;
    }
  }
  roomCeilings.push({ members, sustained, failedAt });
}

const matchSteps: Array<Record<string, unknown>> = [];
console.log(
  `\n### The matchmaker: match clients over ${shards} gateways (closed loop)\n\n| clients | matches/s | workerd CPU, cores | per process | matches per workerd core-second | invariant violations |\n|---|---|---|---|---|---|`,
);
for (const clients of clientCounts) {
  const begun = performance.now();
  try {
    const r = await step(['--kind', 'match', '--clients', String(clients), '--hold', '2']);
    const perS = num(r.matches) / (num(r.wallMs) / 1000);
    const cpuTotal = total(r.shares) ?? NaN;
    matchSteps.push({ ...r, clients, perS });
    console.log(
      `| ${fmt(clients)} | ${fmt(perS)} | ${fmt(cpuTotal, 2)} | ${cpuCell(r.shares)} | ${fmt(perS / cpuTotal)} | ${fmt(num(r.violations))} |`,
    );
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
    matchSteps.push({ clients, error: message });
    console.log(`| ${fmt(clients)} | FAILED: ${message} | | | | |`);
  }
  console.error(`  match ${clients}: ${((performance.now() - begun) / 1000).toFixed(1)} s`);
}

console.log('');
for (const { members, sustained, failedAt } of roomCeilings)
  console.log(
    `ceiling, one room object (${members} members over ${shards} gateways): ${sustained === undefined ? `not sustained at the lowest step (${fmt(rates[0]!)} msgs/s)` : `${fmt(sustained)} msgs/s sustained (${fmt(sustained * members)} deliveries/s)`}${failedAt === undefined ? ', the highest step offered' : `, not at ${fmt(failedAt)}`}`,
  );
const best = matchSteps.reduce<Record<string, unknown> | undefined>(
  (top, s) => (num(s.perS) > num(top?.perS) || top === undefined ? s : top),
  undefined,
);
if (best)
  console.log(
    `ceiling, the matchmaker: ${fmt(num(best.perS))} matches/s at ${fmt(num(best.clients))} clients; workerd CPU then ${cpuCell(best.shares as Shares | undefined)}`,
  );
const violations = matchSteps.reduce((sum, s) => sum + (num(s.violations) || 0), 0);
const failures = [...roomSteps, ...matchSteps].filter((s) => 'error' in s).length;

mkdirSync('bench/results', { recursive: true });
const file = `bench/results/ceilings-${started.toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(
  file,
  JSON.stringify(
    {
      started: started.toISOString(),
      machine: { cpu, nproc: availableParallelism(), node: process.version, wrangler },
      loadAverage: loadavg(),
      pinned: pinned(),
      stateDirectory: tmpdir(),
      shards,
      windowMs,
      roomSteps,
      roomCeilings,
      matchSteps,
    },
    null,
    2,
  ),
);
console.log(`\nwritten to ${file}`);
process.exit(violations > 0 || failures > 0 ? 1 : 0);
