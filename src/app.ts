/**
 * The HTTP surface, the same on every runtime: `GET /health`, `GET /ws`, and the demo page
 * (`/`, `/app.js`, `/config.json`) with the protocol's JSON Schema (`/protocol.json`) and AsyncAPI
 * document (`/asyncapi.json`); with `ADMIN_TOKEN`, the operator page (`/admin`, src/admin/). Everything that can
 * refuse a connection from the request alone (userId, room, token, Origin) is decided here,
 * before the upgrade, so a refused client never costs a socket; the runtime's `upgrade` then
 * applies the per-IP cap, which needs the count of open sockets.
 */
import { Hono, type Context, type Next } from 'hono';
import { basePath } from 'hono/route';
import * as v from 'valibot';
import type { Config } from './core/config.ts';
import { checkOrigin } from './core/origin.ts';
import { ReconnectToken, RoomName, UserId } from './core/protocol.ts';
import type { OpenRequest, PublicStats } from './core/hub.ts';
import type { Logger } from './core/log.ts';
import { createAuthenticator } from './core/auth.ts';
import { APP_JS, ASYNCAPI_JSON, INDEX_HTML, PROTOCOL_JSON } from './web/assets.generated.ts';
import { SCRIPT_HEADERS } from './web/script-headers.ts';
import type { AdminSnapshot } from './admin/figures.ts';
import { mountAdmin } from './admin/routes.ts';

/** A checked `/ws` request: who connects, and from which address (for per-IP limits). */
export interface ConnectRequest extends OpenRequest {
  ip?: string;
  /** The subprotocol to echo in the 101 (with auth: the first one the client offered). */
  protocol?: string;
}

export interface AppOptions {
  config: Config;
  log: Logger;
  /** Completes an accepted upgrade: Hono's `upgradeWebSocket` (Node, Deno) or a hand-off to the Durable Object. */
  upgrade(c: Context, request: ConnectRequest, next: Next): Response | Promise<Response | void>;
  /** The peer address of the connection, where the runtime exposes it. */
  remoteAddress?(c: Context): string | undefined;
  /** False while draining for shutdown: new upgrades get 503. */
  accepting?(): boolean;
  /** The Prometheus exposition for `GET /metrics` (the hub's, wherever it lives). */
  metrics(): string | Promise<string>;
  /** The hub's figures for the public `GET /stats` (a cluster's: every node's). */
  stats(): PublicStats | Promise<PublicStats>;
  /** What the operator page shows (`src/admin/`), with `ADMIN_TOKEN`; absent: `metrics()` alone. */
  admin?(): AdminSnapshot | Promise<AdminSnapshot>;
}

/** Why an upgrade was refused, as plain-text bodies (no internals, no echo of input). */
const REFUSALS = {
  userId: 'userId query parameter is required: 1-128 characters, no control characters',
  room: 'room query parameter must be 1-64 characters, no control characters',
  token: 'token query parameter must be 1-256 characters, no control characters',
  origin: 'origin not allowed',
  auth: 'a valid token is required (Sec-WebSocket-Protocol or access_token)',
  notUpgrade: 'expected a WebSocket upgrade',
  draining: 'server is shutting down',
} as const;

const PROXY_IP_HEADERS = ['fly-client-ip', 'cf-connecting-ip'] as const;

/**
 * The page may talk to another server (`?server=`), and its media are local streams: everything
 * else comes from this origin, and nothing may frame it.
 */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; connect-src 'self' ws: wss: http: https:; media-src 'self' blob: mediastream:; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

/** The subprotocol a server echoes: the first one offered (what `ws` and Deno do on their own). */
function firstProtocol(header: string | undefined): string | undefined {
  const first = header?.split(',')[0]?.trim();
  return first === '' || first === undefined || first.length > 8192 ? undefined : first;
}

