/**
 * The wall around src/core/ (STYLE.md) is configuration: biome.jsonc's src/core/** override
 * (noRestrictedImports, noRestrictedGlobals) and tsconfig.core.json (no runtime types, a
 * web-standard lib), run by `npm run typecheck` and `biome ci`. Configuration fails open: a moved
 * folder or a mistyped glob checks nothing and passes. So this copies both configurations into a
 * scratch directory, next to a probe in src/core/, and checks that each wall still rejects it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let dir = '';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'core-wall-'));
  mkdirSync(join(dir, 'src/core'), { recursive: true });
  for (const file of ['package.json', 'biome.jsonc', 'tsconfig.json', 'tsconfig.core.json']) {
    copyFileSync(join(ROOT, file), join(dir, file));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a project tool in the scratch directory on one probe file; returns status and output. */
function probe(source: string, tool: string, ...args: string[]) {
  writeFileSync(join(dir, 'src/core/probe.ts'), `${source}\nexport {};\n`);
  const run = spawnSync(join(ROOT, 'node_modules/.bin', tool), args, {
    cwd: dir,
    encoding: 'utf8',
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe('src/core/ runtime wall', () => {
  it.each([
    "import { readFileSync } from 'node:fs';",
    "import { join } from 'path';",
    "import type { WebSocket } from 'ws';",
    "import { Hono } from 'hono';",
    "import { upgradeWebSocket } from 'hono/deno';",
    "import { serve } from '@hono/node-server';",
    "export { DurableObject } from 'cloudflare:workers';",
    "import 'jsr:@std/path';",
    "const m = await import('npm:left-pad');",
    "import { app } from '../app.ts';",
  ])('biome rejects %s', (source) => {
    const { status, output } = probe(source, 'biome', 'lint', 'src/core');
    expect(output).toContain('lint/style/noRestrictedImports');
    expect(status).not.toBe(0);
  });

  it.each([
    'const port = process.env.PORT;',
    "const bytes = Buffer.from('x');",
    "const env = Deno.env.get('PORT');",
    'const pair = new WebSocketPair();',
  ])('biome and tsc -p tsconfig.core.json reject %s', (source) => {
    const lint = probe(source, 'biome', 'lint', 'src/core');
    expect(lint.output).toContain('lint/style/noRestrictedGlobals');
    expect(lint.status).not.toBe(0);
    const typecheck = probe(source, 'tsc', '-p', 'tsconfig.core.json');
    expect(typecheck.output).toMatch(
      /^src\/core\/probe\.ts\(1,\d+\): error TS\d+: Cannot find name/,
    );
    expect(typecheck.status).not.toBe(0);
  });

  it('allows valibot, jose and its own files', () => {
    const source = [
      "import * as v from 'valibot';",
      "import { jwtVerify } from 'jose';",
      "import type { Config } from './config.ts';",
    ].join('\n');
    const { status, output } = probe(source, 'biome', 'lint', 'src/core');
    expect(output).toContain('Checked 1 file');
    expect(output).not.toContain('noRestricted');
    expect(status).toBe(0);
  });

  it('type-checks the web-standard globals the core uses', () => {
    const source = [
      "const text = new TextEncoder().encode(btoa(new URL('https://a.example/').host));",
      "const hmac = { name: 'HMAC', hash: 'SHA-1' };",
      "const key = crypto.subtle.importKey('raw', text, hmac, false, ['sign']);",
      'clearTimeout(setTimeout(() => structuredClone({ key }), 1));',
    ].join('\n');
    const { status, output } = probe(source, 'tsc', '-p', 'tsconfig.core.json');
    expect(output).toBe('');
    expect(status).toBe(0);
  });
});
