/**
 * What the contract suite needs from a runtime: a way to launch the server with an environment,
 * and a `ws` test client. Nothing here knows which runtime it talks to.
 */
import { WebSocket, type RawData } from 'ws';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import * as v from 'valibot';
import { ServerMessage } from '../../src/core/protocol.ts';

export interface LaunchedServer {
  /** `http://127.0.0.1:PORT` */
  readonly baseUrl: string;
  /** Sends a signal and resolves with the exit code and how long the process took to exit. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; elapsedMs: number }>;
  /** Stops the server for good (test teardown). */
  stop(): Promise<void>;
  /** Everything the process printed so far. */
  output(): string;
  /** Resident memory of the server process in bytes, where the launcher runs the server itself. */
  rss?(): number;
  /** CPU seconds (user + system) the server process has used so far. */
  cpuSeconds?(): number;
  /** A cluster's processes, each on its own port; `baseUrl` then names each in turn. */
  readonly nodes?: readonly LaunchedServer[];
  /**
   * A new userId that this one process serves, where processes are chosen by userId (the
   * gateways of a sharded Cloudflare deployment); absent: any userId reaches it.
   */
  uid?(label?: string): string;
}

/**
 * One process of `server` (the first node of a cluster): for what is per process by design
 * (the per-IP cap, the JWKS cache, memory), and for requests that must reach the same process.
 */
export const oneProcess = (server: LaunchedServer): LaunchedServer => server.nodes?.[0] ?? server;

/** A new userId served by `server` (one process of it: see `oneProcess`). */
export const uidOn = (server: LaunchedServer, label?: string) => server.uid?.(label) ?? uid(label);

/** Behaviours that legitimately differ between runtimes; the suite names each, never skips silently. */
export interface Capabilities {
  /** The server itself sends protocol pings and drops peers that stop answering (Cloudflare: the platform does). */
  serverHeartbeat: boolean;
  /** The process drains on SIGTERM/SIGINT (Cloudflare: the platform restarts isolates itself). */
  signalDrain: boolean;
  /** Outbound buffering is visible to the server, so slow readers can be closed with 1013. */
  slowConsumerClose: boolean;
  /**
   * The runtime waits for the client's close frame while the client is still sending, so a
   * flooder reads the 1008 the server sent. Deno drops the TCP connection right after its close
   * frame; with the flood's data unread the kernel resets the connection and the client sees 1006.
   */
  closeHandshakeUnderFlood: boolean;
  /** The launched process is the server itself, so its RSS is the server's (not so for wrangler). */
  processMemory: boolean;
  /**
   * The server can send a protocol ping when it wants to (the takeover probe). A Durable Object
   * cannot: Workers' WebSocket has no ping(), and pongs never reach it.
   */
  serverPing: boolean;
}

export interface ContractTarget {
  name: string;
  capabilities: Capabilities;
  launch(env: Record<string, string>): Promise<LaunchedServer>;
}

export type Received = ServerMessage & Record<string, unknown>;

export interface ConnectOptions {
  userId?: string;
  room?: string;
  token?: string;
  /** Origin header; `null` sends none. Default: the spec's production origin. */
  origin?: string | null;
  headers?: Record<string, string>;
  autoPong?: boolean;
  /** Subprotocols offered in Sec-WebSocket-Protocol. */
  protocols?: string[];
}

export const PROD_ORIGIN = 'https://www.aleatoria.chat';

export function wsUrl(baseUrl: string, query: Record<string, string | undefined>): string {
  const url = new URL('/ws', baseUrl.replace(/^http/, 'ws'));
  for (const [key, value] of Object.entries(query))
    if (value !== undefined) url.searchParams.set(key, value);
  return url.href;
}

function socketOptions(options: ConnectOptions) {
  const headers: Record<string, string> = { ...options.headers };
  const origin = options.origin === undefined ? PROD_ORIGIN : options.origin;
  if (origin !== null) headers.origin = origin;
  return { headers, autoPong: options.autoPong ?? true, handshakeTimeout: 5000 };
}

