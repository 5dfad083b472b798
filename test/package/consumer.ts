/**
 * A user's project, as files: a Node server of their own (their Hono app, the chat mounted with
 * `app.route('/chat', chat.app)`, their `serve()`) that also drives the SDK from Node, and a
 * browser script using `aleatoria/client`. package.test.ts writes them into a fresh project where
 * the packed tarball is installed, type-checks and runs them. Kept as strings: in this repository
 * `aleatoria/*` would resolve to its own dist/ (a self-reference), not to an installed package.
 */

/** Their tsconfig: Node's and the DOM's types, full strictness, our declarations checked too. */
export const TSCONFIG = {
  compilerOptions: {
    target: 'es2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    lib: ['es2022', 'dom', 'dom.iterable'],
    types: ['node'],
    strict: true,
    skipLibCheck: false,
    rootDir: 'src',
    outDir: 'out',
  },
  include: ['src'],
};

/** Connects as `userId` and resolves once open; the same in Node (`ws`) and in a browser. */
const CONNECT = `
function connect(url: string, userId: string, WebSocketClass?: typeof WebSocket): Promise<AleatoriaClient> {
  const client = createClient({ url, userId, WebSocket: WebSocketClass });
  return new Promise((resolve) => client.onStatus((status) => status === 'open' && resolve(client)));
}

/** A room message comes back to its sender, and two available users are matched. */
async function converse(alice: AleatoriaClient, bob: AleatoriaClient) {
  const echo = new Promise<string>((resolve) =>
    alice.on('chat_message', (message) => resolve(message.payload.content)),
  );
  alice.sendRoomMessage('Lobby', 'hello');
  const roles = Promise.all(
    [alice, bob].map(
      (client) =>
        new Promise<string>((resolve) =>
          client.on('assign_role', ({ payload }) => resolve(payload.role + ':' + payload.peerId)),
        ),
    ),
  );
  bob.setAvailable(true);
  // A round trip on bob's connection: his availability is in before alice asks.
  await bob.getRoomMembers('Lobby');
  alice.setAvailable(true);
  alice.requestRandomPeer();
  const result = { echo: await echo, roles: await roles };
  alice.close();
  bob.close();
  return result;
}
`;

export const SERVER_TS = `import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { WebSocket as NodeWebSocket } from 'ws';
import { parseConfig } from 'aleatoria';
import { createClient, type AleatoriaClient } from 'aleatoria/client';
import { aleatoria } from 'aleatoria/node';
${CONNECT}
const chat = aleatoria({ env: { ...process.env, ALLOW_NO_ORIGIN: 'true', LOG_LEVEL: 'silent' } });
const app = new Hono();
app.get('/', (c) => c.html('<!doctype html><title>theirs</title><script type="module" src="/sdk.js"></script>'));
app.get('/sdk.js', (c) =>
  c.body(readFileSync(new URL('./sdk.js', import.meta.url), 'utf8'), 200, {
    'content-type': 'text/javascript',
  }),
);
app.route('/chat', chat.app);
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', websocket: chat.websocket });
await new Promise<void>((resolve) => server.once('listening', () => resolve()));
const { port } = server.address() as AddressInfo;

const url = 'ws://127.0.0.1:' + port + '/chat/ws';
const ws = NodeWebSocket as unknown as typeof WebSocket;
const [alice, bob] = await Promise.all([connect(url, 'alice', ws), connect(url, 'bob', ws)]);
const health = await (await fetch('http://127.0.0.1:' + port + '/chat/health')).json();
const conversation = await converse(alice, bob);
console.log(JSON.stringify({ port, health, ...conversation, defaultPort: parseConfig({}).port }));

process.on('SIGTERM', () => {
  server.close();
  void chat.shutdown().then(() => process.exit(0));
});
`;

export const BROWSER_TS = `import { createClient, type AleatoriaClient } from 'aleatoria/client';
${CONNECT}
declare global {
  interface Window {
    conversation: Promise<{ echo: string; roles: string[] }>;
  }
}

const url = new URL('chat/ws', location.href);
url.protocol = 'ws:';
window.conversation = Promise.all([connect(url.href, 'carol'), connect(url.href, 'dave')]).then(
  ([carol, dave]) => converse(carol, dave),
);
`;
