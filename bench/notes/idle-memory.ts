/**
 * Where a server's idle memory per socket goes, on Deno (bench/notes/deno-idle-memory.md) or Node.
 *
 *   node --import tsx bench/notes/idle-memory.ts [--node] [--root DIR] [--entry FILE | --bare]
 *     [--sockets 2000] [--warmup 200] [--hold-ms 20000] [--malloc] [--snapshot PREFIX] [--smaps PREFIX]
 *
 * Starts `deno run --v8-flags=--expose-gc --inspect=127.0.0.1:PORT ENTRY` in DIR (PORT=0, loopback,
 * no per-IP cap), or with `--node` `node --expose-gc --inspect=... --import tsx ENTRY` (default
 * entry src/adapters/node.ts; `--entry bench/baseline-server.ts` is raw `ws`), and talks to it over
 * the DevTools protocol (a `ws` client). From this process it
 * opens and closes a warm-up batch, then opens N idle sockets on 127.0.0.1 and holds them. Before
 * the N sockets, after the hold, and once more after closing them all, it runs `gc()` three times
 * in the server and reads its `memoryUsage()` there and VmRSS from /proc. `--malloc` (Deno only) adds glibc's
 * own counters (`mallinfo2`, through Deno's FFI) and the RSS after `malloc_trim(0)`; `--snapshot`
 * writes a heap snapshot at each reading and prints the object classes that grew, by self size;
 * `--smaps` copies /proc/PID/smaps. `--alloc` samples what the ramp allocates (V8's sampling heap
 * profiler, garbage included) and prints the functions that allocated most, in bytes per socket. `--bare` (Deno) serves a bare `Deno.upgradeWebSocket` server instead
 * (no Hono, no hub), the floor any Deno WebSocket server pays. The server is killed at the end.
 * (With the inspector attached, RSS grows with each snapshot: read heapUsed and the classes.)
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WebSocket } from 'ws';

const args = process.argv.slice(2);
const arg = (name: string, fallback?: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && args[at + 1] !== undefined && !args[at + 1]!.startsWith('--')
    ? args[at + 1]!
    : fallback;
};
const root = resolve(arg('root', process.cwd())!);
const sockets = Math.min(4_999, Number(arg('sockets', '2000')));
const holdMs = Number(arg('hold-ms', '20000'));
const warmup = Math.min(1000, Number(arg('warmup', '200')));
const snapshot = arg('snapshot');
/** Also read glibc's malloc counters in the server (through Deno's FFI: needs --allow-ffi there). */
const withMalloc = args.includes('--malloc') && !args.includes('--node');
/** Also copy the server's /proc/PID/smaps at each reading, to PREFIX-LABEL.smaps. */
const smaps = arg('smaps');
/** Also sample what the ramp allocates, garbage included, by allocating function. */
const alloc = args.includes('--alloc');
const deno = join(process.cwd(), 'node_modules/.bin/deno');
const onNode = args.includes('--node');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The bare server: what Deno itself keeps per upgraded socket, with the same idleTimeout. */
const BARE = `
Deno.serve({ port: 0, hostname: '127.0.0.1', onListen: ({ port }) => console.log('HTTP server started on :' + port) }, (req) => {
  const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 54 });
  socket.onmessage = (e) => socket.send(e.data);
  return response;
});`;
let entry = arg('entry', onNode ? 'src/adapters/node.ts' : 'src/adapters/deno.ts')!;
if (args.includes('--bare')) {
  entry = join(mkdtempSync(join(tmpdir(), 'deno-bare-')), 'bare.ts');
  writeFileSync(entry, BARE);
}

