/**
 * A gateway's sockets and hub, whatever calls them: the Durable Object class (`gateway.ts`) only
 * hands its events here. The connection layer (`socket-bridge.ts`) runs over hibernatable sockets:
 * no timers (the platform answers protocol pings), each user's session kept with its socket
 * (`sessions.ts`), the layer rebuilt from `ctx.getWebSockets()` when the object wakes, refused
 * sockets accepted the classic way, a client's close answered. What it needs of other objects
 * goes through the seams of `shards.ts`.
 */
import * as v from 'valibot';
import type { ConnectRequest } from '../app.ts';
import type { Logger } from '../core/log.ts';
import { createSocketBridge, type Link, type SocketBridge } from '../socket-bridge.ts';
import {
  CONNECT_HEADER,
  ConnectRequestSchema,
  configFor,
  type Env,
  GATEWAY_HEADER,
  logFor,
} from './env.ts';
import { roomMembers } from '../admin/figures.ts';
import { createAttachedSessions } from './sessions.ts';
import { createShards, type Shards } from './shards.ts';

/** Where a gateway keeps its own name, for the wakes that come from another object's call. */
const NAME_KEY = 'gateway-name';

function closeQuietly(ws: WebSocket, code: number, reason: string) {
  try {
    ws.close(code, reason);
  } catch {
    // Closed already.
  }
}

/** SHA-256 of the reconnect token: the secret itself is never stored with the socket. */
async function digest(token: string): Promise<string> {
  const bytes = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)),
  );
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class GatewaySockets {
  private readonly log: Logger;
  /**
   * This gateway's name: told by the Worker with the first socket and kept for later wakes (an
   * object that never had a socket, woken by another's call, holds nobody: any name will do).
   */
  private name: string;
  private readonly sessions: ReturnType<typeof createAttachedSessions>;
  /** The hub's seams, and what they answer other objects (`GatewayRpc`). */
  shards!: Shards;
  private bridge!: SocketBridge<WebSocket>;
  /** Each live socket's link, so a frame costs no attachment read. Rebuilt from the attachments on wake. */
  private readonly links = new WeakMap<WebSocket, Link>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly env: Env,
  ) {
    this.log = logFor(configFor(env));
    this.sessions = createAttachedSessions(ctx.storage.kv);
    this.name = (ctx.storage.kv.get(NAME_KEY) as string | undefined) ?? ctx.id.name ?? 'gateway-0';
    this.build();
    // Application-level keep-alive that never wakes the object; protocol pings are the platform's.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
    this.restore();
  }

  /** The hub and its layer, for this gateway's name. */
  private build() {
    const config = configFor(this.env);
    this.shards = createShards({
      env: this.env,
      name: this.name,
      shards: config.gatewayShards,
      sql: this.ctx.storage.sql,
      onError: (event) => (error) =>
        this.log.warn(event, { error: error instanceof Error ? error.message : String(error) }),
    });
    this.bridge = createSocketBridge<WebSocket>({
      config,
      log: this.log,
      newConnId: () => crypto.randomUUID(),
      seams: this.shards.seams,
      persist: (ws, conn, ip, state) => this.sessions.write(ws, conn, ip, state),
      // The hub has let go of this session (replaced, flooding): should the object sleep before
      // the close completes, the socket must not bring the session back on wake.
      onDrop: (ws) => {
        if (this.links.has(ws)) this.sessions.detach(ws);
      },
    });
  }

  /** Rebuilds the layer from the sockets that outlived the previous instance (hibernation, eviction). */
  private restore() {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) return this.sessions.clear();
    let restored = 0;
    for (const ws of sockets) {
      const session = this.sessions.read(ws);
      if (session?.state === undefined) {
        // Detached: the hub had already let go and this socket was closing.
        closeQuietly(ws, 1000, 'closed');
        continue;
      }
      const link = this.bridge.restore(ws, session.conn, session.ip, session.state);
      if (!link) {
        closeQuietly(ws, 1011, 'session state lost');
        continue;
      }
      this.links.set(ws, link);
      restored++;
    }
    this.log.info('hub_restored', { sockets: sockets.length, restored });
  }

  /** A connect request the Worker checked and forwarded: the 101 with a socket, or a refusal. */
  async connect(request: Request): Promise<Response> {
    const name = request.headers.get(GATEWAY_HEADER);
    if (name !== null && name !== this.name && this.bridge.size === 0) {
      // A new gateway learns its name with its first socket: nobody is held here yet.
      this.name = name;
      this.ctx.storage.kv.put(NAME_KEY, name);
      this.build();
    }
    let connect: ConnectRequest;
    try {
      connect = v.parse(
        ConnectRequestSchema,
        JSON.parse(request.headers.get(CONNECT_HEADER) ?? ''),
      );
    } catch {
      return new Response('bad connect request', { status: 400 });
    }
    if (connect.token !== undefined) connect.token = await digest(connect.token);
    // The object cannot ping (Workers' WebSocket has no ping()): the takeover probe of a userId held
    // without this token waits for the old socket's frame or close only.
    const refusal = await this.bridge.admit(connect);
    if (refusal) return new Response(refusal.body, { status: refusal.status });
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // A refused socket only hears why and is closed: workerd delivers a close issued before the
    // 101 only on a socket accepted the classic way, and this one need never hibernate.
    const hibernates = this.bridge.hub.accepts(connect);
    if (hibernates) this.ctx.acceptWebSocket(server);
    else server.accept();
    const link = this.bridge.open(connect, server);
    if (hibernates) this.links.set(server, link);
    else
      server.addEventListener('close', (event) =>
        this.bridge.closed(link, event.code, event.wasClean),
      );
    // Which gateway took the socket, for operators (and the tests) to see the spread.
    const headers: Record<string, string> = { [GATEWAY_HEADER]: this.name };
    // workerd does not pick a subprotocol itself: echo the one the Worker accepted (auth).
    if (connect.protocol !== undefined) headers['sec-websocket-protocol'] = connect.protocol;
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  /** `/stats` and `/metrics` of this gateway, for the Worker to add up; `rooms`: for `/admin`. */
  figures(rooms = false) {
    const sessions = [...this.shards.host().sessions()];
    const members = rooms ? roomMembers(sessions) : undefined;
    return {
      stats: this.bridge.hub.stats(),
      metrics: this.bridge.hub.renderMetrics(),
      partnered: sessions.filter((session) => session.partner !== undefined).length,
      ...(members && { rooms: [...members].map(([room, count]) => ({ room, members: count })) }),
    };
  }

  message(ws: WebSocket, message: string | ArrayBuffer): void {
    const link = this.links.get(ws);
    // The platform accepts frames up to 32 MiB: the layer enforces the protocol's cap.
    if (link) this.bridge.frame(link, message);
  }

  closed(ws: WebSocket, code: number, reason: string, wasClean: boolean): void {
    this.forget(ws, code, wasClean);
    // Answer the client's close; 1005/1006 are not codes one may send, so they become 1000.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  failed(ws: WebSocket): void {
    this.forget(ws, 1006);
  }

  private forget(ws: WebSocket, code: number, clean?: boolean) {
    const link = this.links.get(ws);
    if (!link) return;
    this.links.delete(ws);
    this.sessions.forget(ws);
    this.bridge.closed(link, code, clean);
  }
}
