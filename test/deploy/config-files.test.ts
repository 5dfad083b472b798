/**
 * The deployment files agree with the code: ports, health path, drain window, Worker entry and
 * Durable Object class, and the versions this Node 20 machine can run.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'smol-toml';
import { posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/core/config.ts';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const defaults = parseConfig({});

describe('fly.toml', () => {
  const fly = parse(read('fly.toml')) as any;

  it('routes to the port the server listens on by default and checks /health', () => {
    expect(fly.http_service.internal_port).toBe(defaults.port);
    expect(fly.env.PORT).toBe(String(defaults.port));
    expect(fly.http_service.checks.map((check: { path: string }) => check.path)).toContain(
      '/health',
    );
  });

  it('stops with SIGTERM and waits longer than the drain window', () => {
    expect(fly.kill_signal).toBe('SIGTERM');
    const seconds = Number(/^(\d+)s$/.exec(fly.kill_timeout)?.[1]);
    expect(seconds * 1000).toBeGreaterThan(defaults.shutdownTimeoutMs);
  });

  it('sets only variables the server understands, with valid values', () => {
    expect(() => parseConfig(fly.env)).not.toThrow();
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  it('exposes the default port, stops with SIGTERM and runs the built Node adapter', () => {
    expect(dockerfile).toMatch(new RegExp(`^EXPOSE ${defaults.port}$`, 'm'));
    expect(dockerfile).toMatch(/^STOPSIGNAL SIGTERM$/m);
    expect(dockerfile).toMatch(/^CMD \["node", "dist\/adapters\/node\.js"\]$/m);
  });
});

describe('wrangler.toml', () => {
  const wrangler = parse(read('wrangler.toml')) as any;

  it('points at the Cloudflare adapter, whose Durable Object classes it binds and migrates', () => {
    expect(wrangler.main).toBe('src/adapters/cloudflare.ts');
    const bindings = wrangler.durable_objects.bindings as { name: string; class_name: string }[];
    expect(bindings.map((b) => b.name).sort()).toStrictEqual(['GATEWAY', 'MATCHMAKER', 'ROOM']);
    const entry = read(wrangler.main);
    const migrations = wrangler.migrations as {
      new_sqlite_classes?: string[];
      renamed_classes?: { from: string; to: string }[];
    }[];
    const created = migrations.flatMap((m) => [
      ...(m.new_sqlite_classes ?? []),
      ...(m.renamed_classes ?? []).map((r) => r.to),
    ]);
    for (const binding of bindings) {
      // The entry exports the class, declared there or in the module it re-exports it from.
      const from = new RegExp(
        `export \\{[^}]*\\b${binding.class_name}\\b[^}]*\\} from '(\\.{1,2}/[\\w/-]+\\.ts)'`,
      ).exec(entry)?.[1];
      const declaring =
        from === undefined ? entry : read(posix.join(posix.dirname(wrangler.main), from));
      expect(declaring).toMatch(
        new RegExp(`export class ${binding.class_name} extends DurableObject`),
      );
      // Created with SQLite storage (the SQL API needs it), by a migration or a rename.
      expect(created).toContain(binding.class_name);
    }
  });

  it('keeps compatibility_date within what wrangler 4.86.0 on Node 20 supports', () => {
    expect(String(wrangler.compatibility_date) <= '2026-05-03').toBe(true);
  });

  it('has [vars] the server accepts', () => {
    expect(() => parseConfig(wrangler.vars)).not.toThrow();
  });
});

describe('package.json', () => {
  const pkg = JSON.parse(read('package.json'));
  it('pins wrangler to 4.86.0 exactly (later releases need Node 22)', () => {
    expect(pkg.devDependencies.wrangler).toBe('4.86.0');
  });
});