const inspectPort = 9300 + Math.floor(Math.random() * 600);
/** Node is given a free port (found after start-up by connecting); Deno says which it took. */
const nodePort = 8800 + Math.floor(Math.random() * 400);
const server = spawn(
  onNode ? process.execPath : deno,
  onNode
    ? ['--expose-gc', `--inspect=127.0.0.1:${inspectPort}`, '--import', 'tsx', entry]
    : [
        'run',
        '--allow-net',
        '--allow-env',
        '--allow-read',
        ...(withMalloc ? ['--allow-ffi'] : []),
        '--v8-flags=--expose-gc',
        `--inspect=127.0.0.1:${inspectPort}`,
        entry,
      ],
  {
    cwd: root,
    env: {
      ...process.env,
      PORT: onNode ? String(nodePort) : '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'error',
      MAX_CONNECTIONS_PER_IP: '0',
      ALLOW_NO_ORIGIN: 'true',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  },
);
const stop = () => server.exitCode === null && server.kill('SIGKILL');
process.on('exit', stop);
let output = '';
server.stdout.on('data', (c: Buffer) => (output += c));
server.stderr.on('data', (c: Buffer) => (output += c));
const port = onNode
  ? await nodeListening()
  : await new Promise<number>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`no start-up line:\n${output}`)), 60_000);
      const check = () => {
        const match = /HTTP server started on :(\d+)/.exec(output);
        if (!match || !/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.test(output)) return;
        clearTimeout(timer);
        res(Number(match[1]));
      };
      server.stdout.on('data', check);
      server.stderr.on('data', check);
    });

/** Node: the port once something answers on it (the server logs nothing at LOG_LEVEL=error). */
async function nodeListening(): Promise<number> {
  for (let tries = 0; tries < 240; tries++) {
    await sleep(250);
    const up = await new Promise<boolean>((done) => {
      const probe = connect(nodePort, '127.0.0.1', () => {
        probe.destroy();
        done(true);
      });
      probe.on('error', () => done(false));
    });
    if (up && /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.test(output)) return nodePort;
  }
  throw new Error(`no start-up:\n${output}`);
}

