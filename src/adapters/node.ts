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
import { createApp, type ConnectRequest } from '../app.ts';
import type { Config } from '../core/config.ts';
import { CloseCode } from '../core/hub.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { createSocketBridge, type SocketBridge } from '../socket-bridge.ts';
import { LINK, SILENT_SWEEPS, startHeartbeat, track, type Adopted } from './node-heartbeat.ts';
import { runServer } from './run.ts';

export interface NodeServerOptions {
  config: Config;
  log?: Logger;
}

export interface NodeServer {
  readonly port: number;
  readonly bridge: SocketBridge<WebSocket>;
  /** The `ws` server behind `/ws` (its `clients` are every open socket). */
  readonly wss: WebSocketServer;
  /** Stops accepting, closes every socket with 1012, and resolves once all are gone or the drain window ends. */
  shutdown(): Promise<void>;
}

export async function startNodeServer({ config, log = createLogger(config.logLevel, (line) => process.stdout.write(`${line}\n`)) }: NodeServerOptions): Promise<NodeServer> {
  let accepting = true;
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxMessageBytes, perMessageDeflate: false });
  const bridge = createSocketBridge<WebSocket>({
    config,
    bufferedAmount: (ws) => ws.bufferedAmount,
    terminate: (ws) => ws.terminate(),
    ping: (ws) => {
      ws.ping();
      return true;
    },
    log,
  });
  const app = createApp({
    config,
    log,
    upgrade: bridge.upgrade(upgradeWebSocket, undefined, (request) => ({
      onOpen: (_event, ctx) => adopt(ctx.raw as WebSocket, request),
    })),
    remoteAddress: (c) => getConnInfo(c).remote.address,
    accepting: () => accepting,
    metrics: () => bridge.hub.renderMetrics(),
  });

  // One set of listeners for every socket (each finds its socket as `this`): nothing per socket
  // but the bridge's link and two counters, kept on the socket as ws's own heartbeat example does.
  function onMessage(this: WebSocket, data: Buffer, isBinary: boolean) {
    const ws = this as Adopted;
    ws[SILENT_SWEEPS] = 0;
    if (isBinary) bridge.binary(ws[LINK]);
    else bridge.text(ws[LINK], data.toString());
  }
  function onPong(this: WebSocket) {
    const ws = this as Adopted;
    ws[SILENT_SWEEPS] = 0;
    bridge.heard(ws[LINK]);
  }
  function onError(this: WebSocket, error: Error & { code?: string }) {
    // ws enforces maxPayload itself and closes with 1009; it tells us only here (the close event
    // then reports 1006: ws stops reading, so the client's echo of the close is never seen).
    if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') bridge.hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
    log.debug('socket_error', { conn: (this as Adopted)[LINK].conn, error: error.message });
  }
  function onClose(this: WebSocket, code: number) {
    bridge.closed((this as Adopted)[LINK], code);
  }

  /**
   * Binds an upgraded socket to the bridge directly. Hono's helper keeps, per socket, closures
   * that hold the request's Context, Request and IncomingMessage for the socket's whole life, and
   * builds a MessageEvent and a copy of every frame (measured: bench/README.md). Once the
   * helper has attached its listeners (right after `onOpen` returns), they are taken off again.
   */
  function adopt(raw: WebSocket, request: ConnectRequest) {
    const ws = track(raw, bridge.open(request, raw));
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('error', onError);
    ws.on('close', onClose);
    shedLaterListeners(ws);
  }

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
    wss,
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

/** The socket events Hono's Node helper listens to for its own dispatch, which `adopt` replaces. */
const SHED_EVENTS = ['message', 'close', 'error'] as const;

/**
 * Removes, at the end of the current job, the `SHED_EVENTS` listeners added after this call: the
 * upgrade helper's. (Its own scope, so that no per-socket closure keeps the snapshot alive.)
 */
function shedLaterListeners(ws: WebSocket) {
  const kept = SHED_EVENTS.map((event) => ws.listeners(event));
  queueMicrotask(() => {
    SHED_EVENTS.forEach((event, i) => {
      for (const listener of ws.listeners(event)) if (!kept[i]!.includes(listener)) ws.off(event, listener as (...args: unknown[]) => void);
    });
  });
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
    start: (config, log) => startNodeServer({ config, log }),
  });
}
