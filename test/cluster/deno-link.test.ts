/** The Redis link runs unchanged under Deno (npm packages from node_modules, as deno.json says). */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedis, type TestRedis } from './redis-server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let redis: TestRedis;

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
});

function runDeno(env: Record<string, string>, timeoutMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(
      'node_modules/.bin/deno',
      [
        'run',
        '--allow-net',
        '--allow-env',
        '--allow-read',
        '--allow-sys',
        'test/cluster/deno-link-check.ts',
      ],
      { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

it('PING, SET, GET, a script and pub/sub through the link under Deno', async () => {
  const { code, stdout, stderr } = await runDeno({ REDIS_URL: redis.url }, 25_000);
  expect(code, `${stdout}\n${stderr}`).toBe(0);
  expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
    runtime: 'deno',
    ping: 'PONG',
    set: 'OK',
    get: 'from deno',
    script: 5,
    got: ['deno:channel=hello'],
    refused: true,
  });
}, 30_000);
