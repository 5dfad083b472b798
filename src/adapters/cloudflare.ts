/**
 * Cloudflare adapter: a Worker and three kinds of Durable Object (`src/cloudflare/rpc.ts`): gateways
 * holding the sockets (`src/cloudflare/gateway.ts`), one object per room (`src/cloudflare/room.ts`) and the
 * matchmaker (`src/cloudflare/matchmaker.ts`).
 *
 * The Worker (Hono, the same `createApp` as Node and Deno) answers `/health` and refuses bad
 * upgrades (userId, room, token, Origin) without touching any object; an accepted one is handed to
 * the gateway of its userId (`gatewayOf`, over `GATEWAY_SHARDS`) with the checked request in a
 * header. `/stats` and `/metrics` add up every gateway's figures (`src/cloudflare/figures.ts`).
 */
import type { Hono } from 'hono';
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

const apps = new WeakMap<object, Hono>();
function appFor(env: Env): Hono {
  let app = apps.get(env);
  if (app) return app;
  const config = configFor(env);
  const shards = config.gatewayShards;
  app = createApp({
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
