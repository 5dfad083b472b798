/**
 * A real `redis-server` (Debian's) for one test file: 127.0.0.1 on a free port, nothing saved, a
 * temporary directory. It touches only the process it started (by PID); every test file must
 * `stop()` it in `afterAll` (a process exit hook SIGKILLs any left running, as a last resort).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRedisLink, type RedisLink } from '../../src/cluster/redis.ts';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>`; with `tls`, `rediss://localhost:<its TLS port>`. */
  readonly url: string;
  /** The plain (non-TLS) port, with `tls` too. */
  readonly port: number;
  /** The running server's PID (a new one after `restart`). */
  readonly pid: number;
  /** SIGTERM (after SIGCONT if paused), waits for the exit, removes the directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL, waits for the exit, removes the directory. */
  kill(): Promise<void>;
  /** SIGSTOP: the TCP port stays open, nothing answers. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** SIGKILLs the server and starts a new, empty one on the same port. */
  restart(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) {
    try {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/** A port free on 127.0.0.1 right now (the kernel's pick for port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a Redis on `port` answers PING with +PONG within `timeoutMs`. */
function pings(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once('exit', () => resolve()));

/**
 * The test-only certificate authority and server certificate (`localhost`, 127.0.0.1 and ::1, for
 * a hundred years) that `startRedis({ tls: true })` serves: see tls/README.md.
 */
export const TEST_CA_FILE = fileURLToPath(new URL('tls/ca.pem', import.meta.url));
const TLS_ARGS = [
  '--tls-cert-file',
  fileURLToPath(new URL('tls/server.pem', import.meta.url)),
  '--tls-key-file',
  fileURLToPath(new URL('tls/server.key', import.meta.url)),
  '--tls-ca-cert-file',
  TEST_CA_FILE,
  // Clients prove nothing; the server proves itself (as Upstash and managed Redis do).
  '--tls-auth-clients',
  'no',
];

function launch(
  port: number,
  dir: string,
  extraArgs: string[],
): { child: ChildProcess; output: () => string } {
  const child = spawn(
    '/usr/bin/redis-server',
    [
      ...extraArgs,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return { child, output: () => output };
}

async function waitForPing(
  port: number,
  child: ChildProcess,
  output: () => string,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`redis-server exited before answering PING:\n${output()}`);
    if (await pings(port)) return;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer PING within ${timeoutMs} ms:\n${output()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Serves every hash slot from this one node, and waits for the cluster to say it is ok. */
async function serveAllSlots(port: number) {
  const link = createRedisLink(`redis://127.0.0.1:${port}`);
  try {
    await link.whenReady(5000);
    await link.send('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
    await until(
      async () => /cluster_state:ok/.test(String(await link.send('CLUSTER', 'INFO'))),
      10_000,
      'the Redis Cluster to serve its slots',
    );
  } finally {
    await link.close();
  }
}

/**
 * Starts a redis-server and resolves once it answers PING. With `tls`, it also listens for TLS
 * on a second port, and `url` is that one's (`rediss://localhost:…`); the plain port stays for
 * this harness's own readiness check. With `clusterMode`, it is a one-node Redis Cluster serving
 * every hash slot (what a sharded managed Redis looks like to a client).
 */
export async function startRedis(
  options: { tls?: boolean; clusterMode?: boolean } = {},
): Promise<TestRedis> {
  const port = await freePort();
  const tlsPort = options.tls ? await freePort() : undefined;
  let dir = mkdtempSync(join(tmpdir(), 'aleatoria-redis-'));
  const extraArgs = (into: string) => [
    ...(tlsPort === undefined ? [] : ['--tls-port', String(tlsPort), ...TLS_ARGS]),
    ...(options.clusterMode
      ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(into, 'nodes.conf')]
      : []),
  ];
  const ready = async () => {
    await waitForPing(port, current.child, current.output);
    if (options.clusterMode) await serveAllSlots(port);
  };
  let current = launch(port, dir, extraArgs(dir));
  let paused = false;
  let stopped = false;
  await ready();

  const signal = (name: NodeJS.Signals) => {
    const { child } = current;
    if (child.pid && child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  const removeDir = () => rmSync(dir, { recursive: true, force: true });

  return {
    url: tlsPort === undefined ? `redis://127.0.0.1:${port}` : `rediss://localhost:${tlsPort}`,
    port,
    get pid() {
      return current.child.pid!;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (paused) signal('SIGCONT');
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), 3000);
      await exited(current.child);
      clearTimeout(timer);
      removeDir();
    },
    async kill() {
      stopped = true;
      signal('SIGKILL');
      await exited(current.child);
      removeDir();
    },
    pause() {
      signal('SIGSTOP');
      paused = true;
    },
    resume() {
      signal('SIGCONT');
      paused = false;
    },
    async restart() {
      signal('SIGKILL');
      await exited(current.child);
      paused = false;
      removeDir();
      dir = mkdtempSync(join(tmpdir(), 'aleatoria-redis-'));
      current = launch(port, dir, extraArgs(dir));
      await ready();
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Links a test file opens to its Redis (`defaultUrl()` unless told another), each ready before
 * it is handed out; `closeAll` in `afterAll`.
 */
export function testLinks(defaultUrl: () => string) {
  const links: RedisLink[] = [];
  return {
    async open(url = defaultUrl()): Promise<RedisLink> {
      const link = createRedisLink(url);
      links.push(link);
      await link.whenReady(5000);
      return link;
    },
    closeAll: () => Promise.all(links.splice(0).map((link) => link.close())),
  };
}
