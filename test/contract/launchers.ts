/** Launches each runtime's server as its npm script does, as a real child process on loopback. */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LaunchedServer } from './harness.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const STARTED = /HTTP server started on :(\d+)/;

/** A process's command name, process group and CPU time (user + system, seconds), from /proc. */
export function procStat(pid: number): { comm: string; pgrp: number; cpuSeconds: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state, ppid, pgrp, ..., utime (14th field), stime (15th), in ticks.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    comm: text.slice(text.indexOf('(') + 1, text.lastIndexOf(')')),
    pgrp: Number(fields[2]),
    cpuSeconds: (Number(fields[11]) + Number(fields[12])) / 100,
  };
}

/** A process's resident memory, bytes, from /proc. */
export function procRss(pid: number): number {
  return (
    Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) *
    1024
  );
}

/** Process groups still running, killed when the test process exits however it exits. */
const groups = new Set<number>();
process.once('exit', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/**
 * Spawns `command` with `env` (PORT=0 picks a free port) and waits for the Go server's start-up
 * line. Shared by every launcher whose runtime prints it (Node, Deno).
 */
export function launchProcess(
  command: string,
  args: string[],
  env: Record<string, string>,
  startTimeoutMs = 20_000,
): Promise<LaunchedServer> {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: stopping it takes down what it started (wrangler, workerd) too.
    detached: true,
  });
  groups.add(child.pid!);
  const killGroup = () => {
    groups.delete(child.pid!);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Gone already.
    }
  };
  let output = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      killGroup();
      reject(new Error(`server did not start within ${startTimeoutMs} ms:\n${output}`));
    }, startTimeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting:\n${output}`));
    });
    const onData = () => {
      const match = STARTED.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off('data', onData);
      resolve({
        baseUrl: `http://127.0.0.1:${match[1]}`,
        async kill(signal) {
          const started = Date.now();
          child.kill(signal);
          const code = await exited;
          return { code, elapsedMs: Date.now() - started };
        },
        async stop() {
          const running = child.exitCode === null && child.signalCode === null;
          killGroup();
          if (running) await exited;
        },
        output: () => output,
        cpuSeconds: () => procStat(child.pid!).cpuSeconds,
        rss: () => procRss(child.pid!),
      });
    };
    child.stdout.on('data', onData);
  });
}

export const launchNode = (env: Record<string, string>) =>
  launchProcess(process.execPath, ['--import', 'tsx', 'src/adapters/node.ts'], env);

/**
 * How a launch that should fail ended: its error's message, or "started" (the server then
 * stopped at once, so a launch that wrongly succeeds leaves nothing running).
 */
export function startOutcome(launch: Promise<LaunchedServer>): Promise<string> {
  return launch.then(
    async (server) => {
      await server.stop();
      return 'started';
    },
    (error: unknown) => (error instanceof Error ? error.message : String(error)),
  );
}

/** Launches the Deno adapter as `npm run start:deno` does, with the npm-installed `deno`. */
export const launchDeno = (env: Record<string, string>) =>
  launchProcess(
    'node_modules/.bin/deno',
    ['run', '--allow-net', '--allow-env', '--allow-read', 'src/adapters/deno.ts'],
    env,
    60_000,
  );

/**
 * Launches the Worker and its Durable Object under `wrangler dev` as `npm run start:cloudflare`
 * does, each launch with its own state directory. Run inside `unshare -n` (see scripts/test.sh).
 */
export const launchCloudflare = async (env: Record<string, string>): Promise<LaunchedServer> => {
  const state = mkdtempSync(join(tmpdir(), 'aleatoria-wrangler-'));
  const server = await launchProcess(
    process.execPath,
    ['--import', 'tsx', 'scripts/start-cloudflare.ts'],
    {
      WRANGLER_PERSIST_TO: state,
      ...env,
    },
    90_000,
  );
  return {
    ...server,
    async stop() {
      await server.stop();
      rmSync(state, { recursive: true, force: true });
    },
    // The process is a wrapper around wrangler and workerd: its memory says nothing about the server.
    rss: undefined,
    cpuSeconds: undefined,
  };
};
