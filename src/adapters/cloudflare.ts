/**
 * Cloudflare adapter: a Worker and one hub Durable Object.
 *
 * The Worker (Hono, the same `createApp` as Node and Deno) answers `/health` and refuses bad
 * upgrades (userId, room, token, Origin) without touching the Durable Object; accepted ones are
 * handed to the single hub object (`idFromName`). The object accepts sockets with
 * `ctx.acceptWebSocket` so that it can hibernate: it sets no timers (the platform answers protocol
 * pings), keeps each user's state with its socket (`serializeAttachment`), and rebuilds the hub
 * from `ctx.getWebSockets()` when it wakes. It only delegates to the core.
 */
import { DurableObject } from 'cloudflare:workers';
import type { Hono } from 'hono';
import * as v from 'valibot';
import { createApp, type ConnectRequest } from '../app.ts';
import { ConfigError, parseConfig, type Config } from '../core/config.ts';
import { exceedsUtf8Bytes, frameTooBig } from '../core/frame.ts';
import { CloseCode, createHub, hubOptionsFrom, SessionState, type ConnId, type Hub, type OpenResult } from '../core/hub.ts';
import { createPerIpCounter, PER_IP_REFUSAL, type PerIpCounter } from '../core/limits.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { ReconnectToken, RoomName, UserId } from '../core/protocol.ts';

export interface Env {
  HUB: DurableObjectNamespace<HubObject>;
  [variable: string]: unknown;
}

/** Carries the checked connect request from the Worker to the object; the Worker builds it, a client never can. */
const CONNECT_HEADER = 'x-aleatoria-connect';
const HUB_NAME = 'hub';
/** `serializeAttachment` holds at most 2,048 bytes; larger session states go to the object's storage. */
const MAX_ATTACHMENT_BYTES = 1900;
const SESSION_KEY = (conn: ConnId) => `session:${conn}`;

const ConnectRequestSchema = v.object({
  userId: UserId,
  room: v.optional(RoomName),
  token: v.optional(ReconnectToken),
  ip: v.optional(v.pipe(v.string(), v.maxLength(64))),
  protocol: v.optional(v.pipe(v.string(), v.maxLength(8192))),
});

const Attachment = v.object({
  conn: v.pipe(v.string(), v.maxLength(64)),
  ip: v.optional(v.pipe(v.string(), v.maxLength(64))),
  /** The session, when small enough to live here; absent while refused or when kept in storage. */
  state: v.optional(SessionState),
  stored: v.optional(v.boolean()),
});
type Attachment = v.InferOutput<typeof Attachment>;

const configs = new WeakMap<object, Config>();
/** Configuration from the Worker's `[vars]` and secrets, parsed once per isolate. */
function configFor(env: Env): Config {
  let config = configs.get(env);
  if (!config) configs.set(env, (config = parseConfig(env)));
  return config;
}

const logFor = (config: Config): Logger => createLogger(config.logLevel, (line) => console.log(line));

