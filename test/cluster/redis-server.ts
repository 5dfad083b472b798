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
import { createRedisLink, type RedisLink } from '../../src/cluster/redis.ts';

export interface TestRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
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

function launch(port: number, dir: string): { child: ChildProcess; output: () => string } {
  const child = spawn(
    '/usr/bin/redis-server',
    [
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

/** Starts a redis-server and resolves once it answers PING. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let dir = mkdtempSync(join(tmpdir(), 'aleatoria-redis-'));
  let current = launch(port, dir);
  let paused = false;
  let stopped = false;
  await waitForPing(port, current.child, current.output);

  const signal = (name: NodeJS.Signals) => {
    const { child } = current;
    if (child.pid && child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  const removeDir = () => rmSync(dir, { recursive: true, force: true });

  return {
    url: `redis://127.0.0.1:${port}`,
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
      current = launch(port, dir);
      await waitForPing(port, current.child, current.output);
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
