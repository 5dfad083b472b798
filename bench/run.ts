/**
 * `npm run bench [-- --quick]`: our server against the raw-ws baseline (bench/baseline-server.ts),
 * alternately in one invocation, same machine, same minute. Server and load generator run in
 * separate processes, pinned to different cores when `taskset` exists. "Per core" = delivered
 * messages per second divided by the server's CPU share over the run, which stays comparable
 * when other work shares the machine. Prints a markdown table and writes JSON to bench/results/.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { launchProcess } from '../test/contract/launchers.ts';
import type { LaunchedServer } from '../test/contract/harness.ts';

const quick = process.argv.includes('--quick');
const reps = quick ? 1 : 3;
const durationMs = quick ? 3000 : 8000;
const pairs = quick ? 100 : 200;
const window = 8;

const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();
const pinned = (core: number, command: string, args: string[]) => (hasTaskset ? ['taskset', ['-c', String(core), command, ...args]] as const : [command, args] as const);

const SERVERS = {
  baseline: () => launchProcess(...pinned(0, process.execPath, ['--import', 'tsx', 'bench/baseline-server.ts']), {}),
  ours: () =>
    launchProcess(...pinned(0, process.execPath, ['--import', 'tsx', 'src/adapters/node.ts']), {
      LOG_LEVEL: 'error',
      RATE_LIMIT_PER_SECOND: '1000000',
      RATE_LIMIT_BURST: '1000000',
    }),
} satisfies Record<string, () => Promise<LaunchedServer>>;

interface LoadResult {
  delivered: number;
  wallMs: number;
  p50: number;
  p99: number;
}

function runLoad(baseUrl: string, kind: string): Promise<LoadResult> {
  const [command, args] = pinned(1, process.execPath, ['--import', 'tsx', 'bench/load.ts', '--url', `${baseUrl.replace('http', 'ws')}/ws`, '--kind', kind, '--pairs', String(pairs), '--window', String(window), '--ms', String(durationMs)]);
  const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!)) : reject(new Error(`load exited with ${code}: ${out}`))));
  });
}

async function measure(which: keyof typeof SERVERS, kind: string) {
  const server = await SERVERS[which]();
  try {
    const cpuBefore = server.cpuSeconds!();
    const started = performance.now();
    const load = await runLoad(server.baseUrl, kind);
    const wallS = (performance.now() - started) / 1000;
    const cpuShare = (server.cpuSeconds!() - cpuBefore) / wallS;
    const rate = load.delivered / (load.wallMs / 1000);
    return { rate, perCore: rate / Math.max(cpuShare, 0.01), cpuShare, p50: load.p50, p99: load.p99 };
  } finally {
    await server.stop();
  }
}

/** Opens `sockets` idle connections and reads the server's RSS once they are all open. */
async function measureIdle(which: keyof typeof SERVERS, sockets: number) {
  const server = await SERVERS[which]();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const rssBefore = server.rss!();
    const [command, args] = pinned(1, process.execPath, ['--import', 'tsx', 'bench/load.ts', '--url', `${server.baseUrl.replace('http', 'ws')}/ws`, '--kind', 'idle', '--sockets', String(sockets)]);
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    const ready = await new Promise<{ sockets: number; connectMs: number }>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split('\n').find((l) => l.includes('"ready"'));
        if (line) resolve(JSON.parse(line));
      });
      child.once('exit', (code) => reject(new Error(`idle load exited with ${code}`)));
    });
    await new Promise((r) => setTimeout(r, 2000));
    const rssAfter = server.rss!();
    child.stdin.end();
    await new Promise((r) => child.once('exit', r));
    return { perThousandMb: (rssAfter - rssBefore) / 1048576 / (ready.sockets / 1000), connectsPerS: ready.sockets / (ready.connectMs / 1000), rssAfterMb: rssAfter / 1048576 };
  } finally {
    await server.stop();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const rows: Array<Record<string, unknown>> = [];
console.log(`bench: ${reps} run(s) each, ${durationMs} ms, ${pairs} pairs, window ${window}, taskset ${hasTaskset ? 'on' : 'off'}`);
for (const [name, kind] of [['DM relay (webrtc_candidate)', 'relay'], ['DM chat with sender copy', 'chat']] as const) {
  const results: Record<string, Awaited<ReturnType<typeof measure>>[]> = { baseline: [], ours: [] };
  for (let rep = 0; rep < reps; rep++) {
    for (const which of ['baseline', 'ours'] as const) results[which]!.push(await measure(which, kind));
  }
  const summary = (which: string) => ({
    perCore: median(results[which]!.map((r) => r.perCore)),
    rate: median(results[which]!.map((r) => r.rate)),
    p50: median(results[which]!.map((r) => r.p50)),
    p99: median(results[which]!.map((r) => r.p99)),
  });
  const [base, ours] = [summary('baseline'), summary('ours')];
  rows.push({ workload: name, baseline: base, ours, ratio: ours.perCore / base.perCore });
}

const idleSockets = quick ? 2000 : 19_500;
const idle: Record<string, Awaited<ReturnType<typeof measureIdle>>[]> = { baseline: [], ours: [] };
for (let rep = 0; rep < reps; rep++) for (const which of ['baseline', 'ours'] as const) idle[which]!.push(await measureIdle(which, idleSockets));
const idleRow = (which: string) => ({
  perThousandMb: median(idle[which]!.map((r) => r.perThousandMb)),
  connectsPerS: median(idle[which]!.map((r) => r.connectsPerS)),
});

console.log('\n| workload | raw ws msgs/s per core | ours msgs/s per core | ratio | p50 / p99 ms raw ws | p50 / p99 ms ours |');
console.log('|---|---|---|---|---|---|');
for (const row of rows as Array<{ workload: string; baseline: { perCore: number; p50: number; p99: number }; ours: { perCore: number; p50: number; p99: number }; ratio: number }>) {
  console.log(`| ${row.workload} | ${Math.round(row.baseline.perCore)} | ${Math.round(row.ours.perCore)} | ${row.ratio.toFixed(2)}x | ${row.baseline.p50.toFixed(2)} / ${row.baseline.p99.toFixed(2)} | ${row.ours.p50.toFixed(2)} / ${row.ours.p99.toFixed(2)} |`);
}
const [idleBase, idleOurs] = [idleRow('baseline'), idleRow('ours')];
console.log(`\n| idle, ${idleSockets} sockets | raw ws | ours | ratio |\n|---|---|---|---|`);
console.log(`| server RSS per 1,000 sockets (MB) | ${idleBase.perThousandMb.toFixed(2)} | ${idleOurs.perThousandMb.toFixed(2)} | ${(idleOurs.perThousandMb / idleBase.perThousandMb).toFixed(2)}x |`);
console.log(`| connects/s | ${Math.round(idleBase.connectsPerS)} | ${Math.round(idleOurs.connectsPerS)} | ${(idleOurs.connectsPerS / idleBase.connectsPerS).toFixed(2)}x |`);
rows.push({ workload: `idle ${idleSockets}`, baseline: idleBase, ours: idleOurs });
mkdirSync('bench/results', { recursive: true });
const file = `bench/results/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ quick, reps, durationMs, pairs, window, rows }, null, 2));
console.log(`\nwritten to ${file}`);
