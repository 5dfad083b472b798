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
import type { ClusterAdmin } from '../admin/cluster.ts';
import { createProcessAdmin } from '../admin/process.ts';
import type { Config } from '../core/config.ts';
import { CloseCode, type HubSeams } from '../core/hub.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createSocketBridge, type SocketBridge } from '../socket-bridge.ts';
import { createAdopter, startHeartbeat } from './node-sockets.ts';
import { runServer } from './run.ts';

export interface NodeServerOptions {
  config: Config;
  log?: Logger;
  /** Where the hub's state lives when this process is one node of a cluster. */
  seams?: HubSeams;
  /** The operator page's view of that cluster (`src/admin/cluster.ts`). */
  cluster?: ClusterAdmin;
}

export interface NodeServer {
  readonly port: number;
  readonly bridge: SocketBridge<WebSocket>;
  /** The `ws` server behind `/ws` (its `clients` are every open socket). */
  readonly wss: WebSocketServer;
  /** Stops accepting, closes every socket with 1012, and resolves once all are gone or the drain window ends. */
  shutdown(): Promise<void>;
}

export async function startNodeServer({
  config,
  log = createLogger(config.logLevel, (line) => process.stdout.write(`${line}\n`)),
  seams,
  cluster,
}: NodeServerOptions): Promise<NodeServer> {
  let accepting = true;
  const admin = createProcessAdmin(config, seams, cluster);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
  });
  const bridge = createSocketBridge<WebSocket>({
    config,
    bufferedAmount: (ws) => ws.bufferedAmount,
    terminate: (ws) => ws.terminate(),
    ping: (ws) => {
      ws.ping();
      return true;
    },
    seams: admin.seams,
    log,
  });
  admin.attach(() => bridge.hub.renderMetrics());
  const app = createApp({
    config,
    log,
    upgrade: bridge.upgrade(upgradeWebSocket, undefined, (request) => ({
      onOpen: (_event, ctx) => adopt(ctx.raw as WebSocket, request),
    })),
    remoteAddress: (c) => getConnInfo(c).remote.address,
    accepting: () => accepting,
    metrics: () => bridge.hub.renderMetrics(),
    stats: () => bridge.stats(),
    admin: admin.snapshot,
  });

  const adopt = createAdopter(bridge, log);

  const heartbeat = startHeartbeat(wss, config);
  const server = serve({
    fetch: app.fetch,
    port: config.port,
    hostname: config.host,
    websocket: { server: wss },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    bridge,
    wss,
    async shutdown() {
      accepting = false;
      server.close();
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      for (const ws of wss.clients) ws.close(CloseCode.serviceRestart, 'service restart');
      const deadline = Date.now() + config.shutdownTimeoutMs;
      while (wss.clients.size > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      for (const ws of wss.clients) ws.terminate();
      heartbeat.stop();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // A log collector that goes away (EPIPE) must not take the server and every call with it.
  process.stdout.on('error', () => {});
  void runServer({
    name: 'node',
    env: process.env,
    writeLine: (line) => process.stdout.write(`${line}\n`),
    errorLine: (line) => process.stderr.write(`${line}\n`),
    exit: (code) => process.exit(code),
    onSignal: (signal, listener) => process.on(signal, listener),
    start: (config, log, seams, cluster) => startNodeServer({ config, log, seams, cluster }),
  });
}
