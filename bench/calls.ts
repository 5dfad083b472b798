/**
 * `npm run bench:calls`: where the time of a call goes (issue 15). Sequential calls between two
 * Chromium pages against a real Node server on loopback, in six variants alternated call by
 * call (the order rotated each round) so they share the machine's noise:
 *   ours:    the demo page driven through its UI (Start / Stop), SDK and all;
 *   minimal: a bare RTCPeerConnection page speaking our protocol (bench/calls-minimal.ts), the
 *            best this browser does here;
 *   preview: the minimal page showing the camera locally, as ours does (a control);
 *   negotiationneeded: the minimal page offering from negotiationneeded, as our SDK does (a
 *            control);
 *   max-bundle: the minimal page with bundlePolicy 'max-bundle' (one transport to gather for);
 *   prewarm: the minimal page with its connection made 250 ms before the request, with
 *            iceCandidatePoolSize 1 (the prototype of pre-warming).
 * Each page stamps its own timeline (bench/calls-probe.ts): frames sent and received, candidates,
 * ICE, DTLS, connection state, first remote video frame, all on the clock both pages share. A TCP
 * proxy in a worker (bench/calls-proxy.ts) sits between the browsers and the server and stamps
 * every frame, which gives the server's own share (frame in -> frame out) without touching it.
 * Prints p50/p95 per milestone and per phase for each variant, the ratios ours / each other
 * variant, the server's share per message type (during the calls, and replayed by plain clients
 * once the browsers are closed: bench/calls-replay.ts), and writes it all, every call's raw
 * stamps included, to bench/results/calls-*.json. What each phase is: bench/README.md, "Calls:
 * where the time goes (issue 15)".
 * A is the requester (impolite, offers), B waits in the pool (polite, answers).
 * Usage: npm run bench:calls [-- --calls 20] [-- --variants minimal,preview] (ours always runs)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Page } from 'playwright-core';
import { launchNode } from '../test/contract/launchers.ts';
import { launchBrowser, openPage, waitForCallStatus } from '../test/e2e/browser.ts';
import { MINIMAL_PAGE, MINIMAL_PATH } from './calls-minimal.ts';
import { PROBE } from './calls-probe.ts';
import { replaySignaling } from './calls-replay.ts';
import { OURS_ENV } from './targets.ts';
import type { FrameStamp } from './calls-proxy.ts';

const calls = Number(process.argv[process.argv.indexOf('--calls') + 1]) || 20;
const CALL_TIMEOUT_MS = 20_000;
/**
 * How long B waits in the pool before A's request, in every variant. A stranger who is matched
 * has been waiting: its camera and preview are running, not starting. Without the wait B's
 * camera would start in the same few milliseconds as A's request, which no real call sees.
 */
const POOL_WAIT_MS = process.argv.includes('--pool-wait')
  ? Number(process.argv[process.argv.indexOf('--pool-wait') + 1])
  : 1000;
const inThePool = () => new Promise((resolve) => setTimeout(resolve, POOL_WAIT_MS));

const ALL_VARIANTS = [
  'ours',
  'minimal',
  'preview',
  'negotiationneeded',
  'max-bundle',
  'prewarm',
] as const;
type Variant = (typeof ALL_VARIANTS)[number];
/** `--variants ours,minimal` runs a subset (ours always first: the ratios are against it). */
const variantsArg = process.argv.includes('--variants')
  ? process.argv[process.argv.indexOf('--variants') + 1]?.split(',')
  : undefined;
const VARIANTS: readonly Variant[] = variantsArg
  ? ALL_VARIANTS.filter((v) => v === 'ours' || variantsArg.includes(v))
  : ALL_VARIANTS;

