/**
 * Node adapter (`npm start`): `@hono/node-server` v2 with its built-in `upgradeWebSocket` over a
 * `ws` server (this replaces the deprecated `@hono/node-ws`). Adds what only the runtime can do:
 * the frame-size cap (ws closes with 1009), protocol-level heartbeat, the outbound buffer reading
 * for slow clients, and the SIGTERM/SIGINT drain.
 */
import { serve, upgradeWebSocket } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { createApp } from '../app.ts';
import { ConfigError, parseConfig, type Config } from '../core/config.ts';
import { CloseCode } from '../core/hub.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createSocketBridge, type SocketBridge } from '../socket-bridge.ts';

export interface NodeServerOptions {
  config: Config;
  log?: Logger;
}

export interface NodeServer {
  readonly port: number;
  readonly bridge: SocketBridge;
  /** Stops accepting, closes every socket with 1012, and resolves once all are gone or the drain window ends. */
  shutdown(): Promise<void>;
}

export async function startNodeServer({ config, log = createLogger(config.logLevel, (line) => process.stdout.write(`${line}\n`)) }: NodeServerOptions): Promise<NodeServer> {
  let accepting = true;
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes, perMessageDeflate: false });
  const bridge = createSocketBridge({
    config,
    bufferedAmount: (ws) => (ws.raw as WebSocket).bufferedAmount,
    terminate: (ws) => (ws.raw as WebSocket).terminate(),
    log,
  });
  const app = createApp({
    config,
    log,
    upgrade: bridge.upgrade(upgradeWebSocket),
    remoteAddress: (c) => getConnInfo(c).remote.address,
    accepting: () => accepting,
    metrics: () => bridge.hub.renderMetrics(),
  });

  const heartbeat = startHeartbeat(wss, config);
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host, websocket: { server: wss } });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    bridge,
    async shutdown() {
      accepting = false;
      server.close();
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      for (const ws of wss.clients) ws.close(CloseCode.serviceRestart, 'service restart');
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (wss.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      heartbeat.stop();
    },
  };
}

/**
 * One sweep timer for all sockets instead of a timer each: pings a socket every `pingIntervalMs`
 * and terminates it once nothing (pong or frame) has arrived for `pongTimeoutMs`. The sweep runs
 * at an eighth of the shorter period, so both are honoured to within that.
 */
function startHeartbeat(wss: WebSocketServer, config: Config) {
  const seen = new Map<WebSocket, { heard: number; pinged: number }>();
  wss.on('connection', (ws) => {
    const now = Date.now();
    const state = { heard: now, pinged: now };
    seen.set(ws, state);
    const alive = () => (state.heard = Date.now());
    ws.on('pong', alive);
    ws.on('message', alive);
    ws.once('close', () => seen.delete(ws));
  });
  const sweepMs = Math.max(5, Math.floor(Math.min(config.pingIntervalMs, config.pongTimeoutMs) / 8));
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [ws, state] of seen) {
      if (now - state.heard >= config.pongTimeoutMs) {
        ws.terminate();
      } else if (now - state.pinged >= config.pingIntervalMs && ws.readyState === ws.OPEN) {
        state.pinged = now;
        ws.ping();
      }
    }
  }, sweepMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

async function main() {
  // A log collector that goes away (EPIPE) must not take the server and every call with it.
  process.stdout.on('error', () => {});
  let config: Config;
  try {
    config = parseConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`aleatoria: ${error.message}\n`);
    process.exit(1);
  }
  const log = createLogger(config.logLevel, (line) => process.stdout.write(`${line}\n`));
  const server = await startNodeServer({ config, log });
  // The Go server's start-up line, kept verbatim for scripts that wait for it.
  process.stdout.write(`HTTP server started on :${server.port}\n`);
  log.info('server_started', { runtime: 'node', host: config.host, port: server.port });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutdown_started', { signal, sockets: server.bridge.size });
    // The drain ends on its own deadline; this is the backstop should anything hang past it.
    setTimeout(() => process.exit(0), config.shutdownTimeoutMs + 1000).unref();
    void server.shutdown().then(() => {
      log.info('shutdown_complete', {});
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    process.stderr.write(`aleatoria: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
