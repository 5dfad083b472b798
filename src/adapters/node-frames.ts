/**
 * Sending a text message on a `ws` socket as one buffer. `ws` writes each frame as two, its header
 * and its payload (a cork, two writes, an uncork: Node's `writev` path), which costs about 1 us
 * more per frame than one write of both (bench/README.md): for the small frames of signaling, a
 * tenth of what sending one costs the server.
 *
 * This relies on how the server uses `ws`, checked by test/node/frames.test.ts: no
 * permessage-deflate and no Blob payloads, so ws's sender never holds a frame back in its queue,
 * and its own frames (pings, the close frame) and these reach the socket in the order they are
 * made; `bufferedAmount` still counts what waits, since it reads the socket's own buffer. A socket
 * without the stream `ws` keeps (another version, a mock) is sent to through `ws.send`.
 */
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** FIN and the text opcode: a whole message in one frame. */
const FIN_TEXT = 0x81;

/** Sends `text` as one unmasked text frame (a server's), written in one piece. */
export function sendText(ws: WebSocket, text: string): void {
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  if (socket === undefined || !socket.writable) {
    ws.send(text);
    return;
  }
  const length = Buffer.byteLength(text);
  const offset = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(offset + length);
  frame[0] = FIN_TEXT;
  if (offset === 2) frame[1] = length;
  else if (offset === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  frame.write(text, offset);
  socket.write(frame);
}
