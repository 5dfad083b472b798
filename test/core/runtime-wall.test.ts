/**
 * The wall around src/core/: it runs unchanged on Node, Deno and workerd, so it may import valibot,
 * its own files and web-standard globals, never a runtime (STYLE.md).
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const CORE_DIR = fileURLToPath(new URL('../../src/core/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(m|c)?[jt]sx?$/.test(name) ? [path] : [];
  });
}

/**
 * Splits TypeScript source into `code` (comments removed, string contents kept) and `bare` (also
 * string and regex contents blanked), so `process` in a comment or a string is not a reference.
 */
function strip(source: string): { code: string; bare: string } {
  let code = '';
  let bare = '';
  let i = 0;
  // Template literals nest through `${ }`: each entry counts open braces inside a substitution.
  const templates: number[] = [];
  const emit = (text: string, blank = false) => {
    code += text;
    bare += blank ? text.replace(/[^\n]/g, ' ') : text;
  };
  const lastSignificant = () => bare.trimEnd().slice(-1);
  const lastWord = () => /([A-Za-z_$][\w$]*)\s*$/.exec(bare)?.[1] ?? '';

  const readQuoted = (quote: string) => {
    let j = i + 1;
    while (j < source.length && source[j] !== quote && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
    emit(quote);
    emit(source.slice(i + 1, j), true);
    emit(source[j] ?? '');
    i = j + 1;
  };

  const readTemplateChunk = () => {
    // i is just past a ` or a closing } of a substitution.
    let j = i;
    while (j < source.length && source[j] !== '`' && !(source[j] === '$' && source[j + 1] === '{')) j += source[j] === '\\' ? 2 : 1;
    emit(source.slice(i, j), true);
    if (source[j] === '`') {
      emit('`');
      i = j + 1;
    } else {
      emit('${');
      templates.push(0);
      i = j + 2;
    }
  };

  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      i = end === -1 ? source.length : end;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const comment = source.slice(i, end === -1 ? source.length : end + 2);
      emit(comment.replace(/[^\n]/g, ''));
      i += comment.length;
    } else if (c === '"' || c === "'") {
      readQuoted(c);
    } else if (c === '`') {
      emit('`');
      i++;
      readTemplateChunk();
    } else if (c === '{' && templates.length > 0) {
      templates[templates.length - 1]!++;
      emit(c);
      i++;
    } else if (c === '}' && templates.length > 0 && templates[templates.length - 1] === 0) {
      templates.pop();
      emit('}');
      i++;
      readTemplateChunk();
    } else if (c === '}' && templates.length > 0) {
      templates[templates.length - 1]!--;
      emit(c);
      i++;
    } else if (c === '/' && (/^[(,=:[!&|?{};+\-*%<>~^]?$/.test(lastSignificant()) || /^(return|typeof|case|in|of|void|delete|throw)$/.test(lastWord()))) {
      // A regex literal: skip to its closing slash (outside character classes), then its flags.
      let j = i + 1;
      let inClass = false;
      while (j < source.length && source[j] !== '\n') {
        const d = source[j];
        if (d === '\\') j++;
        else if (d === '[') inClass = true;
        else if (d === ']') inClass = false;
        else if (d === '/' && !inClass) break;
        j++;
      }
      while (/[a-z]/i.test(source[j + 1] ?? '')) j++;
      emit('/');
      emit(source.slice(i + 1, j), true);
      emit(source.slice(j, j + 1));
      i = j + 1;
    } else {
      emit(c);
      i++;
    }
  }
  return { code, bare };
}

/** Module specifiers of static imports, re-exports, side-effect imports, dynamic import() and require(). */
function specifiers(code: string): string[] {
  const patterns = [
    /\b(?:import|export)\b[^'"`;]*?\bfrom\s*(['"])([^'"]+)\1/g,
    /\bimport\s*(['"])([^'"]+)\1/g,
    /\bimport\s*\(\s*(['"`])([^'"`]+)\1\s*\)/g,
    /\brequire\s*\(\s*(['"`])([^'"`]+)\1\s*\)/g,
  ];
  return patterns.flatMap((pattern) => [...code.matchAll(pattern)].map((match) => match[2]!));
}

const NODE_BUILTINS = new Set(builtinModules.flatMap((name) => [name, name.split('/')[0]!]));

/** Why a specifier breaks the wall, or undefined when it is allowed. */
function forbiddenImport(specifier: string): string | undefined {
  if (specifier.startsWith('node:')) return 'a node: builtin';
  if (NODE_BUILTINS.has(specifier) || NODE_BUILTINS.has(specifier.split('/')[0]!)) return 'a Node builtin';
  if (specifier.startsWith('cloudflare:')) return 'a workerd module';
  if (specifier === 'ws' || specifier.startsWith('ws/')) return 'the ws package';
  if (specifier.startsWith('@hono/node-server') || specifier.startsWith('@hono/node-ws')) return 'a Hono Node adapter';
  if (/^hono\/(deno|bun|node|node-server|node-ws|cloudflare-workers|cloudflare-pages|aws-lambda|lambda-edge|vercel|netlify|service-worker)(\/|$)/.test(specifier)) {
    return 'a Hono runtime adapter';
  }
  if (specifier.startsWith('npm:') || specifier.startsWith('jsr:') || /^https?:/.test(specifier)) return 'a Deno-only specifier';
  if (specifier === 'bun' || specifier.startsWith('bun:')) return 'a Bun module';
  return undefined;
}

/** References to runtime globals in code (not comments, not strings). */
function runtimeGlobals(bare: string): string[] {
  const found: string[] = [];
  for (const match of bare.matchAll(/(?<![\w$]|(?<!globalThis\s*)\.\s*)(process|Deno|Bun|require|__dirname|__filename|Buffer)(?![\w$])/g)) {
    found.push(match[1]!);
  }
  return found;
}

function violations(source: string): string[] {
  const { code, bare } = strip(source);
  return [
    ...specifiers(code).flatMap((specifier) => {
      const why = forbiddenImport(specifier);
      return why ? [`imports ${JSON.stringify(specifier)} (${why})`] : [];
    }),
    ...runtimeGlobals(bare).map((name) => `references the ${name} global`),
  ];
}

describe('the scanner behind the wall', () => {
  it.each([
    ["import { readFileSync } from 'node:fs';", 'node:fs'],
    ["import fs from 'fs';", '"fs"'],
    ["import { join } from \"path\";", '"path"'],
    ["import * as http from 'http';", '"http"'],
    ["import 'fs/promises';", 'fs/promises'],
    ["export { createServer } from 'node:http';", 'node:http'],
    ["export * from 'ws';", '"ws"'],
    ["import type { WebSocket } from 'ws';", '"ws"'],
    ["import { serve } from '@hono/node-server';", '@hono/node-server'],
    ["import { upgradeWebSocket } from 'hono/deno';", 'hono/deno'],
    ["import { upgradeWebSocket } from 'hono/cloudflare-workers';", 'hono/cloudflare-workers'],
    ["import { upgradeWebSocket } from 'hono/bun';", 'hono/bun'],
    ["import { DurableObject } from 'cloudflare:workers';", 'cloudflare:workers'],
    ["const m = await import('node:crypto');", 'node:crypto'],
    ["const fs = require('fs');", '"fs"'],
    ['const port = process.env.PORT;', 'process'],
    ['const env = Deno.env.toObject();', 'Deno'],
    ['const env = globalThis.process.env;', 'process'],
    ['function f() { return `${process.env.X}`; }', 'process'],
    ['const re = /x/; const p = process.argv;', 'process'],
  ])('flags %s', (source, mention) => {
    const found = violations(source);
    expect(found.length).toBeGreaterThan(0);
    expect(found.join('; ')).toContain(mention);
  });

  it.each([
    ["import * as v from 'valibot';"],
    ["import { parseJson } from './json.ts';"],
    ["import type { LogLevel } from './config.ts';"],
    ['// process.env is read by the adapters, and Deno.env.toObject() too'],
    ['/** Configuration from `process.env`, `Deno.env.toObject()` */'],
    ["const hint = 'set process.env.PORT or use Deno';"],
    ['const hint = `run under Deno, not process`;'],
    ['const re = /process|Deno/;'],
    ['const o = { size: 1 }; o.process = 2; session.Deno;'],
    ['const url = "https://example.com/a//b"; const c = 1;'],
    ["import { Hono } from 'hono';"],
  ])('allows %s', (source) => {
    expect(violations(source)).toStrictEqual([]);
  });
});

describe('src/core/ runtime wall', () => {
  const files = sourceFiles(CORE_DIR);

  it('finds the core files and their imports (so the wall cannot pass vacuously)', () => {
    const names = files.map((file) => relative(CORE_DIR, file).replaceAll('\\', '/'));
    for (const expected of ['hub.ts', 'protocol.ts', 'origin.ts', 'config.ts', 'pool.ts', 'json.ts']) expect(names).toContain(expected);
    const all = files.flatMap((file) => specifiers(strip(readFileSync(file, 'utf8')).code));
    expect(all).toContain('valibot');
    expect(all).toContain('./protocol.ts');
    expect(all.length).toBeGreaterThanOrEqual(8);
  });

  it('imports no runtime (node:*, Node builtins, ws, @hono/node-server, hono/<adapter>, cloudflare:*) and touches no Deno or process global', () => {
    const problems = files.flatMap((file) =>
      violations(readFileSync(file, 'utf8')).map((problem) => `src/core/${relative(CORE_DIR, file)} ${problem}`),
    );
    expect(problems).toStrictEqual([]);
  });

  it('imports nothing but valibot, jose (Web Crypto only) and its own relative files', () => {
    const outside = files.flatMap((file) =>
      specifiers(strip(readFileSync(file, 'utf8')).code)
        .filter((specifier) => specifier !== 'valibot' && specifier !== 'jose' && !/^\.\.?\//.test(specifier))
        .map((specifier) => `src/core/${relative(CORE_DIR, file)} imports ${JSON.stringify(specifier)}`),
    );
    expect(outside).toStrictEqual([]);
  });

  it('never reaches out of src/core/ with a relative import', () => {
    const escaping = files.flatMap((file) =>
      specifiers(strip(readFileSync(file, 'utf8')).code)
        .filter((specifier) => /^\.\.?\//.test(specifier))
        .filter((specifier) => relative(CORE_DIR, join(file, '..', specifier)).startsWith('..'))
        .map((specifier) => `src/core/${relative(CORE_DIR, file)} imports ${specifier}`),
    );
    expect(escaping).toStrictEqual([]);
  });
});
