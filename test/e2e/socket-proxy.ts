/**
 * A TCP proxy in front of the server through which a page is loaded, so its WebSocket goes through
 * it too (same origin: the server's own-origin rule lets it in). `cutWebSocket()` destroys the
 * newest WebSocket connection on both sides without a close frame, as a network does: the server
 * sees an abnormal close (1006) and the page a drop. `hold()` keeps new WebSocket connections
 * waiting (accepted, not forwarded) until `release()`, so a test decides when the page is back.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface SocketProxy {
  /** `http://127.0.0.1:PORT` through the proxy. */
  readonly baseUrl: string;
  /** WebSocket connections forwarded so far. */
  readonly webSockets: number;
  cutWebSocket(): void;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startSocketProxy(serverBaseUrl: string): Promise<SocketProxy> {
  const target = new URL(serverBaseUrl);
  const pairs: { client: Socket; upstream: Socket; webSocket: boolean }[] = [];
  const held: { client: Socket; first: Buffer }[] = [];
  /** Every connection accepted, forwarded or not (a browser's preconnect may never send a byte). */
  const accepted = new Set<Socket>();
  let holding = false;
  let webSockets = 0;

  function forward(client: Socket, first: Buffer, webSocket: boolean): void {
    const upstream = connect(Number(target.port), target.hostname);
    pairs.push({ client, upstream, webSocket });
    if (webSocket) webSockets++;
    upstream.write(first);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    upstream.on('error', () => {});
    client.resume();
  }

  const server = createServer((client) => {
    accepted.add(client);
    client.on('close', () => accepted.delete(client));
    client.on('error', () => {});
    // The first bytes tell a WebSocket upgrade (GET /ws?...) from the page's other requests.
    client.once('data', (first: Buffer) => {
      client.pause();
      const webSocket = first.subarray(0, 8).toString('latin1') === 'GET /ws?';
      if (webSocket && holding) held.push({ client, first });
      else forward(client, first, webSocket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');

  return {
    baseUrl: `http://127.0.0.1:${address.port}`,
    get webSockets() {
      return webSockets;
    },
    cutWebSocket() {
      const live = pairs.filter((pair) => pair.webSocket && !pair.client.destroyed).at(-1);
      if (!live) throw new Error('no live WebSocket to cut');
      // destroy() sends a FIN with no WebSocket close frame before it: an abnormal close.
      live.client.destroy();
      live.upstream.destroy();
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const { client, first } of held.splice(0)) forward(client, first, true);
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      for (const { client } of held) client.destroy();
      // Otherwise close() would wait for a connection that never sent anything, as long as it lives.
      for (const client of accepted) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
