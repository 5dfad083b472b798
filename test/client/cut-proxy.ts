/**
 * A TCP proxy in front of a server whose connections a test can cut the way networks do:
 * `half-open` (the client's side dies, the server's side stays open and everything the server
 * writes into it is swallowed, as after a Wi-Fi change) or `hard` (both sides close, the server
 * sees the disconnect). `hold()` keeps new connections waiting until `release()`.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

interface Link {
  client: Socket;
  upstream: Socket;
  cut: boolean;
}

export interface CutProxy {
  /** `ws://127.0.0.1:PORT/ws` through the proxy. */
  readonly url: string;
  /** Connections made through the proxy so far. */
  readonly connections: number;
  /** Cuts the newest live connection. */
  cut(mode: 'half-open' | 'hard'): void;
  /** New connections wait (their handshake does not start) until {@link CutProxy.release}. */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  const links: Link[] = [];
  let connections = 0;
  let holding = false;
  const waiting: Socket[] = [];

  function link(client: Socket): void {
    connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    const entry: Link = { client, upstream, cut: false };
    links.push(entry);
    client.on('data', (data) => {
      if (!entry.cut) upstream.write(data);
    });
    // Read even after a cut: the server's writes vanish instead of piling up in its queue.
    upstream.on('data', (data) => {
      if (!entry.cut) client.write(data);
    });
    client.on('close', () => {
      if (!entry.cut) upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
    client.on('error', () => {});
    upstream.on('error', () => {});
  }

  const server: Server = createServer((client) => {
    if (holding) {
      client.pause();
      waiting.push(client);
    } else link(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');

  return {
    url: `ws://127.0.0.1:${address.port}/ws`,
    get connections() {
      return connections;
    },
    cut(mode) {
      const live = links.filter((entry) => !entry.cut && !entry.client.destroyed).at(-1);
      if (!live) throw new Error('no live connection to cut');
      live.cut = true;
      live.client.destroy();
      if (mode === 'hard') live.upstream.destroy();
    },
    hold() {
      holding = true;
    },
    release() {
      holding = false;
      for (const client of waiting.splice(0)) {
        link(client);
        client.resume();
      }
    },
    async close() {
      for (const entry of links) {
        entry.client.destroy();
        entry.upstream.destroy();
      }
      for (const client of waiting) client.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
