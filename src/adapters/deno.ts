/**
 * Deno adapter: `Deno.upgradeWebSocket`, the same app and core as Node. `aleatoria()` is what a
 * Hono user mounts (`app.route('/chat', chat.app)`, served by `Deno.serve(app.fetch)`);
 * `startDenoServer` is `npm run start:deno` (or `deno task start` with a native Deno): the same
 * factory under `Deno.serve` of its own. What Deno lacks, it adds: the frame-size
 * cap (checked on arrival, close 1009) and the drain. The heartbeat is Deno's own `idleTimeout`
 * (its WebSocket has no ping API; `deno-ping.ts` reaches the runtime's for the takeover probe).
 */
import { createApp } from '../app.ts';
import type { ClusterAdmin } from '../admin/cluster.ts';
import { createProcessAdmin } from '../admin/process.ts';
import type { Config } from '../core/config.ts';
import type { HubSeams } from '../core/hub.ts';
import type { Logger } from '../core/log.ts';
import { createSocketBridge, type Link, type SocketBridge } from '../socket-bridge.ts';
import { type Chat, type ChatOptions, drain, resolveChat } from './chat.ts';
import { createDenoPing, type DenoPing, idleTimeoutSeconds } from './deno-ping.ts';
import { runServer } from './run.ts';

export type DenoChat = Chat<WebSocket>;

export interface DenoServer {
  readonly port: number;
  readonly bridge: SocketBridge<WebSocket>;
  /** Drains as `DenoChat.shutdown` does, then stops the server within the same window. */
  shutdown(): Promise<void>;
}

const LINK = Symbol('aleatoria.link');

/** A socket as the adapter keeps it: its bridge link, from its `open` event on. */
interface Bound extends WebSocket {
  [LINK]?: Link;
}

/** The chat server as a Hono app; its `/ws` upgrades through `Deno.upgradeWebSocket`. */
export function aleatoria(options: ChatOptions = {}): DenoChat {
  const { config, log } = resolveChat(options, (line) => console.log(line));
  let accepting = true;
  const admin = createProcessAdmin(config, options.seams, options.cluster);
  let denoPing: DenoPing | undefined | null = null;
  const bridge = createSocketBridge<WebSocket>({
    config,
    bufferedAmount: (ws) => ws.bufferedAmount,
    ping(ws, onLife) {
      if (denoPing === null) {
        denoPing = createDenoPing(ws);
        if (!denoPing) {
          const reason = 'Deno internals changed: takeover probes count old sockets as alive';
          log.warn('deno_ping_unavailable', { reason });
        }
      }
      denoPing?.(ws, onLife);
      return denoPing !== undefined;
    },
    seams: admin.seams,
    log,
  });
  admin.attach(() => bridge.hub.renderMetrics());

  // One set of listeners for every socket (each finds its socket as `this`): nothing per socket
  // but its link. Deno sends nothing before the 101 is out, so the link is opened on `open`.
  function onMessage(this: Bound, event: MessageEvent<string | ArrayBuffer>) {
    // Deno has no frame cap of its own: the bridge closes an oversized frame with 1009.
    bridge.frame(this[LINK]!, event.data);
  }
  function onClose(this: Bound, event: CloseEvent) {
    // A socket that never opened has no link, and the bridge never knew it.
    if (this[LINK]) bridge.closed(this[LINK], event.code, event.wasClean);
  }

  const app = createApp({
    config,
    log,
    async upgrade(c, request) {
      const refusal = await bridge.admit(request);
      if (refusal) return c.text(refusal.body, refusal.status);
      // Deno splits the offered list on ", " only: `request.protocol` is the first entry as Node
      // and Hono's helper read it (split on ","), so a list without spaces fails as it did there.
      const { socket, response } = Deno.upgradeWebSocket(c.req.raw, {
        idleTimeout: idleTimeoutSeconds(config),
        protocol: request.protocol,
      });
      const ws = socket as Bound;
      ws.addEventListener('open', () => (ws[LINK] = bridge.open(request, ws)), { once: true });
      ws.addEventListener('message', onMessage);
      ws.addEventListener('close', onClose, { once: true });
      return response;
    },
    remoteAddress: (c) =>
      (c.env as Deno.ServeHandlerInfo<Deno.NetAddr> | undefined)?.remoteAddr?.hostname,
    accepting: () => accepting,
    metrics: () => bridge.hub.renderMetrics(),
    stats: () => bridge.stats(),
    admin: admin.snapshot,
  });
  return {
    app,
    config,
    bridge,
    async shutdown() {
      accepting = false;
      await drain(bridge, () => bridge.size, config.shutdownTimeoutMs);
    },
  };
}

/** `npm run start:deno`: the chat alone on `HOST:PORT`. */
export function startDenoServer(
  config: Config,
  log: Logger,
  seams?: HubSeams,
  cluster?: ClusterAdmin,
): DenoServer {
  const chat = aleatoria({ config, log, seams, cluster });
  const server = Deno.serve(
    { port: config.port, hostname: config.host, onListen: () => {} },
    (request, info) => chat.app.fetch(request, info),
  );
  return {
    port: (server.addr as Deno.NetAddr).port,
    bridge: chat.bridge,
    async shutdown() {
      const deadline = Date.now() + config.shutdownTimeoutMs;
      await chat.shutdown();
      await Promise.race([
        server.shutdown(),
        new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now()))),
      ]);
    },
  };
}

if (import.meta.main) {
  await runServer({
    name: 'deno',
    env: Deno.env.toObject(),
    writeLine: (line) => console.log(line),
    errorLine: (line) => console.error(line),
    exit: (code) => Deno.exit(code),
    onSignal: (signal, listener) => Deno.addSignalListener(signal, listener),
    start: startDenoServer,
  });
}