export function createApp(options: AppOptions): Hono {
  const { config, log } = options;
  const app = new Hono();
  const authenticator = createAuthenticator(config.auth);

  const clientIp = (c: Context): string | undefined => {
    if (config.trustProxy) {
      for (const header of PROXY_IP_HEADERS) {
        const value = c.req.header(header)?.trim();
        if (value) return value;
      }
      const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
      if (forwarded) return forwarded;
    }
    return options.remoteAddress?.(c);
  };

  // Readable cross-origin: a page on a refused origin can still learn why (see the client's diagnosis).
  app.use('*', async (c, next) => {
    await next();
    // Not on a 101: the Worker's comes from the Durable Object and must pass through untouched.
    if (c.res.status !== 101) c.header('access-control-allow-origin', '*');
  });

  app.get('/health', (c) => c.json({ status: 'ok' }));
  // The page lives at the app's root with a trailing slash: `/`, or `/chat/` under
  // `app.route('/chat', ...)` (where Hono routes `/` as `/chat`, sent on to `/chat/`). Its script
  // is then `/chat/app.js`; the page finds the rest (config.json, stats, ws) next to itself.
  const pageRoot = (c: Context) => `${basePath(c).replace(/\/$/, '')}/`;
  const page = (c: Context) => {
    const root = pageRoot(c);
    // encodeURI: a mount path with a parameter (`/:tenant`) may carry `"` or `<` into the page.
    const script = `src="${encodeURI(root)}app.js"`;
    const html = root === '/' ? INDEX_HTML : INDEX_HTML.replace('src="/app.js"', script);
    return c.html(html, 200, PAGE_HEADERS);
  };
  app.get('/', (c) => {
    const root = pageRoot(c);
    if (c.req.path === root) return page(c);
    return c.redirect(root + new URL(c.req.url).search, 308);
  });
  app.get('/app.js', (c) => c.body(APP_JS, 200, SCRIPT_HEADERS));
  // Public, for pages that show "N people online": counts only, never who.
  app.get('/stats', async (c) => {
    const { connections, available, rooms } = await options.stats();
    return c.json({ online: connections, available, rooms }, 200, { 'cache-control': 'no-store' });
  });
  app.get('/metrics', async (c) => {
    if (
      config.metricsToken !== undefined &&
      c.req.header('authorization') !== `Bearer ${config.metricsToken}`
    ) {
      return c.text('metrics need Authorization: Bearer <METRICS_TOKEN>', 401);
    }
    return c.body(await options.metrics(), 200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
    });
  });
  if (config.adminToken !== undefined)
    mountAdmin(app, config.adminToken, async () => {
      return (await options.admin?.()) ?? { metrics: await options.metrics(), rooms: [] };
    });
  app.get('/config.json', (c) => c.json({ iceServers: config.iceServers }));
  app.get('/protocol.json', (c) =>
    c.body(PROTOCOL_JSON, 200, { 'content-type': 'application/schema+json' }),
  );
  // The same schemas as an AsyncAPI 3.0 document of /ws, for code generators and docs sites.
  app.get('/asyncapi.json', (c) =>
    c.body(ASYNCAPI_JSON, 200, { 'content-type': 'application/json' }),
  );

  app.get('/ws', async (c, next) => {
    const userIdParam = c.req.query('userId');
    // With auth the token's subject is the userId, so the parameter may be left out.
    const userId =
      authenticator && userIdParam === undefined ? undefined : v.safeParse(UserId, userIdParam);
    if (userId && !userId.success) return c.text(REFUSALS.userId, 400);
    const roomParam = c.req.query('room');
    const room =
      roomParam === undefined || roomParam === '' ? undefined : v.safeParse(RoomName, roomParam);
    if (room && !room.success) return c.text(REFUSALS.room, 400);
    const tokenParam = c.req.query('token');
    const token = tokenParam === undefined ? undefined : v.safeParse(ReconnectToken, tokenParam);
    if (token && !token.success) return c.text(REFUSALS.token, 400);

    const origin = c.req.header('origin');
    const verdict = checkOrigin(
      config.allowedOrigins,
      config.allowNoOrigin,
      origin,
      c.req.header('host'),
    );
    if (!verdict.allowed) {
      log.info('origin_refused', { origin, reason: verdict.reason });
      return c.text(REFUSALS.origin, 403);
    }
    let identity = { userId: userId?.output, token: token?.output };
    if (authenticator) {
      const result = await authenticator.check(
        c.req.header('sec-websocket-protocol'),
        c.req.query('access_token'),
        userId?.output,
      );
      if (!result.ok) {
        log.info('auth_refused', { reason: result.reason });
        return c.text(REFUSALS.auth, 401);
      }
      // The authenticated subject is the identity: any connection proving it takes the session over.
      identity = { userId: result.subject, token: `subject:${result.subject}` };
    }
    if (identity.userId === undefined || !v.is(UserId, identity.userId))
      return c.text(REFUSALS.userId, 400);

    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket')
      return c.text(REFUSALS.notUpgrade, 426);
    if (options.accepting && !options.accepting()) return c.text(REFUSALS.draining, 503);

    const request: ConnectRequest = {
      userId: identity.userId,
      room: room?.output,
      token: identity.token,
      ip: clientIp(c),
      protocol: firstProtocol(c.req.header('sec-websocket-protocol')),
    };
    return options.upgrade(c, request, next);
  });
  // Last, so that it costs the routes above nothing: the mounted page's own URL, `/chat/`.
  app.get('/*', (c, next) => (c.req.path === pageRoot(c) ? page(c) : next()));

  return app;
}
