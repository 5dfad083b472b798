/**
 * The hub Durable Object: the connection layer (`socket-bridge.ts`) over hibernatable sockets. It
 * sets no timers (the platform answers protocol pings), keeps each user's session with its socket
 * (`cloudflare-sessions.ts`), rebuilds the layer from `ctx.getWebSockets()` when it wakes, accepts
 * refused sockets the classic way, and answers a client's close. Everything else it delegates.
 */
import { DurableObject } from 'cloudflare:workers';
import * as v from 'valibot';
import type { ConnectRequest } from '../app.ts';
import type { Logger } from '../core/log.ts';
import { createSocketBridge, type Link, type SocketBridge } from '../socket-bridge.ts';
import {
  CONNECT_HEADER,
  ConnectRequestSchema,
  configFor,
  type Env,
  logFor,
} from './cloudflare-env.ts';
import { createSqliteHistory } from './cloudflare-history.ts';
import { createAttachedSessions } from './cloudflare-sessions.ts';

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

export class HubObject extends DurableObject<Env> {
  private readonly log: Logger;
  private readonly sessions: ReturnType<typeof createAttachedSessions>;
  private readonly bridge: SocketBridge<WebSocket>;
  /** Each live socket's link, so a frame costs no attachment read. Rebuilt from the attachments on wake. */
  private readonly links = new WeakMap<WebSocket, Link>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const config = configFor(env);
    this.log = logFor(config);
    this.sessions = createAttachedSessions(ctx.storage.kv);
    this.bridge = createSocketBridge<WebSocket>({
      config,
      log: this.log,
      newConnId: () => crypto.randomUUID(),
      seams: { history: (limits) => createSqliteHistory(ctx.storage.sql, limits) },
      persist: (ws, conn, ip, state) => this.sessions.write(ws, conn, ip, state),
      // The hub has let go of this session (replaced, flooding): should the object sleep before
      // the close completes, the socket must not bring the session back on wake.
      onDrop: (ws) => {
        if (this.links.has(ws)) this.sessions.detach(ws);
      },
    });
    // Application-level keep-alive that never wakes the object; protocol pings are the platform's.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
    this.restore();
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

  override async fetch(request: Request): Promise<Response> {
    // The Worker checked METRICS_TOKEN already; only it can reach the object.
    const { pathname } = new URL(request.url);
    if (pathname === '/metrics') return new Response(this.bridge.hub.renderMetrics());
    if (pathname === '/stats') return Response.json(this.bridge.hub.stats());
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
    else server.addEventListener('close', (event) => this.bridge.closed(link, event.code));
    // workerd does not pick a subprotocol itself: echo the one the Worker accepted (auth).
    const headers =
      connect.protocol === undefined ? undefined : { 'sec-websocket-protocol': connect.protocol };
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const link = this.links.get(ws);
    // The platform accepts frames up to 32 MiB: the layer enforces the protocol's cap.
    if (link) this.bridge.frame(link, message);
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    this.forget(ws, code);
    // Answer the client's close; 1005/1006 are not codes one may send, so they become 1000.
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  override webSocketError(ws: WebSocket): void {
    this.forget(ws, 1006);
  }

  private forget(ws: WebSocket, code: number) {
    const link = this.links.get(ws);
    if (!link) return;
    this.links.delete(ws);
    this.sessions.forget(ws);
    this.bridge.closed(link, code);
  }
}
