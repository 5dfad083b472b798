/**
 * Cloudflare adapter: a Worker and one hub Durable Object (`cloudflare-object.ts`).
 *
 * The Worker (Hono, the same `createApp` as Node and Deno) answers `/health` and refuses bad
 * upgrades (userId, room, token, Origin) without touching the Durable Object; accepted ones are
 * handed to the single hub object (`idFromName`) with the checked request in a header.
 */
import type { Hono } from 'hono';
import { createApp } from '../app.ts';
import { ConfigError } from '../core/config.ts';
import { CONNECT_HEADER, configFor, type Env, HUB_NAME, logFor } from './cloudflare-env.ts';

export type { Env } from './cloudflare-env.ts';
export { HubObject } from './cloudflare-object.ts';

const apps = new WeakMap<object, Hono>();
function appFor(env: Env): Hono {
  let app = apps.get(env);
  if (app) return app;
  const config = configFor(env);
  app = createApp({
    config,
    log: logFor(config),
    // Cloudflare sets it on every request: the platform is the proxy.
    remoteAddress: (c) => c.req.header('cf-connecting-ip'),
    metrics: async () =>
      (await env.HUB.get(env.HUB.idFromName(HUB_NAME)).fetch('https://hub/metrics')).text(),
    stats: async () =>
      (await env.HUB.get(env.HUB.idFromName(HUB_NAME)).fetch('https://hub/stats')).json(),
    upgrade: (c, request) => {
      const hub = env.HUB.get(env.HUB.idFromName(HUB_NAME));
      return hub.fetch(
        new Request(c.req.url, {
          headers: { upgrade: 'websocket', [CONNECT_HEADER]: JSON.stringify(request) },
        }),
      );
    },
  });
  apps.set(env, app);
  return app;
}

export default {
  fetch(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response> {
    try {
      return appFor(env).fetch(request, env, ctx);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      console.error(
        JSON.stringify({
          level: 'error',
          event: 'invalid_configuration',
          problems: error.problems,
        }),
      );
      return new Response('server misconfigured', { status: 500 });
    }
  },
} satisfies ExportedHandler<Env>;
