/**
 * Deno adapter (`npm run start:deno`, or `deno task start` with a native Deno): `Deno.serve` with
 * Hono's Deno `upgradeWebSocket`, the same app and core as Node. What Deno lacks, it adds: the
 * frame-size cap (checked on arrival, close 1009) and the SIGTERM/SIGINT drain. The heartbeat is
 * Deno's own `idleTimeout` (its WebSocket has no ping API).
 */
import { upgradeWebSocket } from 'hono/deno';
import { createApp, type ConnectRequest } from '../app.ts';
import { frameTooBig } from '../core/frame.ts';
import { ConfigError, parseConfig, type Config } from '../core/config.ts';
import { CloseCode } from '../core/hub.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createSocketBridge, type SocketBridge } from '../socket-bridge.ts';
import { createDenoPing, type DenoPing } from './deno-ping.ts';

export interface DenoServer {
  readonly port: number;
  readonly bridge: SocketBridge<WebSocket>;
  /** Stops accepting, closes every socket with 1012, and resolves once all are gone or the drain window ends. */
  shutdown(): Promise<void>;
}

/**
 * Deno pings a socket after `idleTimeout / 2` of silence and closes it after `idleTimeout`
 * (seconds, fractions allowed). Mapped so that pings come at least every `PING_INTERVAL_MS` and a
 * silent socket is closed at the latest `PONG_TIMEOUT_MS` after it was last heard.
 */
function idleTimeoutSeconds(config: Config): number {
  return Math.min(config.pongTimeoutMs, 2 * config.pingIntervalMs) / 1000;
}

export function startDenoServer(config: Config, log: Logger): DenoServer {
  let accepting = true;
  let denoPing: DenoPing | undefined | null = null;
  const bridge = createSocketBridge<WebSocket>({
    config,
    bufferedAmount: (ws) => ws.bufferedAmount,
    ping(ws, onLife) {
      if (denoPing === null) {
        denoPing = createDenoPing(ws);
        if (!denoPing) log.warn('deno_ping_unavailable', { reason: 'Deno internals changed: takeover probes count old sockets as alive' });
      }
      denoPing?.(ws, onLife);
      return denoPing !== undefined;
    },
    log,
  });

  /**
   * Binds an upgraded socket to the bridge directly: Hono's helper sets the socket's handlers to
   * closures that keep the request's Context for the socket's whole life; replacing them lets it go.
   */
  function adopt(ws: WebSocket, request: ConnectRequest) {
    const link = bridge.open(request, ws);
    ws.onmessage = (event) => {
      if (frameTooBig(event.data, config.maxMessageBytes)) bridge.tooBig(link);
      else if (typeof event.data === 'string') bridge.text(link, event.data);
      else bridge.binary(link);
    };
    ws.onclose = (event) => bridge.closed(link, event.code);
    ws.onerror = null;
    ws.onopen = null;
  }

  const app = createApp({
    config,
    log,
    upgrade: bridge.upgrade(upgradeWebSocket, { idleTimeout: idleTimeoutSeconds(config) }, (request) => ({
      onOpen: (_event, ctx) => adopt(ctx.raw as WebSocket, request),
    })),
    remoteAddress: (c) => (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr?.hostname,
    accepting: () => accepting,
    metrics: () => bridge.hub.renderMetrics(),
  });
  const server = Deno.serve({ port: config.port, hostname: config.host, onListen: () => {} }, (request, info) => app.fetch(request, info));

  return {
    port: (server.addr as Deno.NetAddr).port,
    bridge,
    async shutdown() {
      accepting = false;
      bridge.closeAll(CloseCode.serviceRestart, 'service restart');
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (bridge.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
    },
  };
}

async function main() {
  let config: Config;
  try {
    config = parseConfig(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`aleatoria: ${error.message}`);
    Deno.exit(1);
  }
  const log = createLogger(config.logLevel, (line) => console.log(line));
  const server = startDenoServer(config, log);
  console.log(`HTTP server started on :${server.port}`);
  log.info('server_started', { runtime: 'deno', host: config.host, port: server.port });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutdown_started', { signal, sockets: server.bridge.size });
    void server.shutdown().then(() => {
      log.info('shutdown_complete', {});
      Deno.exit(0);
    });
  };
  Deno.addSignalListener('SIGTERM', () => stop('SIGTERM'));
  Deno.addSignalListener('SIGINT', () => stop('SIGINT'));
}

if (import.meta.main) await main();
