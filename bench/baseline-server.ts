/**
 * The baseline for `npm run bench`: the protocol subset the benchmark exercises (DMs with the
 * sender copy, signaling relay), on raw `ws` with no framework, no validation beyond JSON.parse,
 * as lean as it can be written. Same start-up line as the real server, so the same launcher runs it.
 */
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.env.PORT ?? 8090);
const host = process.env.HOST ?? '127.0.0.1';
const byId = new Map<string, WebSocket>();
const wss = new WebSocketServer({ port, host, maxPayload: 65536, perMessageDeflate: false });

wss.on('connection', (ws, request) => {
  const userId = new URL(request.url ?? '/', 'http://x').searchParams.get('userId') ?? '';
  byId.set(userId, ws);
  ws.on('close', () => byId.delete(userId));
  ws.on('message', (data) => {
    let msg: { type?: string; toUser?: string; fromUser?: string; createTime?: string; incoming?: boolean };
    try {
      msg = JSON.parse(data.toString());
    } catch {
      return;
    }
    const to = msg.toUser === undefined ? undefined : byId.get(msg.toUser);
    if (!to) return;
    msg.fromUser = userId;
    msg.createTime = new Date().toISOString();
    if (msg.type === 'chat_message') {
      msg.incoming = true;
      to.send(JSON.stringify(msg));
      msg.incoming = false;
      ws.send(JSON.stringify(msg));
    } else {
      to.send(JSON.stringify(msg));
    }
  });
});
wss.on('listening', () => {
  const address = wss.address();
  console.log(`HTTP server started on :${typeof address === 'object' ? address.port : port}`);
});
process.on('SIGTERM', () => process.exit(0));
