/**
 * Deno-native tests, in-process: the Deno adapter's programmatic API (`startDenoServer` serves
 * /health and the protocol over Deno's own WebSocket client, and `shutdown` closes sockets with
 * 1012), and the process runner both adapters share, with fake runtime primitives.
 */
import { startDenoServer } from '../../src/adapters/deno.ts';
import { runServer, type RunnableServer, type Runtime } from '../../src/adapters/run.ts';
import { parseConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/log.ts';

function assertEquals(actual: unknown, expected: unknown) {
  if (JSON.stringify(actual) !== JSON.stringify(expected))
    throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

Deno.test('startDenoServer serves /health and the protocol, and shutdown closes sockets with 1012', async () => {
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    ALLOW_NO_ORIGIN: 'true',
    SHUTDOWN_TIMEOUT_MS: '2000',
  });
  const server = startDenoServer(
    config,
    createLogger('silent', () => {}),
  );
  const base = `http://127.0.0.1:${server.port}`;

  const health = await fetch(`${base}/health`);
  assertEquals(await health.json(), { status: 'ok' });

  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?userId=deno-user&room=deno-room`);
  const messages: unknown[] = [];
  const closed = new Promise<number>((resolve) => (ws.onclose = (event) => resolve(event.code)));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const reply = new Promise(
    (resolve) => (ws.onmessage = (event) => resolve(messages.push(JSON.parse(event.data)))),
  );
  ws.send(JSON.stringify({ type: 'get_rooms', messageId: 'm1' }));
  await reply;
  const [list] = messages as Array<{ type: string; payload: unknown; messageId: string }>;
  assertEquals(
    [list!.type, list!.payload, list!.messageId],
    ['rooms_list', { rooms: ['deno-room'] }, 'm1'],
  );

  await server.shutdown();
  assertEquals(await closed, 1012);
});

Deno.test('the upgrade goes through admission (429 past MAX_CONNECTIONS_PER_IP) and caps frames with 1009', async () => {
  const config = parseConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    ALLOW_NO_ORIGIN: 'true',
    MAX_CONNECTIONS_PER_IP: '1',
    MAX_MESSAGE_BYTES: '1024',
    SHUTDOWN_TIMEOUT_MS: '1000',
  });
  const server = startDenoServer(
    config,
    createLogger('silent', () => {}),
  );
  const url = `ws://127.0.0.1:${server.port}/ws?room=cap`;
  const ws = new WebSocket(`${url}&userId=capped`);
  const closed = new Promise<number>((resolve) => (ws.onclose = (event) => resolve(event.code)));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });

  // A second socket from the same address: refused before the upgrade, by the bridge's admit().
  const refused = await fetch(`http://127.0.0.1:${server.port}/ws?userId=second`, {
    headers: {
      upgrade: 'websocket',
      connection: 'Upgrade',
      'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'sec-websocket-version': '13',
    },
  });
  assertEquals([refused.status, (await refused.text()).length > 0], [429, true]);

  ws.send('x'.repeat(2048));
  assertEquals(await closed, 1009);
  // The server's own close event follows the handshake's end: the socket leaves the bridge then.
  for (let i = 0; i < 100 && server.bridge.size > 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  assertEquals(server.bridge.size, 0);
  await server.shutdown();
});

/** A runtime whose primitives only record what the runner did with them. */
function fakeRuntime(env: Record<string, string>, start: Runtime['start']) {
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  const signals = new Map<string, () => void>();
  const runtime: Runtime = {
    name: 'fake',
    env,
    writeLine: (line) => out.push(line),
    errorLine: (line) => err.push(line),
    exit: (code) => exits.push(code) as never,
    onSignal: (signal, listener) => signals.set(signal, listener),
    start,
  };
  const events = () =>
    out.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line).event);
  return { runtime, out, err, exits, signals, events };
}

const fakeServer = (shutdown: () => Promise<void>): RunnableServer => ({
  port: 1234,
  bridge: { size: 0 },
  shutdown,
});

Deno.test('runServer: a bad configuration or a failed start is one line on stderr and exit 1', async () => {
  let started = 0;
  const bad = fakeRuntime({ PORT: 'x' }, () => {
    started++;
    return fakeServer(async () => {});
  });
  await runServer(bad.runtime);
  assertEquals([started, bad.exits, bad.out], [0, [1], []]);
  assertEquals(
    bad.err.length === 1 &&
      bad.err[0]!.startsWith('aleatoria: invalid configuration') &&
      bad.err[0]!.includes('PORT'),
    true,
  );

  const failing = fakeRuntime({ LOG_LEVEL: 'info' }, () =>
    Promise.reject(new Error('address in use')),
  );
  await runServer(failing.runtime);
  assertEquals([failing.err, failing.exits], [['aleatoria: failed to start: address in use'], [1]]);
});

Deno.test('runServer: prints the start-up line, and drains once on SIGTERM/SIGINT, then exits 0', async () => {
  let shutdowns = 0;
  let finish!: () => void;
  const run = fakeRuntime({ LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_MS: '5000' }, () =>
    fakeServer(() => {
      shutdowns++;
      return new Promise<void>((r) => (finish = r));
    }),
  );
  await runServer(run.runtime);
  assertEquals(run.out[0], 'HTTP server started on :1234');
  assertEquals(
    [run.events(), [...run.signals.keys()]],
    [['server_started'], ['SIGTERM', 'SIGINT']],
  );
  run.signals.get('SIGTERM')!();
  run.signals.get('SIGINT')!();
  assertEquals(
    [shutdowns, run.exits, run.events()],
    [1, [], ['server_started', 'shutdown_started']],
  );
  finish();
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(
    [run.exits, run.events()],
    [[0], ['server_started', 'shutdown_started', 'shutdown_complete']],
  );
});

Deno.test('runServer: exits 0 at SHUTDOWN_TIMEOUT_MS + 1 s when the drain hangs', async () => {
  const run = fakeRuntime({ SHUTDOWN_TIMEOUT_MS: '0' }, () =>
    fakeServer(() => new Promise<void>(() => {})),
  );
  await runServer(run.runtime);
  const signalled = Date.now();
  run.signals.get('SIGTERM')!();
  while (run.exits.length === 0 && Date.now() - signalled < 3000)
    await new Promise((r) => setTimeout(r, 50));
  assertEquals(run.exits, [0]);
  const elapsed = Date.now() - signalled;
  assertEquals(elapsed >= 950 && elapsed < 2500, true);
});