/** What the minimal page does differently per variant (bench/calls-minimal.ts). */
interface MinimalOptions {
  preview: boolean;
  prewarm: boolean;
  /** With `prewarm`: how long the connection gathers before the request. */
  warmupMs: number;
  maxBundle: boolean;
  viaNegotiationNeeded: boolean;
}
const NONE: MinimalOptions = {
  preview: false,
  prewarm: false,
  warmupMs: 0,
  maxBundle: false,
  viaNegotiationNeeded: false,
};
const MINIMAL_OPTIONS: Record<Exclude<Variant, 'ours'>, MinimalOptions> = {
  minimal: NONE,
  preview: { ...NONE, preview: true },
  negotiationneeded: { ...NONE, viaNegotiationNeeded: true },
  'max-bundle': { ...NONE, maxBundle: true },
  // Longer than Chromium takes to gather here (about 130 ms after the offer, measured).
  prewarm: { ...NONE, prewarm: true, warmupMs: 250 },
};

/** A page's first stamp of each thing since the call began (ms, shared clock). */
type Marks = Record<string, number>;

interface CallRecord {
  variant: Variant;
  a: Marks;
  b: Marks;
}

/** Milestones of the timeline, in call order: label, page, mark (bench/calls-probe.ts). */
const MILESTONES: Array<[string, 'a' | 'b', string]> = [
  ['click / call() (A)', 'a', 'click'],
  ['getUserMedia resolved (A)', 'a', 'gum:done'],
  ['ice_servers received (A; only ours asks)', 'a', 'recv:ice_servers'],
  ['RTCPeerConnection created (A)', 'a', 'pc:created'],
  ['request_random_peer sent (A)', 'a', 'sent:request_random_peer'],
  ['assign_role received (A)', 'a', 'recv:assign_role'],
  ['assign_role received (B)', 'b', 'recv:assign_role'],
  ['addTrack calls done (A)', 'a', 'addTrack:done'],
  ['negotiationneeded fired (A)', 'a', 'pc:negotiationneeded'],
  ['setLocalDescription(offer) called (A)', 'a', 'sld:start'],
  ['setLocalDescription(offer) resolved (A)', 'a', 'sld:done'],
  ['offer sent (A)', 'a', 'sent:webrtc_offer'],
  ['first local candidate (A)', 'a', 'ice:local-candidate'],
  ['offer received (B)', 'b', 'recv:webrtc_offer'],
  ['setRemoteDescription(offer) called (B)', 'b', 'srd:start'],
  ['setRemoteDescription(offer) resolved (B)', 'b', 'srd:done'],
  ['addTrack calls done (B)', 'b', 'addTrack:done'],
  ['setLocalDescription(answer) called (B)', 'b', 'sld:start'],
  ['setLocalDescription(answer) resolved (B)', 'b', 'sld:done'],
  ['answer sent (B)', 'b', 'sent:webrtc_answer'],
  ['first local candidate (B)', 'b', 'ice:local-candidate'],
  ['first remote candidate received (B)', 'b', 'recv:webrtc_candidate'],
  ['answer received (A)', 'a', 'recv:webrtc_answer'],
  ['first remote candidate received (A)', 'a', 'recv:webrtc_candidate'],
  ['ICE checking (B)', 'b', 'ice:checking'],
  ['ICE checking (A)', 'a', 'ice:checking'],
  ['first candidate pair selected (A)', 'a', 'ice:selected-pair'],
  ['first candidate pair selected (B)', 'b', 'ice:selected-pair'],
  ['ICE connected (A)', 'a', 'ice:connected'],
  ['ICE connected (B)', 'b', 'ice:connected'],
  ['DTLS connected (A)', 'a', 'dtls:connected'],
  ['DTLS connected (B)', 'b', 'dtls:connected'],
  ['ICE gathering complete (A)', 'a', 'ice:gathering-done'],
  ['ICE gathering complete (B)', 'b', 'ice:gathering-done'],
  ['connectionState connected (A)', 'a', 'pc:connected'],
  ['connectionState connected (B)', 'b', 'pc:connected'],
  ['first remote video frame decoded (A)', 'a', 'video:first-frame'],
  ['first remote video frame decoded (B)', 'b', 'video:first-frame'],
];