/** A minimal DevTools protocol client. */
const cdp = new WebSocket(/ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(output)![0], {
  maxPayload: 1 << 30,
});
await new Promise((r, fail) => {
  cdp.once('open', r);
  cdp.once('error', fail);
});
let nextId = 0;
/** A DevTools protocol answer, as far as this script reads one. */
type CdpResult = { result: { value: string } };
const pending = new Map<number, (result: CdpResult | Promise<never>) => void>();
let chunks: string[] = [];
cdp.on('message', (data: Buffer) => {
  const message = JSON.parse(data.toString());
  if (message.method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(message.params.chunk);
  else if (message.id !== undefined)
    pending.get(message.id)?.(
      message.error ? Promise.reject(new Error(message.error.message)) : message.result,
    );
});
const send = (method: string, params: object = {}) =>
  new Promise<CdpResult>((res) => {
    const id = ++nextId;
    pending.set(id, res);
    cdp.send(JSON.stringify({ id, method, params }));
  });
await send('Runtime.enable');

interface Reading {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  procRss: number;
  /** glibc: bytes malloc'd and not freed (uordblks + hblkhd), and bytes held free in its arenas (fordblks). */
  mallocInUse: number;
  mallocFree: number;
  /** VmRSS right after `malloc_trim(0)` gave the arenas' free pages back. */
  trimmedRss: number;
}

/** Evaluated in the server: glibc's `mallinfo2()` (summed over all arenas), and `malloc_trim(0)`. */
const MALLINFO = `(() => {
  const libc = globalThis.__libc ??= Deno.dlopen('libc.so.6', {
    mallinfo2: { parameters: [], result: { struct: Array(10).fill('usize') } },
    malloc_trim: { parameters: ['usize'], result: 'i32' },
  });
  const m = new BigUint64Array(libc.symbols.mallinfo2().buffer);
  return JSON.stringify({ mallocInUse: Number(m[7] + m[4]), mallocFree: Number(m[8]) });
})()`;
const procRssOf = (pid: number) =>
  Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
async function read(label: string): Promise<Reading> {
  for (let i = 0; i < 3; i++) {
    await send('Runtime.evaluate', { expression: 'gc()' });
    await sleep(300);
  }
  const result = await send('Runtime.evaluate', {
    expression: `JSON.stringify(${onNode ? 'process' : 'Deno'}.memoryUsage())`,
    returnByValue: true,
  });
  const procRss = procRssOf(server.pid!);
  if (smaps) writeFileSync(`${smaps}-${label}.smaps`, readFileSync(`/proc/${server.pid}/smaps`));
  const reading = {
    mallocInUse: NaN,
    mallocFree: NaN,
    trimmedRss: NaN,
    ...JSON.parse(result.result.value),
    procRss,
  } as Reading;
  if (withMalloc) {
    Object.assign(
      reading,
      JSON.parse(
        (await send('Runtime.evaluate', { expression: MALLINFO, returnByValue: true })).result
          .value,
      ),
    );
    await send('Runtime.evaluate', { expression: 'globalThis.__libc.symbols.malloc_trim(0)' });
    reading.trimmedRss = procRssOf(server.pid!);
  }
  if (snapshot) {
    chunks = [];
    await send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    writeFileSync(`${snapshot}-${label}.heapsnapshot`, chunks.join(''));
  }
  return reading;
}

/** Opens `count` sockets, 100 handshakes at a time. */
async function openAll(count: number, prefix: string): Promise<WebSocket[]> {
  const opened: WebSocket[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, (_, j) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?userId=${prefix}${i + j}`, {
        perMessageDeflate: false,
      });
      return new Promise<WebSocket>((r, fail) => {
        ws.once('open', () => r(ws));
        ws.once('error', fail);
      });
    });
    opened.push(...(await Promise.all(batch)));
  }
  return opened;
}

// Warm-up: the first upgrades compile code and size pools, which no later socket pays again.
for (const ws of await openAll(warmup, 'warm')) ws.close();
await sleep(3000);
const before = await read('before');
if (alloc)
  await send('HeapProfiler.startSampling', {
    samplingInterval: 512,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
const started = performance.now();
const clients = await openAll(sockets, 'idle');
const rampMs = performance.now() - started;
if (alloc) console.log(allocated((await send('HeapProfiler.stopSampling')) as unknown as Sampled));
await sleep(holdMs);
const open = clients.filter((ws) => ws.readyState === WebSocket.OPEN).length;
const after = await read('after');

const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
const perThousand = (key: keyof Reading) => mb(((after[key] - before[key]) * 1000) / sockets);
console.log(
  `entry ${args.includes('--bare') ? 'bare Deno.upgradeWebSocket' : entry} in ${root}; ${sockets} sockets (${open} still open) in ${rampMs.toFixed(0)} ms, held ${holdMs} ms`,
);
console.log('| | before (MB) | after (MB) | per 1,000 sockets (MB) |\n|---|---|---|---|');
for (const key of [
  'procRss',
  'rss',
  'heapTotal',
  'heapUsed',
  'external',
  ...(withMalloc ? (['mallocInUse', 'mallocFree', 'trimmedRss'] as const) : []),
] as const)
  console.log(`| ${key} | ${mb(before[key])} | ${mb(after[key])} | ${perThousand(key)} |`);
console.log(
  `| rss - heapTotal | ${mb(before.rss - before.heapTotal)} | ${mb(after.rss - after.heapTotal)} | ${mb(((after.rss - after.heapTotal - (before.rss - before.heapTotal)) * 1000) / sockets)} |`,
);
if (snapshot)
  console.log(growth(`${snapshot}-before.heapsnapshot`, `${snapshot}-after.heapsnapshot`));
// What stays once every socket is gone again: memory the process keeps, not memory a socket holds.
for (const ws of clients) ws.close();
await sleep(5000);
const closed = await read('closed');
const mallocClosed = withMalloc
  ? `, malloc in use ${mb(closed.mallocInUse)} MB, free ${mb(closed.mallocFree)} MB, rss after trim ${mb(closed.trimmedRss)} MB`
  : '';
console.log(
  `after closing them all: rss ${mb(closed.rss)} MB, heapUsed ${mb(closed.heapUsed)} MB, rss - heapTotal ${mb(closed.rss - closed.heapTotal)} MB${mallocClosed}`,
);
cdp.close();
stop();
process.exit(0);

/** The object classes (V8 node type and name) whose self size grew most between two snapshots. */
function growth(beforeFile: string, afterFile: string): string {
  const tally = (file: string) => {
    const snap = JSON.parse(readFileSync(file, 'utf8'));
    const fields: string[] = snap.snapshot.meta.node_fields;
    const types: string[] = snap.snapshot.meta.node_types[0];
    const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((f) =>
      fields.indexOf(f),
    ) as [number, number, number];
    const byClass = new Map<string, { count: number; size: number }>();
    for (let i = 0; i < snap.nodes.length; i += fields.length) {
      const type = types[snap.nodes[i + typeAt]]!;
      const name =
        type === 'object' || type === 'closure' || type === 'native' || type === 'hidden'
          ? String(snap.strings[snap.nodes[i + nameAt]]).slice(0, 60)
          : '';
      const key = `${type} ${name}`;
      const entry = byClass.get(key) ?? { count: 0, size: 0 };
      entry.count++;
      entry.size += snap.nodes[i + sizeAt];
      byClass.set(key, entry);
    }
    return byClass;
  };
  const [a, b] = [tally(beforeFile), tally(afterFile)];
  const rows = [...b].map(([key, { count, size }]) => ({
    key,
    count: count - (a.get(key)?.count ?? 0),
    size: size - (a.get(key)?.size ?? 0),
  }));
  rows.sort((x, y) => y.size - x.size);
  const total = rows.reduce((sum, r) => sum + r.size, 0);
  const lines = [
    `heap snapshot growth: ${(total / sockets).toFixed(0)} B per socket (self sizes)`,
    '| class | count per socket | bytes per socket |',
    '|---|---|---|',
  ];
  for (const r of rows.slice(0, 25))
    lines.push(
      `| ${r.key.replace(/\|/g, '/')} | ${(r.count / sockets).toFixed(2)} | ${(r.size / sockets).toFixed(0)} |`,
    );
  return lines.join('\n');
}

/** V8's sampling heap profile, as far as `allocated` reads it. */
interface SampledNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: SampledNode[];
}
type Sampled = { profile: { head: SampledNode } };

/** The functions that allocated most during the ramp (self sizes), in bytes per socket. */
function allocated({ profile }: Sampled): string {
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (node: SampledNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      .replace(/^.*node_modules\//, '')
      .replace(/^file:\/\/.*?\/(src|bench)\//, '$1/');
    const key = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) walk(child);
  };
  walk(profile.head);
  const rows = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30);
  // By where the allocating function lives: a package, Node's own code, ours, or V8's builtins.
  const byOwner = new Map<string, number>();
  for (const [key, size] of byFunction) {
    const where = key.slice(key.indexOf(' ') + 1);
    const owner = /^node:internal\/deps\/undici/.test(where)
      ? 'undici (Node)'
      : where.startsWith('node:')
        ? 'Node'
        : /^(src|bench)\//.test(where)
          ? 'ours'
          : /^(@[^/]+\/)?[^/:]+\//.test(where)
            ? where.match(/^(@[^/]+\/)?[^/:]+/)![0]
            : 'V8 builtins and natives';
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + size);
  }
  const owners = [...byOwner].sort((a, b) => b[1] - a[1]);
  return [
    `allocated during the ramp: ${(total / sockets).toFixed(0)} B per socket (sampled, garbage included)`,
    owners.map(([owner, size]) => `${owner} ${(size / sockets).toFixed(0)}`).join(', '),
    '| function | bytes per socket |',
    '|---|---|',
    ...rows.map(([key, size]) => `| ${key.replace(/\|/g, '/')} | ${(size / sockets).toFixed(0)} |`),
  ].join('\n');
}