/** Resolves with the HTTP status of an upgrade attempt: 101 when it succeeded. */
export function upgradeStatus(
  baseUrl: string,
  options: ConnectOptions & { query?: Record<string, string | undefined> },
): Promise<number> {
  const query = options.query ?? {
    userId: options.userId,
    room: options.room,
    token: options.token,
  };
  const ws = new WebSocket(wsUrl(baseUrl, query), options.protocols ?? [], socketOptions(options));
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', (error) => reject(error));
  });
}

/**
 * A bare upgrade request, headers exactly as given (e.g. `Sec-WebSocket-Protocol` joined with ", "
 * as browsers send it; the `ws` client joins with "," and Deno splits only on ", "). Resolves with
 * the status and response headers, then drops the connection.
 */
export function rawUpgrade(
  baseUrl: string,
  query: Record<string, string>,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const url = new URL('/ws', baseUrl);
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        origin: PROD_ORIGIN,
        ...headers,
      },
    });
    req.once('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.once('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.once('error', reject);
    req.end();
  });
}

let clientSeq = 0;
/** A user id unique to this test run. */
export const uid = (label = 'u') =>
  `${label}-${process.pid}-${(++clientSeq).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

export class TestClient {
  /** The headers of the server's 101 response. */
  upgradeHeaders: Record<string, string | string[] | undefined> = {};
  readonly queue: Received[] = [];
  /** Frames that were not valid server messages of the protocol; any one fails the next `next()`. */
  readonly violations: string[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: Array<() => void> = [];

  private constructor(
    readonly ws: WebSocket,
    readonly userId: string,
  ) {
    ws.on('message', (data: RawData, isBinary) => {
      const text = data.toString();
      let raw: unknown;
      try {
        raw = isBinary ? undefined : JSON.parse(text);
      } catch {
        raw = undefined;
      }
      // Kept as sent (not the parser's output) so that tests see every field the server wrote.
      if (raw !== undefined && v.is(ServerMessage, raw)) this.queue.push(raw as Received);
      else this.violations.push(text.slice(0, 300));
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) =>
      ws.once('close', (code, reason) => {
        for (const wake of this.waiters.splice(0)) wake();
        resolve({ code, reason: reason.toString() });
      }),
    );
  }

  static open(
    baseUrl: string,
    options: ConnectOptions & { query?: Record<string, string> } = {},
  ): Promise<TestClient> {
    const userId = options.userId ?? uid();
    const ws = new WebSocket(
      wsUrl(baseUrl, {
        userId: options.userId === '' ? undefined : userId,
        room: options.room,
        token: options.token,
        ...options.query,
      }),
      options.protocols ?? [],
      socketOptions(options),
    );
    const client = new TestClient(ws, userId);
    ws.once('upgrade', (response) => {
      client.upgradeHeaders = response.headers;
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`upgrade refused with ${res.statusCode}`)),
      );
      ws.once('error', reject);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Takes the first queued (or next arriving) message matching `filter`. */
  async next(filter: (m: Received) => boolean = () => true, timeoutMs = 3000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.violations.length > 0)
        throw new Error(
          `${this.userId} got frames outside the protocol: ${this.violations.join(' | ')}`,
        );
      const at = this.queue.findIndex(filter);
      if (at >= 0) return this.queue.splice(at, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(
          `${this.userId}: no matching message within ${timeoutMs} ms; queued: ${JSON.stringify(this.queue).slice(0, 500)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  nextOfType<T extends Received['type']>(
    type: T,
    timeoutMs?: number,
  ): Promise<Extract<Received, { type: T }>> {
    return this.next((m) => m.type === type, timeoutMs) as Promise<Extract<Received, { type: T }>>;
  }

  /** Fails if a message matching `filter` arrives within `ms`. */
  async expectNothing(ms = 150, filter: (m: Received) => boolean = () => true): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    const unexpected = this.queue.filter(filter);
    if (unexpected.length > 0)
      throw new Error(`${this.userId}: unexpected ${JSON.stringify(unexpected).slice(0, 500)}`);
  }

  /** A request/response round trip that proves the socket is alive and served. */
  async roundTrip(): Promise<void> {
    const messageId = uid('ping');
    this.send({ type: 'get_rooms', messageId });
    await this.next((m) => m.type === 'rooms_list' && m.messageId === messageId);
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(1000);
    return this.closed;
  }
}