/** The critical path of A's call, phase by phase: each from the previous milestone. */
const PHASES: Array<[string, 'a' | 'b', string]> = [
  ['request -> assign_role (A)', 'a', 'recv:assign_role'],
  ['assign_role (A) -> offer sent', 'a', 'sent:webrtc_offer'],
  ['offer sent -> offer received (B)', 'b', 'recv:webrtc_offer'],
  ['offer received -> answer sent (B)', 'b', 'sent:webrtc_answer'],
  ['answer sent -> answer received (A)', 'a', 'recv:webrtc_answer'],
  ['answer received -> first pair selected (A)', 'a', 'ice:selected-pair'],
  ['first pair selected -> DTLS connected (A)', 'a', 'dtls:connected'],
  ['DTLS connected -> connected (A)', 'a', 'pc:connected'],
  ['connected -> first video frame (A)', 'a', 'video:first-frame'],
];

const REQUEST = 'sent:request_random_peer';

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};

const fmt = (value: number | undefined) => (value === undefined ? '-' : value.toFixed(1));

/** p50 and p95 of the defined values; undefined when a milestone never happened in a variant. */
function summarize(values: Array<number | undefined>) {
  const defined = values.filter((value): value is number => value !== undefined);
  return defined.length
    ? { p50: percentile(defined, 50), p95: percentile(defined, 95), n: defined.length }
    : undefined;
}

/** Milliseconds from A's request to `mark` on `side`. */
function sinceRequest(call: CallRecord, side: 'a' | 'b', mark: string): number | undefined {
  const at = call[side][mark];
  return at === undefined ? undefined : at - call.a[REQUEST]!;
}

const timeline = (page: Page) =>
  page.evaluate(() => (window as unknown as { __timeline: { marks: Marks } }).__timeline.marks);

const resetTimeline = (page: Page) =>
  page.evaluate(() => (window as unknown as { __timeline: { reset(): void } }).__timeline.reset());

