/**
 * Cloudflare adapter: a Worker and three kinds of Durable Object (`src/cloudflare/rpc.ts`): gateways
 * holding the sockets (`src/cloudflare/gateway.ts`), one object per room (`src/cloudflare/room.ts`) and the
 * matchmaker (`src/cloudflare/matchmaker.ts`).
 *
 * The Worker (Hono, the same `createApp` as Node and Deno) answers `/health` and refuses bad
 * upgrades (userId, room, token, Origin) without touching any object; an accepted one is handed to
 * the gateway of its userId (`gatewayOf`, over `GATEWAY_SHARDS`) with the checked request in a
 * header. `/stats` and `/metrics` add up every gateway's figures (`src/cloudflare/figures.ts`).
 *
 * `aleatoria()` is that Worker as a Hono app a user mounts in their own (`app.route('/chat',
 * aleatoria())`), their Worker exporting the three classes below under the bindings of our
 * wrangler.toml (GATEWAY, ROOM, MATCHMAKER); ours (the default export) is it alone.
 */
import { Hono } from 'hono';
import { routePath } from 'hono/route';
import { createApp } from '../app.ts';
import { ConfigError } from '../core/config.ts';
import {
  CONNECT_HEADER,
  configFor,
  type Env,
  GATEWAY_HEADER,
  gateway,
  gatewayOf,
  logFor,
} from '../cloudflare/env.ts';
import { gatherFigures } from '../cloudflare/figures.ts';
import { topRooms } from '../admin/figures.ts';

export type { Env } from '../cloudflare/env.ts';
export { GatewayObject } from '../cloudflare/gateway.ts';
export { MatchmakerObject } from '../cloudflare/matchmaker.ts';
export { RoomObject } from '../cloudflare/room.ts';

/** Per env (one per isolate) and mount path: the routes, built under that path when there is one. */
const apps = new WeakMap<object, Map<string, Hono>>();
function appFor(env: Env, mountPath: string): Hono {
  let byPath = apps.get(env);
  if (!byPath) apps.set(env, (byPath = new Map()));
  const built = byPath.get(mountPath);
  if (built) return built;
  const config = configFor(env);
  const shards = config.gatewayShards;
  const chat = createApp({
    config,
    log: logFor(config),
    // Cloudflare sets it on every request: the platform is the proxy.
    remoteAddress: (c) => c.req.header('cf-connecting-ip'),
    metrics: async () => (await gatherFigures(env, shards)).metrics,
    stats: async () => (await gatherFigures(env, shards)).stats,
    // One gather for everything, so the page's rows add up to its totals.
    admin: async () => {
      const figures = await gatherFigures(env, shards, true);
      return {
        metrics: figures.metrics,
        rooms: topRooms(figures.members),
        nodes: figures.gateways,
      };
    },
    upgrade: (c, request) => {
      const name = gatewayOf(request.userId, shards);
      return gateway(env, name).fetch(
        new Request(c.req.url, {
          headers: {
            upgrade: 'websocket',
            [CONNECT_HEADER]: JSON.stringify(request),
            [GATEWAY_HEADER]: name,
          },
        }),
      );
    },
  });
  const app = mountPath === '' ? chat : new Hono().route(mountPath, chat);
  byPath.set(mountPath, app);
  return app;
}

/**
 * The chat's routes, configured from the Worker's env (`[vars]`, secrets) of each request, and
 * built under the path they are mounted at, so that the page knows where it lives.
 */
export function aleatoria(): Hono<{ Bindings: Env }> {
  const app = new Hono<{ Bindings: Env }>();
  app.all('*', (c) => {
    // `/chat/*` under `app.route('/chat', ...)`, `/*` at the root.
    const mountPath = routePath(c).replace(/\/?\*$/, '');
    let ctx: ExecutionContext | undefined;
    try {
      ctx = c.executionCtx;
    } catch {
      // None outside the platform (Hono's `app.request` in tests): nothing of ours uses it.
    }
    try {
      return appFor(c.env, mountPath).fetch(c.req.raw, c.env, ctx);
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
  });
  return app;
}

export default aleatoria() satisfies ExportedHandler<Env>;
