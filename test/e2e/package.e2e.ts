/**
 * The Workers factory mounted in someone else's Worker, on workerd: their Hono app with
 * `app.route('/chat', aleatoria())` and our Durable Object classes re-exported, under `wrangler
 * dev` with our wrangler.toml's bindings. Their routes stay theirs; ours answer under `/chat`, and
 * the demo page at `/chat/` connects through `/chat/ws` to the gateway objects, in Chromium.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from './browser.ts';

const ROOT = resolve(import.meta.dirname, '../..');
/** Inside the repository (gitignored), so that the Worker resolves `hono` from our node_modules. */
const WORKER_DIR = join(ROOT, 'test-results/package-worker');
const WORKER = `import { Hono } from 'hono';
import { aleatoria } from '../../src/adapters/cloudflare.ts';
export { GatewayObject, MatchmakerObject, RoomObject } from '../../src/adapters/cloudflare.ts';

const app = new Hono();
app.get('/', (c) => c.text('their worker'));
app.route('/chat', aleatoria());
export default app;
`;

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer().once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => done(port));
    });
  });
}

let wrangler: ChildProcess;
let browser: Browser | undefined;
let origin: string;
const state = mkdtempSync(join(tmpdir(), 'aleatoria-package-worker-'));

beforeAll(async () => {
  mkdirSync(WORKER_DIR, { recursive: true });
  writeFileSync(join(WORKER_DIR, 'worker.ts'), WORKER);
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  // wrangler.toml's bindings and migrations, with their Worker as the entry point.
  wrangler = spawn(
    'node_modules/.bin/wrangler',
    [
      'dev',
      join(WORKER_DIR, 'worker.ts'),
      '--ip',
      '127.0.0.1',
      '--port',
      String(port),
      '--inspector-port',
      String(await freePort()),
      '--show-interactive-dev-session=false',
      '--persist-to',
      state,
      '--var',
      'LOG_LEVEL:warn',
    ],
    {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    },
  );
  await new Promise<void>((ready, fail) => {
    wrangler.stdout!.on('data', (chunk: Buffer) => /Ready on /.test(chunk.toString()) && ready());
    wrangler.once('exit', (code) => fail(new Error(`wrangler exited with ${code}`)));
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  if (wrangler?.pid) process.kill(-wrangler.pid, 'SIGTERM');
  rmSync(state, { recursive: true, force: true });
  rmSync(WORKER_DIR, { recursive: true, force: true });
});

describe('aleatoria() of aleatoria/cloudflare, mounted at /chat in their Worker', () => {
  it('answers under /chat and leaves their routes theirs', async () => {
    expect(await (await fetch(`${origin}/`)).text()).toBe('their worker');
    expect(await (await fetch(`${origin}/chat/health`)).json()).toEqual({ status: 'ok' });
    expect((await fetch(`${origin}/health`)).status).toBe(404);
    const bare = await fetch(`${origin}/chat`, { redirect: 'manual' });
    expect([bare.status, bare.headers.get('location')]).toEqual([308, '/chat/']);
    expect(await (await fetch(`${origin}/chat/`)).text()).toContain('src="/chat/app.js"');
  });

  it('serves the demo page at /chat/, which connects through /chat/ws to the gateways', async () => {
    browser = await launchBrowser();
    const page = await browser.newPage();
    const sockets: string[] = [];
    page.on('websocket', (socket) => sockets.push(new URL(socket.url()).pathname));
    await page.goto(`${origin}/chat/`);
    await page.waitForSelector('#connection-status[data-status="open"]', { timeout: 30_000 });
    expect(sockets).toEqual(['/chat/ws']);
    await page.waitForSelector('#online-count[data-count="1"]', { timeout: 30_000 });
  }, 60_000);
});