/** Waits until both pages decoded a remote video frame; returns both timelines. */
async function collect(a: Page, b: Page): Promise<{ a: Marks; b: Marks }> {
  const deadline = Date.now() + CALL_TIMEOUT_MS;
  for (;;) {
    const marks = { a: await timeline(a), b: await timeline(b) };
    if (marks.a['video:first-frame'] && marks.b['video:first-frame']) return marks;
    if (Date.now() > deadline)
      throw new Error(`call without video both ways within 20 s: ${JSON.stringify(marks)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The frame clock in its worker; `take()` hands over the frames stamped since the last call. */
async function startProxy(targetPort: number) {
  // Node 20 loads a worker's entry before tsx's hooks are in place: the entry registers them first.
  const entry = new URL('./calls-proxy.ts', import.meta.url).href;
  const worker = new Worker(
    `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`,
    { eval: true, workerData: { targetPort } },
  );
  const port = await new Promise<number>((resolve, reject) => {
    worker.once('message', (message: { port: number }) => resolve(message.port));
    worker.once('error', reject);
  });
  return {
    port,
    take: () =>
      new Promise<FrameStamp[]>((resolve) => {
        worker.once('message', (message: { stamps: FrameStamp[] }) => resolve(message.stamps));
        worker.postMessage('take');
      }),
    stop: () => worker.terminate(),
  };
}

/**
 * The server's share per message type, from one call's frames: each frame out matched with the
 * frame in that caused it. `ice_servers` and a pong answer the same user's latest
 * `get_ice_servers` and ping; `assign_role` comes from the requester's latest
 * `request_random_peer` (our page's B sends one too, answered by `no_peer_available`); relayed
 * signaling is matched first in, first out per sender, recipient and type.
 */
function serverShares(stamps: FrameStamp[]): Record<string, number[]> {
  const shares: Record<string, number[]> = {};
  const add = (name: string, ms: number) => (shares[name] ??= []).push(ms);
  const relayed = new Map<string, FrameStamp[]>();
  for (const frame of stamps) {
    if (frame.direction === 'in' && frame.type.startsWith('webrtc_')) {
      const key = `${frame.user}>${frame.other}:${frame.type}`;
      relayed.set(key, [...(relayed.get(key) ?? []), frame]);
    }
    if (frame.direction !== 'out') continue;
    if (frame.type === 'pong') {
      const ping = stamps.findLast(
        (s) =>
          s.direction === 'in' && s.type === 'ping' && s.user === frame.user && s.at <= frame.at,
      );
      if (ping) add('ping -> pong (ws library only, no hub)', frame.at - ping.at);
    } else if (frame.type === 'ice_servers') {
      const request = stamps.findLast(
        (s) =>
          s.direction === 'in' &&
          s.type === 'get_ice_servers' &&
          s.user === frame.user &&
          s.at <= frame.at,
      );
      if (request) add('ice_servers (our page only)', frame.at - request.at);
    } else if (frame.type === 'assign_role') {
      const requester = frame.role === 'impolite' ? frame.user : frame.peerId;
      const request = stamps.findLast(
        (s) =>
          s.direction === 'in' &&
          s.type === 'request_random_peer' &&
          s.user === requester &&
          s.at <= frame.at,
      );
      if (request)
        add(
          frame.role === 'impolite' ? 'assign_role to the requester' : 'assign_role to the partner',
          frame.at - request.at,
        );
    } else if (frame.type.startsWith('webrtc_')) {
      const source = relayed.get(`${frame.other}>${frame.user}:${frame.type}`)?.shift();
      if (source) add(frame.type.replace('webrtc_', ''), frame.at - source.at);
    }
  }
  return shares;
}

/** Serves the minimal page; its origin is let in by the server's ALLOWED_ORIGINS. */
const pageServer = createServer((request, response) => {
  const found = request.url?.startsWith(MINIMAL_PATH);
  response.writeHead(found ? 200 : 404, { 'content-type': 'text/html' });
  response.end(found ? MINIMAL_PAGE : '');
});
await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
const pageOrigin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
// The bench's limits lifted as in `npm run bench` (the replay below matches hundreds of times a minute).
const server = await launchNode({ ...OURS_ENV, ALLOWED_ORIGINS: pageOrigin });
const proxy = await startProxy(Number(new URL(server.baseUrl).port));
// Our page is loaded through the proxy: its origin and Host header agree, so the server's
// own-origin check lets it in, and its same-origin socket goes through the proxy too.
const baseUrl = `http://127.0.0.1:${proxy.port}`;
const browser = await launchBrowser();
const startedAt = new Date();
const loadBefore = loadavg();
try {
  const openWithProbe = async (url: string) => {
    const page = await openPage(browser, 'about:blank');
    await page.addInitScript({ content: PROBE });
    await page.goto(url);
    return page;
  };
  const ours = { a: await openWithProbe(`${baseUrl}/`), b: await openWithProbe(`${baseUrl}/`) };
  for (const page of [ours.a, ours.b])
    await page.locator('#connection-status', { hasText: 'Connected' }).waitFor();
  const minimalQuery = `server=127.0.0.1:${proxy.port}`;
  const minimal = {
    a: await openWithProbe(`${pageOrigin}${MINIMAL_PATH}?${minimalQuery}&userId=minimal-a`),
    b: await openWithProbe(`${pageOrigin}${MINIMAL_PATH}?${minimalQuery}&userId=minimal-b`),
  };

  async function oursCall(): Promise<{ a: Marks; b: Marks }> {
    // B waits in the pool; A's request finds it. Both stop afterwards, so the next round starts clean.
    await ours.b.locator('#start').click();
    await waitForCallStatus(ours.b, 'Waiting for a stranger');
    await inThePool();
    await ours.a.locator('#start').click();
    const marks = await collect(ours.a, ours.b);
    await ours.a.locator('#stop').click();
    await waitForCallStatus(ours.a, 'Stopped');
    await waitForCallStatus(ours.b, 'The stranger left');
    await ours.b.locator('#stop').click();
    await waitForCallStatus(ours.b, 'Stopped');
    return marks;
  }

  async function minimalCall(options: MinimalOptions): Promise<{ a: Marks; b: Marks }> {
    type Driven = {
      minimal: { wait(o: MinimalOptions): Promise<void>; call(o: MinimalOptions): Promise<void> };
    };
    await minimal.b.evaluate((o) => (window as unknown as Driven).minimal.wait(o), options);
    await inThePool();
    await minimal.a.evaluate((o) => (window as unknown as Driven).minimal.call(o), options);
    const marks = await collect(minimal.a, minimal.b);
    await minimal.a.evaluate(() =>
      (window as unknown as { minimal: { hangup(): void } }).minimal.hangup(),
    );
    await minimal.b.waitForFunction(() =>
      (window as unknown as { minimal: { idle(): boolean } }).minimal.idle(),
    );
    return marks;
  }

  const records: CallRecord[] = [];
  const shares: Record<string, number[]> = {};
  const sizes = { offer: [] as number[], answer: [] as number[], candidates: [] as number[] };
  for (let i = 0; i < calls; i++) {
    // Rotated each round, so no variant always runs right after the same one.
    for (let k = 0; k < VARIANTS.length; k++) {
      const variant = VARIANTS[(i + k) % VARIANTS.length]!;
      const pages = variant === 'ours' ? ours : minimal;
      await resetTimeline(pages.a);
      await resetTimeline(pages.b);
      await proxy.take();
      const marks =
        variant === 'ours' ? await oursCall() : await minimalCall(MINIMAL_OPTIONS[variant]);
      records.push({ variant, ...marks });
      const stamps = await proxy.take();
      for (const [name, values] of Object.entries(serverShares(stamps)))
        (shares[name] ??= []).push(...values);
      const sent = (type: string) => stamps.filter((f) => f.direction === 'in' && f.type === type);
      sizes.offer.push(...sent('webrtc_offer').map((f) => f.bytes));
      sizes.answer.push(...sent('webrtc_answer').map((f) => f.bytes));
      // Per side, end-of-candidates included.
      sizes.candidates.push(sent('webrtc_candidate').length / 2);
    }
  }
  const loadAfter = loadavg();

  // The same signaling without the browsers' load, through the same proxy.
  await ours.a.close();
  await ours.b.close();
  await minimal.a.close();
  await minimal.b.close();
  await proxy.take();
  const replayRounds = 200;
  await replaySignaling({
    proxyPort: proxy.port,
    origin: pageOrigin,
    rounds: replayRounds,
    offerBytes: percentile(sizes.offer, 50),
    answerBytes: percentile(sizes.answer, 50),
    // Less the end-of-candidates, which the replay adds.
    candidates: Math.max(0, Math.round(percentile(sizes.candidates, 50)) - 1),
  });
  const replayShares = serverShares(await proxy.take());

  const byVariant = (variant: Variant) => records.filter((r) => r.variant === variant);
  const head = (title: string) =>
    `\n| ${title} | ${VARIANTS.map((v) => `${v} p50 | ${v} p95`).join(' | ')} |\n|---|${VARIANTS.map(() => '---|---').join('|')}|`;
  const row = (label: string, stats: Array<ReturnType<typeof summarize>>) =>
    `| ${label} | ${stats.map((s) => `${fmt(s?.p50)} | ${fmt(s?.p95)}`).join(' | ')} |`;

  const milestoneStats = Object.fromEntries(
    MILESTONES.map(([label, side, mark]) => [
      label,
      VARIANTS.map((v) => summarize(byVariant(v).map((c) => sinceRequest(c, side, mark)))),
    ]),
  );
  const phaseStats = Object.fromEntries(
    PHASES.map(([label, side, mark], index) => {
      const [previousSide, previousMark] =
        index === 0 ? (['a', REQUEST] as const) : [PHASES[index - 1]![1], PHASES[index - 1]![2]];
      return [
        label,
        VARIANTS.map((v) =>
          summarize(
            byVariant(v).map((c) => {
              const to = sinceRequest(c, side, mark);
              const from = sinceRequest(c, previousSide, previousMark);
              return to === undefined || from === undefined ? undefined : to - from;
            }),
          ),
        ),
      ];
    }),
  );
  const connected = VARIANTS.map((v) =>
    summarize(byVariant(v).map((c) => sinceRequest(c, 'a', 'pc:connected'))),
  );
  const video = VARIANTS.map((v) =>
    summarize(byVariant(v).map((c) => sinceRequest(c, 'a', 'video:first-frame'))),
  );
  const clickToRequest = VARIANTS.map((v) =>
    summarize(byVariant(v).map((c) => c.a[REQUEST]! - c.a.click!)),
  );
  const shareStats = (all: Record<string, number[]>) =>
    Object.fromEntries(
      Object.entries(all).map(([name, values]) => [
        name,
        { ...summarize(values)!, max: Math.max(...values) },
      ]),
    );
  const serverStats = { calls: shareStats(shares), replay: shareStats(replayShares) };

  console.log(
    `\n${calls} calls per variant, alternated; ${startedAt.toISOString()}; load average ${loadBefore
      .map((l) => l.toFixed(2))
      .join(
        ' ',
      )} before, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after; ${cpus().length} x ${cpus()[0]?.model}; Node ${process.version}`,
  );
  console.log(head('ms since request_random_peer sent (A)'));
  for (const [label, stats] of Object.entries(milestoneStats)) console.log(row(label, stats));
  console.log(head('phase (ms, from the previous one)'));
  for (const [label, stats] of Object.entries(phaseStats)) console.log(row(label, stats));
  console.log(row('**total: request -> connected (A)**', connected));
  console.log(row('**total: request -> first video frame (A)**', video));
  console.log(row('before the request: click -> request sent (A)', clickToRequest));
  const others = VARIANTS.slice(1);
  const ratio = (s: Array<ReturnType<typeof summarize>>, k: 'p50' | 'p95', v: number) =>
    `${(s[0]![k] / s[v]![k]).toFixed(2)}x`;
  console.log(
    `\n| ours / other | ${others.map((v) => `vs ${v} p50 | p95`).join(' | ')} |\n|---|${others.map(() => '---|---').join('|')}|`,
  );
  for (const [label, stats] of [
    ['request -> connected (A) (target: within 1.1x)', connected],
    ['request -> first video frame (A)', video],
  ] as const)
    console.log(
      `| ${label} | ${others.map((_, i) => `${ratio(stats, 'p50', i + 1)} | ${ratio(stats, 'p95', i + 1)}`).join(' | ')} |`,
    );
  console.log(
    `\n| server share, frame in -> frame out at the proxy (ms) | during the calls: n | p50 | p95 | max | replayed, browsers idle: n | p50 | p95 | max |\n|---|---|---|---|---|---|---|---|---|`,
  );
  const cells = (s: { n: number; p50: number; p95: number; max: number } | undefined) =>
    s
      ? `${s.n} | ${s.p50.toFixed(2)} | ${s.p95.toFixed(2)} | ${s.max.toFixed(2)}`
      : '- | - | - | -';
  for (const name of new Set([
    ...Object.keys(serverStats.calls),
    ...Object.keys(serverStats.replay),
  ]))
    console.log(
      `| ${name} | ${cells(serverStats.calls[name])} | ${cells(serverStats.replay[name])} |`,
    );
  console.log(
    `(replay: ${replayRounds} calls, offer ${percentile(sizes.offer, 50)} B, answer ${percentile(sizes.answer, 50)} B, ${percentile(sizes.candidates, 50)} candidate frames per side)`,
  );

  mkdirSync('bench/results', { recursive: true });
  const file = `bench/results/calls-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(
    file,
    JSON.stringify(
      {
        calls,
        startedAt,
        loadBefore,
        loadAfter,
        machine: `${cpus().length} x ${cpus()[0]?.model}, Node ${process.version}, loopback, headless Chromium with fake devices`,
        milestones: milestoneStats,
        phases: phaseStats,
        connected,
        video,
        clickToRequest,
        server: serverStats,
        sizes,
        records,
        serverShares: shares,
      },
      null,
      2,
    ),
  );
  console.log(`\nwritten to ${file}`);
} finally {
  await browser.close();
  await proxy.stop();
  await server.stop();
  pageServer.close();
}
