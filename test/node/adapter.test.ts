/**
 * The Node adapter in this process, where its sockets can be inspected: once a socket is open,
 * nothing of its HTTP upgrade may stay reachable (the request, Hono's Context), and each socket
 * carries only the adapter's own listeners. Real sockets on loopback; a real GC.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { startNodeServer, type NodeServer } from '../../src/adapters/node.ts';
import { type Adopted, LINK } from '../../src/adapters/node-sockets.ts';
import { parseConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/log.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let server: NodeServer;
beforeAll(async () => {
  server = await startNodeServer({
    config: parseConfig({ PORT: '0', HOST: '127.0.0.1' }),
    log: createLogger('error', () => {}),
  });
});
afterAll(() => server.shutdown());

async function connect(userId: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws?userId=${userId}`, {
    headers: { origin: 'https://www.aleatoria.chat' },
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

/** Sends `get_rooms` and waits for the answer: proves the socket is bound and served. */
async function roundTrip(ws: WebSocket) {
  // Other frames (user_status from earlier sockets in the Lobby) may come first.
  const reply = new Promise<{ type: string }>((resolve) => {
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string };
      if (message.type !== 'rooms_list') return;
      ws.off('message', onMessage);
      resolve(message);
    };
    ws.on('message', onMessage);
  });
  ws.send(JSON.stringify({ type: 'get_rooms' }));
  expect((await reply).type).toBe('rooms_list');
}

describe('Node adapter sockets', () => {
  it('keeps nothing of the upgrade request once the socket is open', async () => {
    const requests: WeakRef<IncomingMessage>[] = [];
    const onConnection = (_ws: unknown, request: IncomingMessage) =>
      requests.push(new WeakRef(request));
    server.wss.on('connection', onConnection);
    const clients = await Promise.all(['keep-a', 'keep-b', 'keep-c'].map(connect));
    server.wss.off('connection', onConnection);
    for (const ws of clients) await roundTrip(ws);
    await new Promise((r) => setTimeout(r, 50));
    gc();
    expect(requests).toHaveLength(3);
    expect(requests.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    for (const ws of clients) ws.close();
  });

  it('leaves one message listener per socket: the adapter binds the socket to the hub directly', async () => {
    const ws = await connect('listeners-a');
    await roundTrip(ws);
    const served = [...server.wss.clients];
    expect(served.length).toBeGreaterThan(0);
    for (const socket of served) {
      expect(socket.listenerCount('message')).toBe(1);
      expect(socket.listenerCount('error')).toBe(1);
      // ws's own client tracking and ours, listed again once the helper's was taken off.
      expect(socket.listenerCount('close')).toBe(2);
    }
    // The socket of this test's user (others may still be closing).
    const socket = served.find(
      (s) => server.bridge.hub.state((s as Adopted)[LINK].conn)?.userId === 'listeners-a',
    )!;
    const { conn } = (socket as Adopted)[LINK];
    ws.close();
    // Both close listeners still run: ws forgets the socket, the bridge closes its session.
    await vi.waitFor(() => {
      expect(server.wss.clients.has(socket)).toBe(false);
      expect(server.bridge.hub.state(conn)).toBeUndefined();
    });
  });
});
