/**
 * Load generator, run in its own process: P sender/receiver pairs, each sender keeping W messages
 * in flight to its receiver (a new one goes out when one arrives). Prints one JSON line:
 * delivered messages, wall time, latency percentiles.
 * Args: --url ws://127.0.0.1:PORT/ws --kind relay|chat --pairs P --window W --ms DURATION
 */
import { WebSocket } from 'ws';

const arg = (name: string, fallback: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1]! : fallback;
};
const url = arg('url', 'ws://127.0.0.1:8085/ws');
const kind = arg('kind', 'relay');
const pairs = Number(arg('pairs', '200'));
const window = Number(arg('window', '8'));
const durationMs = Number(arg('ms', '5000'));
const run = Math.random().toString(36).slice(2, 8);

function open(userId: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url}?userId=${userId}`, { headers: { origin: 'https://www.aleatoria.chat' }, perMessageDeflate: false });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

if (kind === 'idle') {
  // Hold N open sockets, spread over several loopback source addresses (each has ~28k ports).
  const count = Number(arg('sockets', '2000'));
  const held: WebSocket[] = [];
  const started = performance.now();
  for (let i = 0; i < count; i += 100) {
    const batch = Array.from({ length: Math.min(100, count - i) }, (_, j) => {
      const ws = new WebSocket(`${url}?userId=idle${run}${i + j}`, {
        headers: { origin: 'https://www.aleatoria.chat' },
        perMessageDeflate: false,
        localAddress: `127.0.0.${1 + ((i + j) % 4)}`,
      });
      return new Promise<WebSocket>((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    });
    held.push(...(await Promise.all(batch)));
  }
  const connectMs = performance.now() - started;
  console.log(JSON.stringify({ ready: true, sockets: held.length, connectMs }));
  // Hold until told to stop (stdin closes), so the runner can read the server's memory meanwhile.
  process.stdin.resume();
  process.stdin.once('end', () => process.exit(0));
  await new Promise(() => {});
}

const latencies: number[] = [];
let delivered = 0;
let measuring = false;
let stopped = false;

const sockets: WebSocket[] = [];
for (let i = 0; i < pairs; i++) {
  const [sender, receiver] = [await open(`s${run}${i}`), await open(`r${run}${i}`)];
  sockets.push(sender, receiver);
  const message = (seq: number) =>
    kind === 'chat'
      ? JSON.stringify({ type: 'chat_message', toUser: `r${run}${i}`, messageId: `${performance.now()}`, payload: { content: `hello ${seq}` } })
      : JSON.stringify({ type: 'webrtc_candidate', toUser: `r${run}${i}`, messageId: `${performance.now()}`, payload: { candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host', sdpMid: '0', sdpMLineIndex: 0 } } });
  let seq = 0;
  receiver.on('message', (data) => {
    const text = data.toString();
    const at = text.indexOf('"messageId":"');
    if (measuring && at >= 0) {
      delivered++;
      latencies.push(performance.now() - Number(text.slice(at + 13, text.indexOf('"', at + 13))));
    }
    if (!stopped) sender.send(message(seq++));
  });
  // The sender copy of a chat message is a delivery too (the server serializes and sends it).
  sender.on('message', () => {
    if (measuring) delivered++;
  });
  for (let w = 0; w < window; w++) sender.send(message(seq++));
}

// Warm up, then measure.
await new Promise((r) => setTimeout(r, Math.min(1000, durationMs / 4)));
measuring = true;
const started = performance.now();
await new Promise((r) => setTimeout(r, durationMs));
measuring = false;
const wallMs = performance.now() - started;
stopped = true;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
console.log(JSON.stringify({ delivered, wallMs, p50: pct(50), p99: pct(99) }));
for (const ws of sockets) ws.terminate();
process.exit(0);
