/**
 * The frame clock of `npm run bench:calls`: a TCP proxy on 127.0.0.1 between the browsers and the
 * server that stamps every WebSocket text frame in each direction, so the server's own share of a
 * call (frame in -> frame out) is measured from outside, with the server untouched. It runs in a
 * worker thread: the bench's main thread is busy driving Playwright, and a frame waiting behind
 * that would be charged to the server. Bytes are forwarded before they are parsed; a frame's
 * stamp is the moment the chunk that completes it arrived. What it measures is an upper bound of
 * the server's time: it includes two loopback hops and this thread's own wake-ups.
 *
 * Plain HTTP (the page, app.js, /config.json) passes through unparsed; a connection whose first
 * request is `GET /ws` is followed past its 101: client frames are masked (unmasked here to read
 * the type), server frames are not. The server does not negotiate permessage-deflate.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';

/** One text frame seen by the proxy; `user` is the userId of the socket it travelled on. */
export interface FrameStamp {
  at: number;
  direction: 'in' | 'out';
  user: string;
  type: string;
  /** The frame's text length (what a replay of it must send). */
  bytes: number;
  /** `toUser` of a client frame, `fromUser` of a server frame. */
  other: string | undefined;
  /** `payload.peerId` (assign_role) and `payload.role`. */
  peerId: string | undefined;
  role: string | undefined;
}

/**
 * Reads WebSocket frames out of a byte stream, chunk by chunk: text messages to `onText`, pings
 * and pongs to `onControl` (the replay's ping -> pong is the floor under any frame's round).
 */
function frameReader(
  onText: (text: string, at: number) => void,
  onControl: (type: 'ping' | 'pong', at: number) => void,
) {
  let buffered: Buffer = Buffer.alloc(0);
  let fragments: Buffer[] = [];
  return (chunk: Buffer, at: number) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    for (;;) {
      if (buffered.length < 2) return;
      const fin = (buffered[0]! & 0x80) !== 0;
      const opcode = buffered[0]! & 0x0f;
      const masked = (buffered[1]! & 0x80) !== 0;
      let length = buffered[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        length = Number(buffered.readBigUInt64BE(2));
        offset = 10;
      }
      const maskAt = offset;
      if (masked) offset += 4;
      if (buffered.length < offset + length) return;
      const payload = Buffer.from(buffered.subarray(offset, offset + length));
      if (masked) for (let i = 0; i < length; i++) payload[i]! ^= buffered[maskAt + (i % 4)]!;
      buffered = buffered.subarray(offset + length);
      if (opcode === 0x9 || opcode === 0xa) onControl(opcode === 0x9 ? 'ping' : 'pong', at);
      // Text (1) and its continuations (0); close frames say nothing here.
      if (opcode === 1 || opcode === 0) {
        fragments.push(payload);
        if (fin) {
          onText(Buffer.concat(fragments).toString('utf8'), at);
          fragments = [];
        }
      }
    }
  };
}

function stampOf(text: string, at: number, direction: 'in' | 'out', user: string): FrameStamp {
  const message = JSON.parse(text) as {
    type?: string;
    toUser?: string;
    fromUser?: string;
    payload?: { peerId?: string; role?: string } | null;
  };
  return {
    at,
    direction,
    user,
    type: message.type ?? '?',
    bytes: text.length,
    other: direction === 'in' ? message.toUser : message.fromUser,
    peerId: message.payload?.peerId,
    role: message.payload?.role,
  };
}

let stamps: FrameStamp[] = [];

function proxy(client: Socket, targetPort: number): void {
  const server = createConnection({ host: '127.0.0.1', port: targetPort });
  client.setNoDelay(true);
  server.setNoDelay(true);
  let head = '';
  let user: string | undefined;
  let readIn: ((chunk: Buffer, at: number) => void) | undefined;
  let readOut: ((chunk: Buffer, at: number) => void) | undefined;
  let decided = false;
  // The 101's head, until it has passed: nothing from the server is a frame before it.
  let responseHead: Buffer | undefined = Buffer.alloc(0);

  client.on('data', (chunk: Buffer) => {
    const at = performance.now();
    server.write(chunk);
    if (readIn) return readIn(chunk, at);
    if (decided) return;
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    decided = true;
    const target = /^GET (\/ws\?\S*) HTTP/.exec(head);
    if (!target) return;
    user = new URL(target[1]!, 'http://x').searchParams.get('userId') ?? '?';
    const socketUser = user;
    const control = (direction: 'in' | 'out') => (type: string, at: number) =>
      stamps.push({
        at,
        direction,
        user: socketUser,
        type,
        bytes: 0,
        other: undefined,
        peerId: undefined,
        role: undefined,
      });
    readIn = frameReader(
      (text, stampedAt) => stamps.push(stampOf(text, stampedAt, 'in', socketUser)),
      control('in'),
    );
    readOut = frameReader(
      (text, stampedAt) => stamps.push(stampOf(text, stampedAt, 'out', socketUser)),
      control('out'),
    );
    // Frames sent with the request head in the same chunk (never, from a browser; cheap to honour).
    const rest = Buffer.from(head.slice(end + 4), 'latin1');
    if (rest.length) readIn(rest, at);
  });
  server.on('data', (chunk: Buffer) => {
    const at = performance.now();
    client.write(chunk);
    if (!readOut) return;
    if (responseHead) {
      const seen = Buffer.concat([responseHead, chunk]);
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) {
        responseHead = seen;
        return;
      }
      responseHead = undefined;
      const rest = seen.subarray(end + 4);
      if (rest.length) readOut(rest, at);
      return;
    }
    readOut(chunk, at);
  });
  const close = () => {
    client.destroy();
    server.destroy();
  };
  client.on('error', close).on('close', close);
  server.on('error', close).on('close', close);
}

const { targetPort } = workerData as { targetPort: number };
const listener = createServer({ noDelay: true }, (socket) => proxy(socket, targetPort));
listener.listen(0, '127.0.0.1', () => {
  parentPort!.postMessage({ port: (listener.address() as { port: number }).port });
});
// `take`: hands over the frames stamped since the last take.
parentPort!.on('message', (message: string) => {
  if (message !== 'take') return;
  parentPort!.postMessage({ stamps });
  stamps = [];
});
