/**
 * The HTTP surface, the same on every runtime: `GET /health` and `GET /ws`. Everything that can
 * refuse a connection (userId, room, token, Origin, per-IP cap) is decided here, before the
 * upgrade, so a refused client never costs a socket.
 */
import { Hono, type Context } from 'hono';
import type { UpgradeWebSocket, WSEvents } from 'hono/ws';
import * as v from 'valibot';
import type { Config } from './core/config.ts';
import { checkOrigin } from './core/origin.ts';
import { ReconnectToken, RoomName, UserId } from './core/protocol.ts';
import type { OpenRequest } from './core/hub.ts';
import type { Logger } from './core/log.ts';

export interface AppOptions {
  config: Config;
  log: Logger;
  upgradeWebSocket: UpgradeWebSocket<any, any>;
  /** Runtime-specific options for `upgradeWebSocket` (Deno: `idleTimeout`). */
  upgradeOptions?: unknown;
  /** Hono WebSocket events for an accepted upgrade. */
  events(request: OpenRequest): WSEvents;
  /** The peer address of the TCP connection, where the runtime exposes it. */
  remoteAddress?(c: Context): string | undefined;
  /** False while draining for shutdown: new upgrades get 503. */
  accepting?(): boolean;
}

/** Why an upgrade was refused, as plain-text bodies (no internals, no echo of input). */
const REFUSALS = {
  userId: 'userId query parameter is required: 1-128 characters, no control characters',
  room: 'room query parameter must be 1-64 characters, no control characters',
  token: 'token query parameter must be 1-256 characters, no control characters',
  origin: 'origin not allowed',
  perIp: 'too many connections from this address',
  draining: 'server is shutting down',
} as const;

const PROXY_IP_HEADERS = ['fly-client-ip', 'cf-connecting-ip'] as const;

export function createApp(options: AppOptions): Hono {
  const { config, log } = options;
  const app = new Hono();
  const perIp = new Map<string, number>();

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

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ws', async (c, next) => {
    const query = (name: string) => c.req.query(name);
    const userId = v.safeParse(UserId, query('userId'));
    if (!userId.success) return c.text(REFUSALS.userId, 400);
    const roomParam = query('room');
    const room = roomParam === undefined || roomParam === '' ? undefined : v.safeParse(RoomName, roomParam);
    if (room && !room.success) return c.text(REFUSALS.room, 400);
    const tokenParam = query('token');
    const token = tokenParam === undefined ? undefined : v.safeParse(ReconnectToken, tokenParam);
    if (token && !token.success) return c.text(REFUSALS.token, 400);

    const origin = c.req.header('origin');
    const verdict = checkOrigin(config.allowedOrigins, config.allowNoOrigin, origin, c.req.header('host'));
    if (!verdict.allowed) {
      log.info('origin_refused', { origin, reason: verdict.reason });
      return c.text(REFUSALS.origin, 403);
    }
    if (options.accepting && !options.accepting()) return c.text(REFUSALS.draining, 503);

    if (c.req.header('upgrade')?.toLowerCase() !== 'websocket') return c.text('expected a WebSocket upgrade', 426);

    // Counted from open to close, so a handshake that never completes holds no slot.
    const ip = config.maxConnectionsPerIp > 0 ? clientIp(c) : undefined;
    if (ip !== undefined && (perIp.get(ip) ?? 0) >= config.maxConnectionsPerIp) {
      log.info('per_ip_refused', { ip });
      return c.text(REFUSALS.perIp, 429);
    }
    const request: OpenRequest = { userId: userId.output, room: room?.output, token: token?.output };
    return options.upgradeWebSocket(() => {
      const events = options.events(request);
      if (ip === undefined) return events;
      return {
        ...events,
        onOpen(event, ws) {
          perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
          events.onOpen?.(event, ws);
        },
        onClose(event, ws) {
          const left = (perIp.get(ip) ?? 1) - 1;
          if (left <= 0) perIp.delete(ip);
          else perIp.set(ip, left);
          events.onClose?.(event, ws);
        },
      };
    }, options.upgradeOptions)(c, next);
  });

  return app;
}
