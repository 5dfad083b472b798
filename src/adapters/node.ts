/**
 * Node adapter: `@hono/node-server` v2 with its built-in `upgradeWebSocket` over a `ws` server
 * (this replaces the deprecated `@hono/node-ws`). `aleatoria()` is what a Hono user mounts
 * (`app.route('/chat', chat.app)`, then `serve({ fetch: app.fetch, websocket: chat.websocket })`);
 * `startNodeServer` is `npm start`: the same factory served on its own. Adds what only the runtime
 * can do: the frame-size cap (ws closes with 1009), protocol-level heartbeat, the outbound buffer
 * reading for slow clients, and the drain.
 */
import { serve, upgradeWebSocket } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { createApp } from '../app.ts';
import { createProcessAdmin } from '../admin/process.ts';
import { createSocketBridge, type SocketBridge } from '../socket-bridge.ts';
import { type Chat, type ChatOptions, drain, resolveChat } from './chat.ts';
import { sendText } from './node-frames.ts';
import { createAdopter, startHeartbeat } from './node-sockets.ts';
import { runServer } from './run.ts';

export interface NodeChat extends Chat<WebSocket> {
  /** For `serve()` of `@hono/node-server`: its upgrades go to this `ws` server. */
  readonly websocket: { readonly server: WebSocketServer };
  /** The `ws` server behind `/ws` (its `clients` are every open socket). */
  readonly wss: WebSocketServer;
}

export interface NodeServer {
  readonly port: number;
  readonly bridge: SocketBridge<WebSocket>;
  readonly wss: WebSocketServer;
  /** Stops listening, then drains as `NodeChat.shutdown` does. */
  shutdown(): Promise<void>;
}

/** The chat server as a Hono app and the `ws` server its upgrades need, not yet listening. */
export function aleatoria(options: ChatOptions = {}): NodeChat {
  const { config, log } = resolveChat(options, (line) => process.stdout.write(`${line}\n`));
  let accepting = true;
  const admin = createProcessAdmin(config, options.seams, options.cluster);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxMessageBytes,
    perMessageDeflate: false,
  });
  const bridge = createSocketBridge<WebSocket>({
    config,
    send: sendText,
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
  const adopt = createAdopter(bridge, log);
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
  const heartbeat = startHeartbeat(wss, config);

  return {
    app,
    websocket: { server: wss },
    config,
    bridge,
    wss,
    async shutdown() {
      accepting = false;
      await drain(bridge, () => wss.clients.size, config.shutdownTimeoutMs);
      for (const ws of wss.clients) ws.terminate();
      heartbeat.stop();
    },
  };
}

/** `npm start`: the chat alone on `HOST:PORT`. */
export async function startNodeServer(options: ChatOptions): Promise<NodeServer> {
  const chat = aleatoria(options);
  const server = serve({
    fetch: chat.app.fetch,
    port: chat.config.port,
    hostname: chat.config.host,
    websocket: chat.websocket,
  });
  await new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject));
  return {
    port: (server.address() as AddressInfo).port,
    bridge: chat.bridge,
    wss: chat.wss,
    shutdown() {
      server.close();
      if ('closeIdleConnections' in server) server.closeIdleConnections();
      return chat.shutdown();
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
