/**
 * Deno-native test of the Deno adapter's programmatic API, in-process: `startDenoServer` serves
 * /health and the protocol over Deno's own WebSocket client, and `shutdown` closes sockets with 1012.
 */
import { startDenoServer } from '../../src/adapters/deno.ts';
import { parseConfig } from '../../src/core/config.ts';
import { createLogger } from '../../src/core/log.ts';

function assertEquals(actual: unknown, expected: unknown) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

Deno.test('startDenoServer serves /health and the protocol, and shutdown closes sockets with 1012', async () => {
  const config = parseConfig({ PORT: '0', HOST: '127.0.0.1', ALLOW_NO_ORIGIN: 'true', SHUTDOWN_TIMEOUT_MS: '2000' });
  const server = startDenoServer(config, createLogger('silent', () => {}));
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
  const reply = new Promise((resolve) => (ws.onmessage = (event) => resolve(messages.push(JSON.parse(event.data)))));
  ws.send(JSON.stringify({ type: 'get_rooms', messageId: 'm1' }));
  await reply;
  const [list] = messages as Array<{ type: string; payload: unknown; messageId: string }>;
  assertEquals([list!.type, list!.payload, list!.messageId], ['rooms_list', { rooms: ['deno-room'] }, 'm1']);

  await server.shutdown();
  assertEquals(await closed, 1012);
});
