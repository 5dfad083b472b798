/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`): the functions with the most self time,
 * and total (inclusive) time of functions whose name matches `--total` (a regular expression),
 * each as a share of the profile's samples, GC and idle shown as V8 reports them.
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top 30] [--total 'parseClientFrame|send']
 *        [--from US --to US --per N]
 *
 * `--from`/`--to` keep the samples within a window (CLOCK_MONOTONIC microseconds, as V8 stamps
 * them; bench/steadiness.ts records its measurement window so), and `--per N` prints microseconds
 * per unit (N messages in the window) instead of shares.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}
interface Profile {
  nodes: Node[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const argv = process.argv.slice(2);
const option = (name: string) =>
  argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : undefined;
const file = argv.find((item) => item.endsWith('.cpuprofile'));
if (!file) {
  console.error('usage: profile-summary.ts FILE.cpuprofile [--top N] [--total REGEX]');
  process.exit(2);
}
const top = Number(option('top') ?? 30);
const totalPattern = option('total');
const from = Number(option('from') ?? -Infinity);
const to = Number(option('to') ?? Infinity);
const per = option('per') === undefined ? undefined : Number(option('per'));

const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes)
  for (const child of node.children ?? []) parent.set(child, node.id);

// Time per sample: the delta to the next sample (V8's own attribution).
const selfUs = new Map<number, number>();
let allUs = 0;
let stamp = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  stamp += profile.timeDeltas[i]!;
  if (stamp < from || stamp > to) continue;
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt);
  allUs += dt;
}

const label = (node: Node) => {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url
    ? `${url.replace(/^.*\/(node_modules\/[^/]+|src|bench)\//, '$1/')}:${lineNumber + 1}`
    : '';
  return `${functionName || '(anonymous)'} ${where}`.trim();
};

const selfByLabel = new Map<string, number>();
for (const [id, us] of selfUs) {
  const key = label(byId.get(id)!);
  selfByLabel.set(key, (selfByLabel.get(key) ?? 0) + us);
}
const pct = (us: number) =>
  per === undefined
    ? `${((100 * us) / allUs).toFixed(1).padStart(5)}%`
    : `${(us / per).toFixed(3).padStart(7)} us`;
console.log(
  `${file}: ${(allUs / 1000).toFixed(0)} ms sampled${per === undefined ? '' : `, per unit of ${per}`}`,
);
console.log('self time:');
for (const [key, us] of [...selfByLabel].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`  ${pct(us)}  ${key}`);

if (totalPattern) {
  const pattern = new RegExp(totalPattern);
  const totals = new Map<string, number>();
  for (const [id, us] of selfUs) {
    // Count each matching function once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at)!;
      if (!pattern.test(node.callFrame.functionName)) continue;
      const key = label(node);
      if (seen.has(key)) continue;
      seen.add(key);
      totals.set(key, (totals.get(key) ?? 0) + us);
    }
  }
  console.log(`total time of /${totalPattern}/:`);
  for (const [key, us] of [...totals].sort((a, b) => b[1] - a[1]))
    console.log(`  ${pct(us)}  ${key}`);
}
