/**
 * The Node server mounted in someone else's Hono app, in this process: `app.route('/chat',
 * chat.app)` served by their own `serve()`, over real sockets on loopback. Everything of ours
 * answers under the prefix (`/chat/ws`, `/chat/health`, the page at `/chat/`), their routes stay
 * theirs, and nothing of ours answers outside it.
 */
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { aleatoria, type NodeChat } from '../../src/adapters/node.ts';

const ADMIN_TOKEN = 'an-operator-token-of-some-length';
let chat: NodeChat;
let server: ServerType;
let base: string;
beforeAll(async () => {
  chat = aleatoria({
    env: { LOG_LEVEL: 'silent', ALLOW_NO_ORIGIN: 'true', ADMIN_TOKEN: ADMIN_TOKEN },
  });
  const app = new Hono();
  app.get('/', (c) => c.text('their home page'));
  app.route('/chat', chat.app);
  server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', websocket: chat.websocket });
  await new Promise((resolve) => server.once('listening', resolve));
  base = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await chat.shutdown();
});

/** The next frame of `type` on `ws`. */
function next(ws: WebSocket, type: string): Promise<{ type: string; [key: string]: unknown }> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { type: string };
      if (frame.type !== type) return;
      ws.off('message', onMessage);
      resolve(frame);
    };
    ws.on('message', onMessage);
  });
}

async function connect(userId: string): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${base}/chat/ws?userId=${userId}&room=Lobby`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  return ws;
}

describe('the Node server under app.route("/chat", ...)', () => {
  it('answers /chat/health and /chat/stats, and leaves the host app its own routes', async () => {
    expect(await (await fetch(`http://${base}/chat/health`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`http://${base}/chat/stats`)).json()).toMatchObject({ online: 0 });
    expect(await (await fetch(`http://${base}/`)).text()).toBe('their home page');
    expect((await fetch(`http://${base}/health`)).status).toBe(404);
    expect((await fetch(`http://${base}/chat/nothing`)).status).toBe(404);
  });

  it('serves the page at /chat/ (from /chat, redirected), its script next to it', async () => {
    const bare = await fetch(`http://${base}/chat?server=x`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/chat/?server=x');
    const page = await fetch(`http://${base}/chat/`);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    // Its script under the mount, not the host app's /app.js.
    expect(await page.text()).toContain('src="/chat/app.js"');
    expect((await fetch(`http://${base}/chat/app.js`)).status).toBe(200);
  });

  it('upgrades /chat/ws: a room message comes back, and two available users are matched', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const echo = next(alice, 'chat_message');
    alice.send(JSON.stringify({ type: 'chat_message', room: 'Lobby', payload: { content: 'hi' } }));
    expect(await echo).toMatchObject({
      fromUser: 'alice',
      room: 'Lobby',
      payload: { content: 'hi' },
    });

    for (const ws of [alice, bob]) ws.send(JSON.stringify({ type: 'user_available_webrtc' }));
    const polite = next(bob, 'assign_role');
    const impolite = next(alice, 'assign_role');
    // A round trip on bob's socket first, so that his availability is in before alice asks.
    const rooms = next(bob, 'rooms_list');
    bob.send(JSON.stringify({ type: 'get_rooms' }));
    await rooms;
    alice.send(JSON.stringify({ type: 'request_random_peer' }));
    expect((await impolite).payload).toEqual({ role: 'impolite', peerId: 'bob' });
    expect((await polite).payload).toEqual({ role: 'polite', peerId: 'alice' });
    alice.close();
    bob.close();
  });

  it('serves the operator page at /chat/admin, whose script and figures resolve under the mount', async () => {
    const page = `http://${base}/chat/admin`;
    const html = await (await fetch(page)).text();
    const script = /<script type="module" src="([^"]+)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const scriptUrl = new URL(script!, page);
    expect(scriptUrl.pathname).toBe('/chat/admin/admin.js');
    expect((await fetch(scriptUrl)).status).toBe(200);
    // The page fetches its figures relative to itself too.
    const figures = new URL('admin/figures', page);
    expect((await fetch(figures)).status).toBe(401);
    const res = await fetch(figures, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toHaveProperty('connections');
  });
});