const apps = new WeakMap<object, Hono>();
function appFor(env: Env): Hono {
  let app = apps.get(env);
  if (app) return app;
  const config = configFor(env);
  app = createApp({
    config,
    log: logFor(config),
    // Cloudflare sets it on every request: the platform is the proxy.
    remoteAddress: (c) => c.req.header('cf-connecting-ip'),
    metrics: async () => (await env.HUB.get(env.HUB.idFromName(HUB_NAME)).fetch('https://hub/metrics')).text(),
    upgrade: (c, request) => {
      const hub = env.HUB.get(env.HUB.idFromName(HUB_NAME));
      return hub.fetch(new Request(c.req.url, { headers: { upgrade: 'websocket', [CONNECT_HEADER]: JSON.stringify(request) } }));
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
      console.error(JSON.stringify({ level: 'error', event: 'invalid_configuration', problems: error.problems }));
      return new Response('server misconfigured', { status: 500 });
    }
  },
} satisfies ExportedHandler<Env>;

function closeQuietly(ws: WebSocket, code: number, reason: string) {
  try {
    ws.close(code, reason);
  } catch {
    // Closed already.
  }
}

/** SHA-256 of the reconnect token: the secret itself is never stored with the socket. */
async function digest(token: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class HubObject extends DurableObject<Env> {
  private readonly config: Config;
  private readonly log: Logger;
  private readonly hub: Hub;
  private readonly sockets = new Map<ConnId, WebSocket>();
  /**
   * Each live socket's connection, so a frame costs no attachment read (a structured-clone copy of
   * the whole session, then its validation). Rebuilt from the attachments on wake.
   */
  private readonly conns = new WeakMap<WebSocket, ConnId>();
  private readonly perIp: PerIpCounter;
  /** The connection `fetch` is opening: what the hub does to it waits until its socket is accepted. */
  private opening: { conn: ConnId; actions: Array<(ws: WebSocket) => void> } | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = configFor(env);
    this.log = logFor(this.config);
    this.perIp = createPerIpCounter(this.config.maxConnectionsPerIp);
    this.hub = createHub(
      {
        now: Date.now,
        random: Math.random,
        send: (conn, text) => {
          if (this.opening?.conn === conn) this.opening.actions.push((ws) => ws.send(text));
          else {
            try {
              this.sockets.get(conn)?.send(text);
            } catch {
              // Closing already: its close event cleans up.
            }
          }
        },
        close: (conn, code, reason) => {
          if (this.opening?.conn === conn) this.opening.actions.push((ws) => closeQuietly(ws, code, reason));
          else {
            const ws = this.sockets.get(conn);
            if (!ws) return;
            // The hub has let go of this session (replaced, flooding): should the object sleep
            // before the close completes, the socket must not bring the session back on wake.
            this.detach(ws);
            closeQuietly(ws, code, reason);
          }
        },
        persist: (conn, state) => this.persist(conn, state),
      },
      hubOptionsFrom(this.config),
    );
    // Application-level keep-alive that never wakes the object; protocol pings are the platform's.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('ping', 'pong'));
    this.restore();
  }

  /** Rebuilds the hub from the sockets that outlived the previous instance (hibernation, eviction). */
  private restore() {
    const sockets = this.ctx.getWebSockets();
    if (sockets.length === 0) {
      // Nothing survived: session states spilled to storage by a previous life are stale.
      for (const [key] of this.ctx.storage.kv.list({ prefix: 'session:' })) this.ctx.storage.kv.delete(key);
      return;
    }
    let restored = 0;
    for (const ws of sockets) {
      const attachment = this.attachmentOf(ws);
      const state = attachment?.stored ? this.ctx.storage.kv.get(SESSION_KEY(attachment.conn)) : attachment?.state;
      if (!attachment || state === undefined) {
        // Detached: the hub had already let go and this socket was closing.
        closeQuietly(ws, 1000, 'closed');
        continue;
      }
      if (!this.hub.restore(attachment.conn, state)) {
        closeQuietly(ws, 1011, 'session state lost');
        continue;
      }
      this.sockets.set(attachment.conn, ws);
      this.conns.set(ws, attachment.conn);
      this.perIp.add(attachment.ip);
      restored++;
    }
    this.log.info('hub_restored', { sockets: sockets.length, restored });
  }

  private attachmentOf(ws: WebSocket): Attachment | undefined {
    const parsed = v.safeParse(Attachment, ws.deserializeAttachment());
    return parsed.success ? parsed.output : undefined;
  }

  private persist(conn: ConnId, state: SessionState) {
    const ws = this.sockets.get(conn);
    const attachment = ws && this.attachmentOf(ws);
    if (!ws || !attachment) return;
    const inline: Attachment = { conn, ip: attachment.ip, state };
    // Its JSON size stands in for the structured-clone size, with room to spare under the limit.
    if (!exceedsUtf8Bytes(JSON.stringify(inline), MAX_ATTACHMENT_BYTES)) {
      if (attachment.stored) this.ctx.storage.kv.delete(SESSION_KEY(conn));
      ws.serializeAttachment(inline);
    } else {
      this.ctx.storage.kv.put(SESSION_KEY(conn), state);
      ws.serializeAttachment({ conn, ip: attachment.ip, stored: true } satisfies Attachment);
    }
  }

  /** Keeps only the socket's identity in its attachment: a session no longer lives here. */
  private detach(ws: WebSocket) {
    const attachment = this.attachmentOf(ws);
    if (!attachment) return;
    if (attachment.stored) this.ctx.storage.kv.delete(SESSION_KEY(attachment.conn));
    ws.serializeAttachment({ conn: attachment.conn, ip: attachment.ip } satisfies Attachment);
  }

  override async fetch(request: Request): Promise<Response> {
    // The Worker checked METRICS_TOKEN already; only it can reach the object.
    if (new URL(request.url).pathname === '/metrics') return new Response(this.hub.renderMetrics());
    let connect: ConnectRequest;
    try {
      connect = v.parse(ConnectRequestSchema, JSON.parse(request.headers.get(CONNECT_HEADER) ?? ''));
    } catch {
      return new Response('bad connect request', { status: 400 });
    }
    const token = connect.token === undefined ? undefined : await digest(connect.token);
    // The object cannot ping (Workers' WebSocket has no ping()), so the probe of a userId held
    // without this token waits for the old socket's frame or close only; see README.
    const probe = this.hub.prepare({ userId: connect.userId, token });
    if (probe) await probe;
    if (this.perIp.full(connect.ip)) {
      this.log.info('per_ip_refused', { ip: connect.ip });
      return new Response(PER_IP_REFUSAL, { status: 429 });
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const conn: ConnId = crypto.randomUUID();
    const opening: NonNullable<HubObject['opening']> = { conn, actions: [] };
    this.opening = opening;
    let result: OpenResult;
    try {
      result = this.hub.open(conn, { userId: connect.userId, room: connect.room, token });
    } finally {
      this.opening = undefined;
    }
    if (result.accepted) {
      this.ctx.acceptWebSocket(server);
      server.serializeAttachment({ conn, ip: connect.ip } satisfies Attachment);
      this.sockets.set(conn, server);
      this.conns.set(server, conn);
      this.perIp.add(connect.ip);
      this.persist(conn, this.hub.state(conn)!);
    } else {
      // A refused socket only hears why and is closed: workerd delivers a close issued before the
      // 101 only on a socket accepted the classic way, and this one need never hibernate.
      this.log.info('connection_refused', { userId: connect.userId, code: result.code });
      server.accept();
    }
    for (const action of opening.actions) action(server);
    // workerd does not pick a subprotocol itself: echo the one the Worker accepted (auth).
    const headers = connect.protocol === undefined ? undefined : { 'sec-websocket-protocol': connect.protocol };
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const conn = this.conns.get(ws);
    if (conn === undefined) return;
    // The platform accepts frames up to 32 MiB: the protocol's cap is enforced here.
    if (frameTooBig(message, this.config.maxMessageBytes)) {
      this.hub.metrics.inc('aleatoria_closes_total', 'message_too_big');
      this.hub.close(conn);
      this.detach(ws);
      closeQuietly(ws, CloseCode.messageTooBig, 'message too big');
      return;
    }
    try {
      if (typeof message === 'string') this.hub.message(conn, message);
      else this.hub.binary(conn);
    } catch (error) {
      this.log.error('message_handler_failed', { error: error instanceof Error ? error.stack : String(error) });
    }
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    this.forget(ws);
    try {
      // Answer the client's close; 1005/1006 are not codes one may send, so they become 1000.
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  override webSocketError(ws: WebSocket): void {
    this.forget(ws);
  }

  private forget(ws: WebSocket) {
    const attachment = this.attachmentOf(ws);
    if (!attachment) return;
    if (this.sockets.get(attachment.conn) === ws) {
      this.sockets.delete(attachment.conn);
      this.perIp.remove(attachment.ip);
    }
    if (attachment.stored) this.ctx.storage.kv.delete(SESSION_KEY(attachment.conn));
    this.hub.close(attachment.conn);
  }
}
