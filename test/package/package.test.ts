/**
 * The package as its users get it. `npm pack` (which builds dist/ through `prepack`), the tarball
 * installed into a fresh project as a user would install it (`npm install <tarball> hono ...`,
 * from npm's cache where it can), then that project's code: a Node server that mounts the chat
 * with `app.route('/chat', ...)` and drives it with the SDK type-checks and runs over real
 * sockets; a browser bundle of `aleatoria/client` made by esbuild from the installed package runs
 * in Chromium, and the demo page at `/chat/` connects to `/chat/ws`. Also the JSR side: deno.json
 * is versioned with package.json and its entry points pass `deno check`.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../e2e/browser.ts';
import { BROWSER_TS, SERVER_TS, TSCONFIG } from './consumer.ts';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const bin = (name: string) => join(ROOT, 'node_modules/.bin', name);
const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
/** The version this repository runs with, so that the user's project matches what was tested. */
const installed = (name: string): string =>
  json(join(ROOT, 'node_modules', name, 'package.json')).version;

const work = mkdtempSync(join(tmpdir(), 'aleatoria-package-'));
const project = join(work, 'project');
let server: ChildProcess | undefined;
let browser: Browser | undefined;
/** The paths in the tarball. */
let packedFiles: string[] = [];
/** What the user's server printed once its own SDK conversation was over. */
let report: { port: number; health: unknown; echo: string; roles: string[]; defaultPort: number };

// `deno check` takes a while on two cores: started first, awaited by its own test.
const denoExports = Object.values(json(join(ROOT, 'deno.json')).exports as Record<string, string>);
const denoCheck = run(bin('deno'), ['check', ...denoExports], { cwd: ROOT }).then(
  () => '',
  (error: { stderr?: string; message: string }) => error.stderr || error.message,
);

beforeAll(async () => {
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
  // `prepack` (the build) prints to the same stdout first: the JSON is what starts with a lone `[`.
  const listing = packed.stdout.slice(packed.stdout.search(/^\[$/m));
  const [{ filename, files }] = JSON.parse(listing) as [
    { filename: string; files: { path: string }[] },
  ];
  packedFiles = files.map((file) => file.path);

  mkdirSync(join(project, 'src'), { recursive: true });
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'their-app', private: true, type: 'module' }),
  );
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(TSCONFIG));
  writeFileSync(join(project, 'src/server.ts'), SERVER_TS);
  writeFileSync(join(project, 'src/browser.ts'), BROWSER_TS);
  const wanted = ['hono', '@hono/node-server', 'ws', '@types/ws', '@types/node'];
  await run(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      join(work, filename),
      ...wanted.map((name) => `${name}@${installed(name)}`),
    ],
    { cwd: project },
  );
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

describe('the npm package, installed in a fresh project', () => {
  it('ships only dist/, its README and package.json, and an export for each entry point', () => {
    for (const path of packedFiles)
      expect(path).toMatch(/^(dist\/.*\.(js|d\.ts)|README\.md|package\.json|docs\/protocol\.md)$/);
    for (const entry of [
      'mod',
      'client/index',
      'adapters/node',
      'adapters/deno',
      'adapters/cloudflare',
    ])
      expect(packedFiles).toEqual(
        expect.arrayContaining([`dist/${entry}.js`, `dist/${entry}.d.ts`]),
      );
    const pkg = json(join(project, 'node_modules/aleatoria/package.json'));
    expect(Object.keys(pkg.exports)).toEqual([
      '.',
      './client',
      './node',
      './deno',
      './cloudflare',
      './package.json',
    ]);
    expect(pkg.private).toBeUndefined();
  });

  it("type-checks the user's server and browser code against its declarations", async () => {
    // The repository's compiler, the version the package is built and tested with.
    const result = await run(bin('tsc'), ['-p', project]).catch(
      (error: { stdout: string }) => error,
    );
    expect(result.stdout).toBe('');
  }, 60_000);

  it('serves the chat mounted at /chat from their own app, driven by the SDK from Node', async () => {
    const sdk = await build({
      entryPoints: [join(project, 'src/browser.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      outfile: join(project, 'out/sdk.js'),
      metafile: true,
      logLevel: 'silent',
    });
    // The SDK has no runtime dependency: nothing of the package but its client enters the bundle.
    const inputs = Object.keys(sdk.metafile.inputs).filter((path) => !path.endsWith('browser.ts'));
    expect(inputs.length).toBeGreaterThan(0);
    for (const path of inputs) expect(path).toMatch(/node_modules\/aleatoria\/dist\/client\//);

    server = spawn(process.execPath, [join(project, 'out/server.js')], {
      cwd: project,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = await Promise.race([
      new Promise<string[]>((done) =>
        createInterface({ input: server!.stdout! }).once('line', (l) => done([l])),
      ),
      new Promise<never>((_, fail) =>
        server!.once('exit', (code) => fail(new Error(`exit ${code}`))),
      ),
    ]);
    report = JSON.parse(line!);
    expect(report).toMatchObject({
      health: { status: 'ok' },
      echo: 'hello',
      roles: ['impolite:bob', 'polite:alice'],
      defaultPort: 8085,
    });
  }, 30_000);

  it('runs the bundled SDK in Chromium, and the demo page at /chat/ connects to /chat/ws', async () => {
    expect(report, 'the server of the previous test').toBeDefined();
    const origin = `http://127.0.0.1:${report.port}`;
    browser = await launchBrowser();
    const theirs = await browser.newPage();
    await theirs.goto(`${origin}/`);
    expect(
      await theirs.evaluate(() => (window as unknown as { conversation: unknown }).conversation),
    ).toEqual({
      echo: 'hello',
      roles: ['impolite:dave', 'polite:carol'],
    });

    const demo = await browser.newPage();
    const sockets: string[] = [];
    demo.on('websocket', (socket) => sockets.push(new URL(socket.url()).pathname));
    await demo.goto(`${origin}/chat`);
    expect(new URL(demo.url()).pathname).toBe('/chat/');
    await demo.waitForSelector('#connection-status[data-status="open"]', { timeout: 15_000 });
    expect(sockets).toEqual(['/chat/ws']);
    // The page's other requests stay under the mount too: the online count comes from /chat/stats.
    await demo.waitForSelector('#online-count[data-count]', { timeout: 15_000 });
  }, 60_000);
});

describe('JSR (deno.json)', () => {
  it('is versioned with package.json', () => {
    expect(json(join(ROOT, 'deno.json')).version).toBe(json(join(ROOT, 'package.json')).version);
  });

  it('has entry points that pass deno check', async () => {
    expect(denoExports.length).toBeGreaterThan(0);
    expect(await denoCheck).toBe('');
  }, 90_000);
});
