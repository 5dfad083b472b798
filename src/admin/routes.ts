/**
 * The operator page, mounted only when `ADMIN_TOKEN` is set (otherwise `/admin` is a 404 like any
 * unknown path). `GET /admin` and its script are a static shell with no figures in it, served to
 * anyone; the figures come from `GET /admin/figures`, for `Authorization: Bearer <ADMIN_TOKEN>`
 * only, so the token never travels in a URL (logs, history, Referer).
 */
import type { Hono } from 'hono';
import { ADMIN_HTML, ADMIN_JS } from '../web/assets.generated.ts';
import { SCRIPT_HEADERS } from '../web/script-headers.ts';
import { type AdminSnapshot, figuresFrom } from './figures.ts';

/**
 * Stricter than the demo page's: the shell talks to its own origin only, and its one form (the
 * token) may never be submitted anywhere, so a token typed before the script ran stays put.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
} as const;

const encoder = new TextEncoder();

/**
 * Whether `given` is `expected`, in time that does not depend on where they differ: both are
 * hashed first, so neither their contents nor the expected length leak through timing.
 */
async function sameToken(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all(
    [given, expected].map(
      async (token) => new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(token))),
    ),
  );
  let difference = 0;
  for (let i = 0; i < a!.length; i++) difference |= a![i]! ^ b![i]!;
  return difference === 0;
}

export function mountAdmin(
  app: Hono,
  token: string,
  snapshot: () => AdminSnapshot | Promise<AdminSnapshot>,
): void {
  app.get('/admin', (c) => c.html(ADMIN_HTML, 200, PAGE_HEADERS));
  app.get('/admin/admin.js', (c) => c.body(ADMIN_JS, 200, SCRIPT_HEADERS));
  app.get('/admin/figures', async (c) => {
    const header = c.req.header('authorization');
    const given = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
    if (given === undefined || !(await sameToken(given, token)))
      return c.text('figures need Authorization: Bearer <ADMIN_TOKEN>', 401, {
        'www-authenticate': 'Bearer',
      });
    return c.json(figuresFrom(await snapshot(), Date.now()), 200, { 'cache-control': 'no-store' });
  });
}
