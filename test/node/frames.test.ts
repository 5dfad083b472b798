/**
 * `sendText` (src/adapters/node-frames.ts) writes text frames past `ws`'s sender: over a real
 * socket, a `ws` client must read every length and every kind of character exactly, in order with
 * the frames `ws` itself sends (its `send`, pings, the close frame), and `bufferedAmount` must
 * still count what waits for a reader that stopped.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { sendText } from '../../src/adapters/node-frames.ts';

const opened: Array<{ close(): void }> = [];
afterEach(() => {
  for (const item of opened.splice(0)) item.close();
});

/** A server and a client connected to it over loopback, as the Node adapter configures `ws`. */
async function connected(): Promise<{ server: WebSocket; client: WebSocket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: false });
  opened.push(wss);
  await new Promise((resolve) => wss.once('listening', resolve));
  const serverSide = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  opened.push({ close: () => client.terminate() });
  await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject));
  return { server: await serverSide, client };
}

/** Around each boundary of the frame's length field, in bytes. */
const LENGTHS = [0, 1, 2, 124, 125, 126, 127, 65_534, 65_535, 65_536, 65_537, 200_000];

describe('sendText', () => {
  it('sends every length, in 1-, 2-, 3- and 4-byte characters, in order with ws’s own frames', async () => {
    const { server, client } = await connected();
    const texts: string[] = [];
    for (const length of LENGTHS) texts.push('a'.repeat(length));
    // Multi-byte characters across the boundaries: the header counts bytes, not UTF-16 units.
    texts.push(
      'é'.repeat(63),
      'é'.repeat(64),
      '€'.repeat(42),
      '😀'.repeat(32),
      '😀'.repeat(16_384),
    );
    texts.push(`{"type":"chat_message","payload":{"content":"naïve ☃ \\u0000 \u{1F600}"}}`);

    const received: string[] = [];
    const done = new Promise<{ code: number }>((resolve) => {
      client.on('message', (data, isBinary) =>
        received.push(isBinary ? '<binary>' : `text:${data.toString()}`),
      );
      client.on('ping', (data) => received.push(`ping:${data.toString()}`));
      client.once('close', (code) => resolve({ code }));
    });
    const expected: string[] = [];
    for (const [i, text] of texts.entries()) {
      sendText(server, text);
      expected.push(`text:${text}`);
      if (i % 3 === 0) {
        server.ping(`p${i}`);
        expected.push(`ping:p${i}`);
      }
      if (i % 4 === 1) {
        server.send(`ws-${i}`);
        expected.push(`text:ws-${i}`);
      }
    }
    server.close(1012, 'service restart');
    expect(await done).toEqual({ code: 1012 });
    expect(received.length).toBe(expected.length);
    for (const [i, item] of received.entries()) expect(item, `frame ${i}`).toBe(expected[i]);
  });

  it('leaves what a reader that stopped has not taken in bufferedAmount', async () => {
    const { server, client } = await connected();
    (client as unknown as { _socket: { pause(): void } })._socket.pause();
    const chunk = 'x'.repeat(60_000);
    for (let i = 0; i < 300; i++) sendText(server, chunk);
    // 18 MB written; the kernel's loopback buffers take a few MB at most.
    expect(server.bufferedAmount).toBeGreaterThan(8_000_000);
  });
});
