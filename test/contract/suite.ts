/**
 * The black-box contract of `shared/spec/aleatoria-go-server.md` + DECISIONS.md, over real
 * sockets. Every runtime's test file calls {@link defineContractSuite} with its own launcher;
 * behaviours a runtime legitimately lacks are declared by capability flags and reported as such.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  TestClient,
  oneProcess,
  uidOn,
  rawUpgrade,
  uid,
  upgradeStatus,
  PROD_ORIGIN,
  type ContractTarget,
  type LaunchedServer,
  type Received,
} from './harness.ts';
import { WebSocket } from 'ws';
import { createHmac } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SERVER_ONLY_TYPES } from '../fixtures/server-only-types.ts';

const MAIN_ENV = {
  ALLOWED_ORIGINS: 'https://www.aleatoria.chat,https://*.example.com,http://localhost:3000',
  RATE_LIMIT_PER_SECOND: '5000',
  RATE_LIMIT_BURST: '5000',
  MAX_ROOMS_PER_CONNECTION: '4',
  MATCHES_PER_MINUTE: '100000',
  TAKEOVER_PROBE_MS: '1000',
  // Every test's clients meet in the Lobby: presence has its own server below.
  PRESENCE_ROOM_LIMIT: '0',
};

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Opens clients for one test and closes them all after it. */
function clientPool(server: () => LaunchedServer) {
  const open: TestClient[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((client) => client.close()));
  });
  return async (options: Parameters<typeof TestClient.open>[1] = {}) => {
    const client = await TestClient.open(server().baseUrl, options);
    open.push(client);
    return client;
  };
}

/** Empties the availability pool left by earlier tests, through the protocol itself. */
async function drainPool(baseUrl: string) {
  for (let i = 0; i < 100; i++) {
    const probe = await TestClient.open(baseUrl, { userId: uid('drain') });
    probe.send({ type: 'request_random_peer' });
    const reply = await probe.next(
      (m) => m.type === 'assign_role' || m.type === 'no_peer_available',
    );
    await probe.close();
    if (reply.type === 'no_peer_available') return;
  }
  throw new Error('availability pool never drained');
}

/** Sends `message` and waits until the server has processed it (same-socket ordering). */
async function settle(client: TestClient, message: unknown) {
  client.send(message);
  await client.roundTrip();
}

function expectNoInternals(message: Received) {
  const text = JSON.stringify(message);
  expect(text).not.toMatch(/\bat .+:\d+:\d+|\.ts\b|\/work\/|node_modules|Error:/);
}

/**
 * Reads `/metrics` once (of every process of a cluster: Prometheus scrapes each); the returned
 * function gives a sample's value, summed over the processes (0 when absent).
 */
async function readMetrics(server: LaunchedServer): Promise<(sample: string) => number> {
  const texts = await Promise.all(
    (server.nodes ?? [server]).map(async (node) => {
      const res = await fetch(`${node.baseUrl}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    }),
  );
  return (sample) => {
    const line = new RegExp(`^${sample.replace(/[{}"\\]/g, '\\$&')} (\\S+)$`, 'm');
    return texts.reduce((sum, text) => sum + Number(line.exec(text)?.[1] ?? 0), 0);
  };
}

export function defineContractSuite(target: ContractTarget) {
  /**
   * Runs `body` when the runtime has `capability`. Otherwise the platform does it: `instead` tests
   * the platform's own mechanism where the server can observe one, else the report names the
   * capability in an explicit skip, never silently.
   */
  const describeIf = (
    capability: keyof ContractTarget['capabilities'],
    title: string,
    body: () => void,
    instead?: () => void,
  ) => {
    if (target.capabilities[capability]) describe(title, body);
    else if (instead) describe(`${title}: the platform's way on ${target.name}`, instead);
    else
      describe(title, () =>
        it.skip(`not the server's to do on ${target.name} (capability ${capability}: false)`, () => {}),
      );
  };

  describe(`contract on ${target.name}`, () => {
    let server: LaunchedServer;
    beforeAll(async () => {
      server = await target.launch(MAIN_ENV);
    });
    afterAll(async () => {
      await server?.stop();
    });
    const connect = clientPool(() => server);

    describe('HTTP endpoints', () => {
      it('answers GET /health with 200 {"status":"ok"}', async () => {
        const res = await fetch(`${server.baseUrl}/health`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/application\/json/);
        expect(await res.json()).toEqual({ status: 'ok' });
      });

      it('serves the demo page at / with a strict Content-Security-Policy, and its script', async () => {
        const page = await fetch(`${server.baseUrl}/`);
        expect(page.status).toBe(200);
        expect(page.headers.get('content-type')).toMatch(/text\/html/);
        expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
        const html = await page.text();
        expect(html).toContain('<script type="module" src="/app.js"></script>');
        expect(html).not.toContain('<!-- styles -->');
        const script = await fetch(`${server.baseUrl}/app.js`);
        expect(script.status).toBe(200);
        expect(script.headers.get('content-type')).toMatch(/javascript/);
        expect((await script.text()).length).toBeGreaterThan(1000);
      });

      it('serves the ICE servers at /config.json and the protocol JSON Schema at /protocol.json', async () => {
        expect(await (await fetch(`${server.baseUrl}/config.json`)).json()).toEqual({
          iceServers: [],
        });
        const schema = await fetch(`${server.baseUrl}/protocol.json`);
        expect(schema.headers.get('content-type')).toMatch(/application\/schema\+json/);
        const body = (await schema.json()) as { definitions: Record<string, unknown> };
        expect(Object.keys(body.definitions).sort()).toEqual(['ClientMessage', 'ServerMessage']);
      });

      it('serves the AsyncAPI document at /asyncapi.json', async () => {
        const document = await fetch(`${server.baseUrl}/asyncapi.json`);
        expect(document.status).toBe(200);
        expect(document.headers.get('content-type')).toMatch(/application\/json/);
        const body = (await document.json()) as { asyncapi: string; channels: object };
        expect(body.asyncapi).toBe('3.0.0');
        expect(Object.keys(body.channels)).toEqual(['ws']);
      });

      it('exposes Prometheus metrics at /metrics that follow what clients do', async () => {
        const read = () => readMetrics(server);
        const before = await read();
        const a = await connect();
        a.send({
          type: 'webrtc_offer',
          toUser: uid('ghost'),
          payload: { type: 'offer', sdp: 'v=0' },
        });
        await a.nextOfType('error');
        const after = await read();
        expect(after('aleatoria_connections')).toBeGreaterThanOrEqual(1);
        expect(after('aleatoria_relays_to_unknown_total')).toBe(
          before('aleatoria_relays_to_unknown_total') + 1,
        );
        expect(after('aleatoria_messages_in_total{type="webrtc_offer"}')).toBe(
          before('aleatoria_messages_in_total{type="webrtc_offer"}') + 1,
        );
        expect(after('aleatoria_errors_total{code="user_not_found"}')).toBe(
          before('aleatoria_errors_total{code="user_not_found"}') + 1,
        );
      });

      it('lets a page on any origin read why /ws refused it (CORS on refusals)', async () => {
        const res = await fetch(`${server.baseUrl}/ws?userId=x`, {
          headers: { origin: 'https://evil.com' },
        });
        expect(res.status).toBe(403);
        expect(res.headers.get('access-control-allow-origin')).toBe('*');
      });

      it('answers a plain GET /ws (no upgrade) with 426', async () => {
        const res = await fetch(`${server.baseUrl}/ws?userId=plain`, {
          headers: { origin: PROD_ORIGIN },
        });
        expect(res.status).toBe(426);
      });
    });

    describe('upgrade checks before the socket exists', () => {
      it.each([
        ['missing', undefined],
        ['empty', ''],
        ['129 characters', 'x'.repeat(129)],
        ['a control character', 'bad\u0001id'],
        ['a newline', 'bad\nid'],
      ])('refuses a userId that is %s with 400', async (_label, userId) => {
        expect(await upgradeStatus(server.baseUrl, { query: { userId } })).toBe(400);
      });

      it('accepts a userId of exactly 128 characters', async () => {
        expect(
          await upgradeStatus(server.baseUrl, { userId: `${uid('max')}`.padEnd(128, 'x') }),
        ).toBe(101);
      });

      it('refuses a malformed room (65 characters, control character) with 400', async () => {
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), room: 'r'.repeat(65) })).toBe(
          400,
        );
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), room: 'a\u0007b' })).toBe(400);
      });

      it('refuses a token longer than 256 characters with 400', async () => {
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), token: 't'.repeat(257) })).toBe(
          400,
        );
      });

      it.each([
        ['the allowed origin', PROD_ORIGIN, 101],
        ['the allowed origin with its default port', 'https://www.aleatoria.chat:443', 101],
        ['the wrong scheme', 'http://www.aleatoria.chat', 403],
        ['an unknown origin', 'https://evil.com', 403],
        ['a subdomain that no entry names', 'https://sub.www.aleatoria.chat', 403],
        ['a non-default port', 'https://www.aleatoria.chat:8443', 403],
        ['a suffix look-alike', 'https://www.aleatoria.chat.evil.com', 403],
        ['upper-case host', 'https://WWW.Aleatoria.Chat', 101],
        ['a subdomain of a *. entry', 'https://a.example.com', 101],
        ['a deeper subdomain of a *. entry', 'https://a.b.example.com', 101],
        ['the bare domain of a *. entry', 'https://example.com', 403],
        ['an http origin with explicit port 3000', 'http://localhost:3000', 101],
        ['the same host on another port', 'http://localhost:3001', 403],
        ['"null" (sandboxed frame)', 'null', 403],
        ['garbage', 'not an origin', 403],
        ['an origin with a path', 'https://www.aleatoria.chat/app', 403],
        ['credentials in the origin', 'https://user@www.aleatoria.chat', 403],
        ['a non-http scheme', 'ftp://www.aleatoria.chat', 403],
      ])('Origin %s -> %s', async (_label, origin, status) => {
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), origin })).toBe(status);
      });

      it('refuses an upgrade without an Origin header with 403', async () => {
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), origin: null })).toBe(403);
      });

      it("accepts the server's own origin (Origin host equals Host)", async () => {
        const { baseUrl } = server;
        expect(await upgradeStatus(baseUrl, { userId: uid(), origin: baseUrl })).toBe(101);
      });
    });

    describe('rooms', () => {
      it('puts a connection without ?room= in Lobby', async () => {
        const a = await connect();
        a.send({ type: 'get_rooms', messageId: 'm1' });
        const list = await a.nextOfType('rooms_list');
        expect(list.payload).toEqual({ rooms: ['Lobby'] });
        expect(list.toUser).toBe(a.userId);
        expect(list.messageId).toBe('m1');
      });

      it('puts a connection with ?room= in that room only', async () => {
        const a = await connect({ room: 'my-chat-room' });
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['my-chat-room'] });
      });

      it('confirms join_room with room_joined and lists rooms in join order', async () => {
        const a = await connect();
        a.send({ type: 'join_room', room: 'alpha' });
        const joined = await a.nextOfType('room_joined');
        expect(joined.payload).toEqual({ room: 'alpha', action: 'joined' });
        expect(joined.toUser).toBe(a.userId);
        expect(joined.createTime).toMatch(ISO_MS);
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['Lobby', 'alpha'] });
      });

      it('answers a repeated join_room with room_joined again and no duplicate', async () => {
        const a = await connect({ room: 'beta' });
        a.send({ type: 'join_room', room: 'beta' });
        expect((await a.nextOfType('room_joined')).payload).toEqual({
          room: 'beta',
          action: 'joined',
        });
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['beta'] });
      });

      it('confirms leave_room with room_left, after which the room is not listed', async () => {
        const a = await connect();
        a.send({ type: 'join_room', room: 'gamma' });
        await a.nextOfType('room_joined');
        a.send({ type: 'leave_room', room: 'gamma' });
        expect((await a.nextOfType('room_left')).payload).toEqual({
          room: 'gamma',
          action: 'left',
        });
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['Lobby'] });
      });

      it('answers leave_room for a room not joined with room_left too, as the original did', async () => {
        const a = await connect();
        a.send({ type: 'leave_room', room: 'never-joined', messageId: 'lv-1' });
        expect(await a.nextOfType('room_left')).toMatchObject({
          fromUser: 'system',
          toUser: a.userId,
          room: 'never-joined',
          messageId: 'lv-1',
          payload: { room: 'never-joined', action: 'left' },
        });
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['Lobby'] });
        await a.expectNothing(100, (m) => m.type === 'error');
      });

      it('refuses joining past MAX_ROOMS_PER_CONNECTION with error too_many_rooms', async () => {
        const a = await connect();
        for (const room of ['r1', 'r2', 'r3']) {
          a.send({ type: 'join_room', room });
          await a.nextOfType('room_joined');
        }
        a.send({ type: 'join_room', room: 'r4' });
        expect((await a.nextOfType('error')).payload.code).toBe('too_many_rooms');
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({
          rooms: ['Lobby', 'r1', 'r2', 'r3'],
        });
      });
    });

    describe('room chat', () => {
      it('broadcasts to every member including the sender, with server-set fromUser and createTime', async () => {
        const room = uid('room');
        const [a, b, outsider] = [
          await connect({ room }),
          await connect({ room }),
          await connect(),
        ];
        a.send({
          type: 'chat_message',
          room,
          payload: { content: 'Hello, world!' },
          messageId: 'client-uuid-1',
          fromUser: 'someone-else',
          createTime: '1999-01-01T00:00:00Z',
        });
        for (const member of [a, b]) {
          const msg = await member.nextOfType('chat_message');
          expect(msg).toMatchObject({
            fromUser: a.userId,
            room,
            payload: { content: 'Hello, world!' },
            messageId: 'client-uuid-1',
          });
          expect(msg.createTime).toMatch(ISO_MS);
          expect(msg.createTime).not.toBe('1999-01-01T00:00:00Z');
          expect(Math.abs(Date.parse(msg.createTime) - Date.now())).toBeLessThan(60_000);
          expect(msg).not.toHaveProperty('incoming');
        }
        await outsider.expectNothing(150, (m) => m.type === 'chat_message');
      });

      it('refuses chat to a room the sender has not joined with error not_in_room, delivering nothing', async () => {
        const room = uid('room');
        const member = await connect({ room });
        const a = await connect();
        a.send({ type: 'chat_message', room, payload: { content: 'let me in' } });
        const error = await a.nextOfType('error');
        expect(error.payload.code).toBe('not_in_room');
        expect(error.payload.error).toBe('You are not in that room. Join the room first.');
        await member.expectNothing(150, (m) => m.type === 'chat_message');
      });

      it('stops delivering room chat to a member after leave_room', async () => {
        const room = uid('room');
        const [a, b] = [await connect({ room }), await connect({ room })];
        b.send({ type: 'join_room', room: 'elsewhere' });
        await b.nextOfType('room_joined');
        b.send({ type: 'leave_room', room });
        await b.nextOfType('room_left');
        a.send({ type: 'chat_message', room, payload: { content: 'anyone?' } });
        await a.nextOfType('chat_message');
        await b.expectNothing(150, (m) => m.type === 'chat_message');
      });

      it('keeps extra payload fields of a chat message', async () => {
        const room = uid('room');
        const a = await connect({ room });
        a.send({ type: 'chat_message', room, payload: { content: 'hi', lang: 'en' } });
        expect((await a.nextOfType('chat_message')).payload).toEqual({ content: 'hi', lang: 'en' });
      });
    });

    describe('direct messages', () => {
      it('delivers to the recipient with incoming:true and echoes to the sender with incoming:false', async () => {
        const [a, b] = [await connect(), await connect()];
        a.send({
          type: 'chat_message',
          toUser: b.userId,
          payload: { content: 'psst' },
          messageId: 'dm-1',
          fromUser: b.userId,
        });
        const inbound = await b.nextOfType('chat_message');
        expect(inbound).toMatchObject({
          fromUser: a.userId,
          toUser: b.userId,
          payload: { content: 'psst' },
          messageId: 'dm-1',
          incoming: true,
        });
        const echo = await a.nextOfType('chat_message');
        expect(echo).toMatchObject({
          fromUser: a.userId,
          toUser: b.userId,
          payload: { content: 'psst' },
          messageId: 'dm-1',
          incoming: false,
        });
        expect(inbound.createTime).toMatch(ISO_MS);
      });

      it('refuses a DM to a user who is not connected with error user_not_found', async () => {
        const a = await connect();
        a.send({ type: 'chat_message', toUser: uid('ghost'), payload: { content: 'hello?' } });
        const error = await a.nextOfType('error');
        expect(error).toMatchObject({
          fromUser: 'system',
          toUser: a.userId,
          payload: { code: 'user_not_found' },
        });
        await a.expectNothing(100, (m) => m.type === 'chat_message');
      });

      it('refuses a chat message with both room and toUser, or neither, with error_response', async () => {
        const [a, b] = [await connect(), await connect()];
        a.send({
          type: 'chat_message',
          room: 'Lobby',
          toUser: b.userId,
          payload: { content: 'x' },
        });
        expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_message');
        a.send({ type: 'chat_message', payload: { content: 'x' } });
        expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_message');
        await b.expectNothing(100, (m) => m.type === 'chat_message');
      });

      it('accepts content of 4096 characters (emoji count once) and refuses 4097', async () => {
        const [a, b] = [await connect(), await connect()];
        a.send({ type: 'chat_message', toUser: b.userId, payload: { content: '😀'.repeat(4096) } });
        expect((await b.nextOfType('chat_message')).payload.content).toBe('😀'.repeat(4096));
        a.send({ type: 'chat_message', toUser: b.userId, payload: { content: 'x'.repeat(4097) } });
        const refused = await a.nextOfType('error_response');
        expect(refused.payload.code).toBe('invalid_message');
        expect(refused.payload.details).toContain('payload.content');
        a.send({ type: 'chat_message', toUser: b.userId, payload: { content: '' } });
        expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_message');
      });
    });

    describe('matching and signaling', () => {
      beforeEach(async () => {
        await drainPool(server.baseUrl);
      });

      async function available(client: TestClient) {
        await settle(client, { type: 'user_available_webrtc' });
      }

      it('answers request_random_peer with no_peer_available when nobody is available', async () => {
        const a = await connect();
        a.send({ type: 'request_random_peer' });
        const reply = await a.nextOfType('no_peer_available');
        expect(reply.toUser).toBe(a.userId);
        expect(reply.payload).toEqual({
          message: 'No peer available at the moment. Please try again later.',
        });
      });

      it('matches with an available peer: requester impolite, partner polite, mutual peerIds', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(a);
        await available(b);
        a.send({ type: 'request_random_peer' });
        const roleA = await a.nextOfType('assign_role');
        const roleB = await b.nextOfType('assign_role');
        expect(roleA).toMatchObject({
          toUser: a.userId,
          payload: { role: 'impolite', peerId: b.userId },
        });
        expect(roleB).toMatchObject({
          toUser: b.userId,
          payload: { role: 'polite', peerId: a.userId },
        });
      });

      it('does not require the requester to have declared availability', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        a.send({ type: 'request_random_peer' });
        expect((await a.nextOfType('assign_role')).payload).toEqual({
          role: 'impolite',
          peerId: b.userId,
        });
      });

      it('takes both matched users out of the pool', async () => {
        const [a, b, c] = [await connect(), await connect(), await connect()];
        await available(a);
        await available(b);
        a.send({ type: 'request_random_peer' });
        await a.nextOfType('assign_role');
        c.send({ type: 'request_random_peer' });
        await c.nextOfType('no_peer_available');
      });

      it('never matches the requester with itself', async () => {
        const a = await connect();
        await available(a);
        a.send({ type: 'request_random_peer' });
        await a.nextOfType('no_peer_available');
      });

      it('skips currentPeerId and matches someone else (10 rounds)', async () => {
        for (let round = 0; round < 10; round++) {
          const [a, b, c] = [await connect(), await connect(), await connect()];
          await available(b);
          await available(c);
          a.send({ type: 'request_random_peer', payload: { currentPeerId: b.userId } });
          expect((await a.nextOfType('assign_role')).payload.peerId).toBe(c.userId);
          await b.expectNothing(20, (m) => m.type === 'assign_role');
          await Promise.all([a.close(), b.close(), c.close()]);
          await drainPool(server.baseUrl);
        }
      });

      it('answers no_peer_available when currentPeerId is the only one available', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        a.send({ type: 'request_random_peer', payload: { currentPeerId: b.userId } });
        await a.nextOfType('no_peer_available');
      });

      it('removes a user from the pool on user_unavailable_webrtc', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        await settle(b, { type: 'user_unavailable_webrtc' });
        a.send({ type: 'request_random_peer' });
        await a.nextOfType('no_peer_available');
      });

      it('removes a user from the pool when it disconnects', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        await b.close();
        // The close is processed asynchronously by the server: poll through the protocol.
        for (;;) {
          a.send({ type: 'request_random_peer' });
          const reply = await a.next(
            (m) => m.type === 'assign_role' || m.type === 'no_peer_available',
          );
          if (reply.type === 'no_peer_available') break;
          await new Promise((r) => setTimeout(r, 20));
        }
      });

      it('relays offer, answer and candidates with fromUser set and payloads intact', async () => {
        const [a, b] = [await connect(), await connect()];
        const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
        a.send({
          type: 'webrtc_offer',
          toUser: b.userId,
          payload: offer,
          fromUser: 'spoof',
          messageId: 'o1',
        });
        expect(await b.nextOfType('webrtc_offer')).toMatchObject({
          fromUser: a.userId,
          toUser: b.userId,
          payload: offer,
          messageId: 'o1',
        });
        const answer = { type: 'answer', sdp: 'v=0\r\n' };
        b.send({ type: 'webrtc_answer', toUser: a.userId, payload: answer });
        expect(await a.nextOfType('webrtc_answer')).toMatchObject({
          fromUser: b.userId,
          payload: answer,
        });
        const init = {
          candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host',
          sdpMid: '0',
          sdpMLineIndex: 0,
          usernameFragment: 'abcd',
        };
        // Nested init, bare string, the flat init that `payload: e.candidate` gives, and the ends of
        // gathering: a null candidate, an empty one, and `payload: null` itself.
        for (const payload of [
          { candidate: init, sdpMid: '0', sdpMLineIndex: 0 },
          { candidate: init.candidate, sdpMid: '0', sdpMLineIndex: 0 },
          init,
          { candidate: null },
          { candidate: '', sdpMid: '0', sdpMLineIndex: 0 },
          null,
        ]) {
          a.send({ type: 'webrtc_candidate', toUser: b.userId, payload });
          const relayed = await b.nextOfType('webrtc_candidate');
          expect(relayed.fromUser).toBe(a.userId);
          expect(relayed.payload).toEqual(payload);
          expect(relayed.createTime).toMatch(ISO_MS);
        }
      });

      it('refuses signaling to a user who is not connected with error user_not_found', async () => {
        const a = await connect();
        for (const type of ['webrtc_offer', 'webrtc_answer', 'webrtc_candidate', 'hangup']) {
          const payload =
            type === 'webrtc_candidate'
              ? { candidate: null }
              : type === 'hangup'
                ? {}
                : { type: type.slice(7), sdp: 'v=0' };
          a.send({ type, toUser: uid('ghost'), payload });
          expect((await a.nextOfType('error')).payload.code).toBe('user_not_found');
        }
      });

      it('refuses signaling without toUser, or with a malformed payload, with error_response', async () => {
        const [a, b] = [await connect(), await connect()];
        a.send({ type: 'webrtc_offer', payload: { type: 'offer', sdp: 'v=0' } });
        expect((await a.nextOfType('error_response')).payload.details).toContain('toUser');
        a.send({ type: 'webrtc_offer', toUser: b.userId, payload: { type: 'offer', sdp: 42 } });
        expect((await a.nextOfType('error_response')).payload.details).toContain('payload.sdp');
        a.send({
          type: 'webrtc_candidate',
          toUser: b.userId,
          payload: { candidate: null, sdpMLineIndex: -1 },
        });
        expect((await a.nextOfType('error_response')).payload.details).toContain(
          'payload.sdpMLineIndex',
        );
        await b.expectNothing(100);
      });

      it('relays a hangup whose payload is any JSON up to 1 KiB verbatim (string, null, object)', async () => {
        const [a, b] = [await connect(), await connect()];
        for (const payload of ['bye', null, { reason: 'next', extra: [1] }]) {
          a.send({ type: 'hangup', toUser: b.userId, payload });
          expect((await b.nextOfType('hangup')).payload).toEqual(payload);
        }
        a.send({ type: 'hangup', toUser: b.userId, payload: 'x'.repeat(2000) });
        expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_message');
        await b.expectNothing(100);
      });

      it.each(SERVER_ONLY_TYPES)(
        'answers a client-sent %s (a server-only type) with error_response unknown_type and never relays it',
        async (type) => {
          const [a, b] = [await connect(), await connect()];
          a.send({
            type,
            toUser: b.userId,
            fromUser: 'system',
            room: 'Lobby',
            payload: { role: 'polite', peerId: a.userId },
          });
          expect((await a.nextOfType('error_response')).payload.code).toBe('unknown_type');
          await b.expectNothing(100);
        },
      );

      it('relays hangup to the partner, after which neither is told when the other leaves', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        a.send({ type: 'request_random_peer' });
        await a.nextOfType('assign_role');
        await b.nextOfType('assign_role');
        a.send({ type: 'hangup', toUser: b.userId, payload: { reason: 'next' } });
        expect(await b.nextOfType('hangup')).toMatchObject({
          fromUser: a.userId,
          toUser: b.userId,
          payload: { reason: 'next' },
        });
        await a.close();
        await b.expectNothing(200, (m) => m.type === 'hangup');
      });

      it('sends the partner hangup {reason:"peer_disconnected"} when a matched peer drops', async () => {
        const [a, b] = [await connect(), await connect()];
        await available(b);
        a.send({ type: 'request_random_peer' });
        await a.nextOfType('assign_role');
        await b.nextOfType('assign_role');
        a.ws.terminate();
        const hangup = await b.nextOfType('hangup');
        expect(hangup).toMatchObject({
          fromUser: a.userId,
          toUser: b.userId,
          payload: { reason: 'peer_disconnected' },
        });
      });

      it('tells the old partner "peer_left" when a user is matched again without hanging up', async () => {
        const [a, b, c] = [await connect(), await connect(), await connect()];
        await available(b);
        a.send({ type: 'request_random_peer' });
        await b.nextOfType('assign_role');
        await available(c);
        a.send({ type: 'request_random_peer', payload: { currentPeerId: b.userId } });
        expect((await a.nextOfType('assign_role', 3000)).payload.peerId).toBe(b.userId);
        expect((await a.nextOfType('assign_role')).payload.peerId).toBe(c.userId);
        expect(await b.nextOfType('hangup')).toMatchObject({
          fromUser: a.userId,
          payload: { reason: 'peer_left' },
        });
      });
    });

    describe('malformed and hostile input', () => {
      it('answers invalid JSON with error_response invalid_json and keeps the socket open', async () => {
        const a = await connect();
        a.sendText('{"type": "chat_message", ');
        const error = await a.nextOfType('error_response');
        expect(error.toUser).toBe(a.userId);
        expect(error.messageId).toMatch(/^err-./);
        expect(error.payload).toMatchObject({
          error: 'Invalid message structure',
          code: 'invalid_json',
        });
        expect(typeof error.payload.details).toBe('string');
        expectNoInternals(error);
        await a.roundTrip();
      });

      it('gives each error_response its own err- messageId', async () => {
        const a = await connect();
        a.sendText('nope');
        a.sendText('nope');
        const [first, second] = [
          await a.nextOfType('error_response'),
          await a.nextOfType('error_response'),
        ];
        expect(first.messageId).not.toBe(second.messageId);
      });

      it('answers an unknown type with error_response unknown_type', async () => {
        const a = await connect();
        a.send({ type: 'launch_missiles', payload: {} });
        const error = await a.nextOfType('error_response');
        expect(error.payload.code).toBe('unknown_type');
        expectNoInternals(error);
      });

      it.each([
        ['a JSON array', '[1,2,3]'],
        ['a JSON string', '"chat_message"'],
        ['null', 'null'],
        ['no type', '{"room":"Lobby"}'],
        ['a numeric type', '{"type":7}'],
        ['a chat message without payload', '{"type":"chat_message","room":"Lobby"}'],
        ['a payload of the wrong type', '{"type":"chat_message","room":"Lobby","payload":"hi"}'],
        ['join_room without room', '{"type":"join_room"}'],
        ['a room of 65 characters', `{"type":"join_room","room":"${'r'.repeat(65)}"}`],
        ['a messageId that is a number', '{"type":"get_rooms","messageId":5}'],
      ])('answers %s with error_response invalid_message', async (_label, text) => {
        const a = await connect();
        a.sendText(text);
        const error = await a.nextOfType('error_response');
        expect(error.payload.code).toBe('invalid_message');
        expect(error.payload.details.length).toBeGreaterThan(0);
        expectNoInternals(error);
        await a.roundTrip();
      });

      it('never echoes the offending value in details', async () => {
        const a = await connect();
        a.send({
          type: 'webrtc_offer',
          toUser: 'x',
          payload: { type: 'SECRET-VALUE', sdp: 'v=0' },
        });
        const error = await a.nextOfType('error_response');
        expect(error.payload.details).toContain('payload.type');
        expect(JSON.stringify(error)).not.toContain('SECRET-VALUE');
      });

      it('answers JSON nested 50,000 deep with error_response and stays up for everyone', async () => {
        const [a, bystander] = [await connect(), await connect()];
        a.sendText(
          `{"type":"hangup","toUser":"${bystander.userId}","payload":{"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`,
        );
        expect((await a.nextOfType('error_response')).payload.code).toBe('invalid_json');
        await bystander.roundTrip();
        await a.roundTrip();
      });

      it('does not let __proto__ or constructor keys change anything', async () => {
        const [a, b] = [await connect(), await connect()];
        a.sendText(
          `{"type":"chat_message","toUser":"${b.userId}","payload":{"content":"hi","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}},"__proto__":{"incoming":true}}`,
        );
        const msg = await b.nextOfType('chat_message');
        expect(msg.payload).toEqual({ content: 'hi' });
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).payload).toEqual({ rooms: ['Lobby'] });
      });

      it('answers a binary frame with error_response binary_not_supported', async () => {
        const a = await connect();
        a.ws.send(Buffer.from([1, 2, 3]), { binary: true });
        expect((await a.nextOfType('error_response')).payload.code).toBe('binary_not_supported');
        await a.roundTrip();
      });

      it('closes a socket that sends a frame over MAX_MESSAGE_BYTES with 1009, leaving others untouched', async () => {
        const [a, bystander, peer] = [await connect(), await connect(), await connect()];
        const tooBig = 'aleatoria_closes_total{reason="message_too_big"}';
        const before = (await readMetrics(server))(tooBig);
        a.send({
          type: 'chat_message',
          room: 'Lobby',
          payload: { content: 'x'.repeat(70 * 1024) },
        });
        expect((await a.closed).code).toBe(1009);
        bystander.send({
          type: 'chat_message',
          toUser: peer.userId,
          payload: { content: 'still here' },
        });
        expect((await peer.nextOfType('chat_message')).payload.content).toBe('still here');
        // Counted once, however the runtime learned of it (ws's own cap, or the adapter's check).
        let after = before;
        for (let i = 0; i < 50 && after === before; i++) {
          await new Promise((r) => setTimeout(r, 20));
          after = (await readMetrics(server))(tooBig);
        }
        await bystander.roundTrip();
        expect((await readMetrics(server))(tooBig)).toBe(before + 1);
      });

      it('accepts a frame just under MAX_MESSAGE_BYTES', async () => {
        const [a, b] = [await connect(), await connect()];
        const sdp = 'a'.repeat(60_000);
        a.send({ type: 'webrtc_offer', toUser: b.userId, payload: { type: 'offer', sdp } });
        expect((await b.nextOfType('webrtc_offer')).payload.sdp).toBe(sdp);
      });
    });

    describe('identity', () => {
      it('refuses a second connection for a live userId (neither has a token) with error user_id_taken and close 4009', async () => {
        const first = await connect();
        const second = await connect({ userId: first.userId });
        const error = await second.nextOfType('error');
        expect(error.payload.code).toBe('user_id_taken');
        expect((await second.closed).code).toBe(4009);
        await first.roundTrip();
        await first.expectNothing(100, (m) => m.type === 'error');
      });

      it.each([
        ['a different token', 'secret-1', 'secret-2'],
        ['no token', 'secret-1', undefined],
        ['a token the first connection never set', undefined, 'secret-2'],
      ])(
        'refuses a second connection that presents %s',
        async (_label, firstToken, secondToken) => {
          const first = await connect({ token: firstToken });
          const second = await connect({ userId: first.userId, token: secondToken });
          expect((await second.nextOfType('error')).payload.code).toBe('user_id_taken');
          expect((await second.closed).code).toBe(4009);
          await first.roundTrip();
        },
      );

      it('lets the same token take over: old socket gets error replaced and close 4000, rooms carry over', async () => {
        const first = await connect({ token: 'tok-123' });
        first.send({ type: 'join_room', room: 'kept' });
        await first.nextOfType('room_joined');
        const second = await connect({ userId: first.userId, token: 'tok-123' });
        const error = await first.nextOfType('error');
        expect(error.payload.code).toBe('replaced');
        expect((await first.closed).code).toBe(4000);
        second.send({ type: 'get_rooms' });
        expect((await second.nextOfType('rooms_list')).payload.rooms).toEqual(['Lobby', 'kept']);
        const friend = await connect();
        friend.send({
          type: 'chat_message',
          toUser: first.userId,
          payload: { content: 'to the new socket' },
        });
        expect((await second.nextOfType('chat_message')).payload.content).toBe('to the new socket');
      });

      it('frees the userId once its connection closed', async () => {
        const first = await connect();
        await first.close();
        for (let i = 0; ; i++) {
          const again = await connect({ userId: first.userId });
          const outcome = await Promise.race([
            again.closed.then(() => 'refused'),
            again.roundTrip().then(() => 'served'),
          ]);
          if (outcome === 'served') break;
          expect(i).toBeLessThan(50);
          await new Promise((r) => setTimeout(r, 20));
        }
      });
    });
  });

  describe(`contract on ${target.name}: configuration variants`, () => {
    describe('ALLOWED_ORIGINS=* and ALLOW_NO_ORIGIN=true', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ ALLOWED_ORIGINS: '*', ALLOW_NO_ORIGIN: 'true' });
      });
      afterAll(() => server?.stop());

      it('accepts any origin and none', async () => {
        expect(
          await upgradeStatus(server.baseUrl, { userId: uid(), origin: 'https://anything.test' }),
        ).toBe(101);
        expect(await upgradeStatus(server.baseUrl, { userId: uid(), origin: null })).toBe(101);
      });
    });

    describe('rate limit', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({
          RATE_LIMIT_PER_SECOND: '20',
          RATE_LIMIT_BURST: '10',
          RATE_LIMIT_CLOSE_AFTER_MS: '1000',
        });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);

      it('drops messages past the burst with error rate_limited, then closes sustained abuse with 1008', async () => {
        const [flooder, bystander] = [await connect(), await connect()];
        for (let i = 0; i < 40; i++) flooder.send({ type: 'get_rooms' });
        expect((await flooder.nextOfType('error')).payload.code).toBe('rate_limited');
        await new Promise((r) => setTimeout(r, 100));
        const served = flooder.queue.filter((m) => m.type === 'rooms_list').length;
        expect(served).toBeGreaterThanOrEqual(10);
        expect(served).toBeLessThan(40);
        await bystander.roundTrip();
        const timer = setInterval(() => {
          if (flooder.ws.readyState === WebSocket.OPEN)
            for (let i = 0; i < 20; i++) flooder.send({ type: 'get_rooms' });
        }, 20);
        try {
          const { code } = await flooder.closed;
          if (target.capabilities.closeHandshakeUnderFlood) expect(code).toBe(1008);
          else expect([1008, 1006]).toContain(code);
        } finally {
          clearInterval(timer);
        }
        await bystander.roundTrip();
      });
    });

    describe('takeover of a silent session without a token (TAKEOVER_PROBE_MS)', () => {
      const PROBE_MS = 1000;
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ TAKEOVER_PROBE_MS: String(PROBE_MS) });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);

      /** `old` (answering pings or not) matched with a partner, both also in room "t". */
      async function oldInACall(autoPong: boolean) {
        const old = await connect({ autoPong, room: 't' });
        const partner = await connect({ room: 't' });
        await settle(partner, { type: 'user_available_webrtc' });
        old.send({ type: 'request_random_peer' });
        expect((await old.nextOfType('assign_role')).payload.peerId).toBe(partner.userId);
        await partner.nextOfType('assign_role');
        return { old, partner };
      }

      /** Opens a tokenless newcomer for `userId`; resolves with how it ended up and when. */
      async function newcomer(userId: string) {
        const started = Date.now();
        const client = await connect({ userId });
        const outcome = await Promise.race([
          client.closed.then(({ code }) => code),
          client.roundTrip().then(() => 'served' as const),
        ]);
        return { client, outcome, elapsedMs: Date.now() - started };
      }

      it('leaves a live session alone: a newcomer without the token gets user_id_taken and 4009', async () => {
        const { old, partner } = await oldInACall(true);
        const { client, outcome } = await newcomer(old.userId);
        expect(outcome).toBe(4009);
        expect(client.queue.find((m) => m.type === 'error')?.payload).toMatchObject({
          code: 'user_id_taken',
        });
        await old.roundTrip();
        partner.send({
          type: 'chat_message',
          toUser: old.userId,
          payload: { content: 'still there?' },
        });
        expect((await old.nextOfType('chat_message')).payload.content).toBe('still there?');
        await partner.expectNothing(100, (m) => m.type === 'hangup');
      });

      if (target.capabilities.serverPing) {
        it('replaces a socket that stops answering pings within TAKEOVER_PROBE_MS + 1 s, as a fresh session, and hangs up its partner', async () => {
          const { old, partner } = await oldInACall(false);
          const { client, outcome, elapsedMs } = await newcomer(old.userId);
          expect(outcome).toBe('served');
          expect(elapsedMs).toBeLessThan(PROBE_MS + 1000);
          expect((await old.nextOfType('error')).payload.code).toBe('replaced');
          expect((await old.closed).code).toBe(4000);
          expect(await partner.nextOfType('hangup')).toMatchObject({
            fromUser: old.userId,
            payload: { reason: 'peer_disconnected' },
          });
          // Fresh: the default room only, no partner, not available.
          client.send({ type: 'get_rooms' });
          expect((await client.nextOfType('rooms_list')).payload.rooms).toEqual(['Lobby']);
          partner.send({ type: 'request_random_peer' });
          await partner.nextOfType('no_peer_available');
          partner.send({
            type: 'chat_message',
            toUser: old.userId,
            payload: { content: 'who is this?' },
          });
          expect((await client.nextOfType('chat_message')).payload.content).toBe('who is this?');
        });

        it('lets exactly one of three racing newcomers replace a silent socket; the others get 4009', async () => {
          const { old } = await oldInACall(false);
          const results = await Promise.all([
            newcomer(old.userId),
            newcomer(old.userId),
            newcomer(old.userId),
          ]);
          const outcomes = results.map((r) => r.outcome).sort();
          expect(outcomes).toEqual([4009, 4009, 'served']);
          expect((await old.closed).code).toBe(4000);
        });
      } else {
        it('cannot ping here, so a silent socket that the platform keeps open is not replaced: the newcomer gets 4009 after the probe', async () => {
          const { old, partner } = await oldInACall(false);
          const { outcome, elapsedMs } = await newcomer(old.userId);
          expect(outcome).toBe(4009);
          expect(elapsedMs).toBeGreaterThanOrEqual(PROBE_MS - 100);
          await partner.expectNothing(100, (m) => m.type === 'hangup');
        });

        it('gives the userId to the newcomer when the old socket closes during the probe', async () => {
          const { old, partner } = await oldInACall(false);
          const pending = newcomer(old.userId);
          await new Promise((r) => setTimeout(r, PROBE_MS / 4));
          old.ws.terminate();
          const { outcome, elapsedMs } = await pending;
          expect(outcome).toBe('served');
          expect(elapsedMs).toBeLessThan(PROBE_MS + 1000);
          expect(await partner.nextOfType('hangup')).toMatchObject({
            fromUser: old.userId,
            payload: { reason: 'peer_disconnected' },
          });
        });
      }
    });

    describe('a call outliving a dropped socket (CALL_RESUME_MS)', () => {
      const WINDOW_MS = 1500;
      let server: LaunchedServer;
      beforeAll(async () => {
        // No room presence: every user_status here is about a partner.
        server = await target.launch({
          CALL_RESUME_MS: String(WINDOW_MS),
          PRESENCE_ROOM_LIMIT: '0',
        });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);

      /** A caller holding `token` (or none) matched with a partner. */
      async function inACall(token: string | undefined) {
        const caller = await connect(token === undefined ? {} : { token });
        const partner = await connect();
        await settle(partner, { type: 'user_available_webrtc' });
        caller.send({ type: 'request_random_peer' });
        expect((await caller.nextOfType('assign_role')).payload.peerId).toBe(partner.userId);
        await partner.nextOfType('assign_role');
        return { caller, partner };
      }

      const status = (m: Received) => m.type === 'user_status';

      it('keeps the pair while a caller whose socket dropped comes back with its token: reconnecting, online, relays again', async () => {
        const token = `tok-${uid('t')}`;
        const { caller, partner } = await inACall(token);
        caller.ws.terminate();
        expect(await partner.next(status)).toMatchObject({
          fromUser: 'system',
          toUser: partner.userId,
          payload: { userId: caller.userId, status: 'reconnecting' },
        });
        const back = await connect({ userId: caller.userId, token });
        expect(await partner.next(status)).toMatchObject({
          payload: { userId: caller.userId, status: 'online' },
        });
        partner.send({
          type: 'webrtc_offer',
          toUser: caller.userId,
          payload: { type: 'offer', sdp: 'v=0 again' },
        });
        expect((await back.nextOfType('webrtc_offer')).payload).toEqual({
          type: 'offer',
          sdp: 'v=0 again',
        });
        back.send({ type: 'hangup', toUser: partner.userId, payload: { reason: 'done' } });
        expect((await partner.nextOfType('hangup')).payload).toEqual({ reason: 'done' });
        // No hangup of the server's own came before the caller's: the pair was never ended.
        expect(partner.queue.some((m) => m.type === 'hangup')).toBe(false);
      });

      it('hangs up the partner with peer_disconnected when the caller is not back within the window', async () => {
        const { caller, partner } = await inACall(`tok-${uid('t')}`);
        const dropped = Date.now();
        caller.ws.terminate();
        await partner.next(status);
        expect(await partner.nextOfType('hangup', WINDOW_MS + 3000)).toMatchObject({
          fromUser: caller.userId,
          payload: { reason: 'peer_disconnected' },
        });
        expect(Date.now() - dropped).toBeGreaterThanOrEqual(WINDOW_MS - 100);
        // The userId is free again, to anyone.
        const fresh = await connect({ userId: caller.userId });
        await fresh.roundTrip();
      });

      it('hangs up at once after a clean close, even with a token', async () => {
        const { caller, partner } = await inACall(`tok-${uid('t')}`);
        const closed = Date.now();
        await caller.close();
        expect(await partner.nextOfType('hangup', 1000)).toMatchObject({
          payload: { reason: 'peer_disconnected' },
        });
        expect(Date.now() - closed).toBeLessThan(1000);
        expect(partner.queue.some(status)).toBe(false);
      });

      it('hangs up at once when the dropped caller holds no token', async () => {
        const { caller, partner } = await inACall(undefined);
        caller.ws.terminate();
        expect(await partner.nextOfType('hangup', 1000)).toMatchObject({
          payload: { reason: 'peer_disconnected' },
        });
        expect(partner.queue.some(status)).toBe(false);
      });
    });

    describe('presence (PRESENCE_ROOM_LIMIT=3, PRESENCE_LIST_LIMIT=2) and GET /stats', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ PRESENCE_ROOM_LIMIT: '3', PRESENCE_LIST_LIMIT: '2' });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);
      const statusOf = (client: TestClient, userId: string, status: 'online' | 'offline') =>
        client.next(
          (m) =>
            m.type === 'user_status' && m.payload.userId === userId && m.payload.status === status,
        );

      it('tells the members of a small room who joins and who leaves, and stops above the limit', async () => {
        const room = uid('p');
        const a = await connect({ room });
        const b = await connect({ room });
        expect(await statusOf(a, b.userId, 'online')).toMatchObject({ fromUser: 'system', room });
        const c = await connect({ room });
        await statusOf(b, c.userId, 'online');
        await c.close();
        await statusOf(a, c.userId, 'offline');
        // Four members: above the limit, nobody is told.
        const d = await connect({ room });
        await statusOf(a, d.userId, 'online');
        const e = await connect({ room });
        await a.expectNothing(
          200,
          (m) => m.type === 'user_status' && m.payload.userId === e.userId,
        );
        await e.expectNothing(0, (m) => m.type === 'user_status');
      });

      it('lists at most PRESENCE_LIST_LIMIT members with the exact count, to members only', async () => {
        const room = uid('m');
        const [a] = [await connect({ room }), await connect({ room }), await connect({ room })];
        a!.send({ type: 'get_room_members', room, messageId: 'gm-1' });
        const reply = await a!.nextOfType('room_members');
        expect(reply).toMatchObject({
          toUser: a!.userId,
          room,
          messageId: 'gm-1',
          payload: { room, count: 3 },
        });
        expect(reply.payload.members).toHaveLength(2);
        const outsider = await connect();
        outsider.send({ type: 'get_room_members', room });
        expect((await outsider.nextOfType('error')).payload.code).toBe('not_in_room');
      });

      it('counts who is online in GET /stats', async () => {
        const read = async () =>
          (await (await fetch(`${server.baseUrl}/stats`)).json()) as Record<string, number>;
        /**
         * The figures once they stop moving: a cluster's are read from Redis, where the previous
         * test's users may still be leaving (a node writes a departure after the socket closed).
         */
        const settled = async () => {
          let last = JSON.stringify(await read());
          for (let i = 0; i < 40; i++) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            const now = JSON.stringify(await read());
            if (now === last) return JSON.parse(now) as Record<string, number>;
            last = now;
          }
          throw new Error(`GET /stats never settled: ${last}`);
        };
        const before = await settled();
        const [a] = [await connect(), await connect()];
        await settle(a!, { type: 'user_available_webrtc' });
        const after = await settled();
        expect(after.online! - before.online!).toBe(2);
        expect(after.available! - before.available!).toBe(1);
        expect(Object.keys(after).sort()).toEqual(['available', 'online', 'rooms']);
      });
    });

    describe('TURN credentials and the matching cap', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({
          TURN_SECRET: 'contract-secret',
          TURN_URLS: 'turn:turn.example.test:3478,turns:turn.example.test:5349',
          TURN_TTL: '600',
          STUN_URLS: 'stun:stun.example.test:3478',
          MATCHES_PER_MINUTE: '3',
        });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);

      it('answers get_ice_servers with STUN and a TURN credential that verifies with the HMAC and expires after TURN_TTL', async () => {
        const a = await connect();
        a.send({ type: 'get_ice_servers', messageId: 'ice-1' });
        const reply = await a.nextOfType('ice_servers');
        expect(reply).toMatchObject({
          toUser: a.userId,
          messageId: 'ice-1',
          payload: { ttl: 600 },
        });
        const [stun, turn] = reply.payload.iceServers;
        expect(stun).toEqual({ urls: ['stun:stun.example.test:3478'] });
        expect(turn!.urls).toEqual(['turn:turn.example.test:3478', 'turns:turn.example.test:5349']);
        const [expiry, user] = turn!.username!.split(':');
        expect(user).toBe(a.userId);
        expect(Math.abs(Number(expiry) - (Date.now() / 1000 + 600))).toBeLessThan(30);
        expect(turn!.credential).toBe(
          createHmac('sha1', 'contract-secret').update(turn!.username!).digest('base64'),
        );
      });

      it('never refuses a client that re-asks until someone arrives: 40 request_random_peer at 4/s, 40 no_peer_available', async () => {
        const a = await connect();
        for (let i = 0; i < 40; i++) {
          a.send({ type: 'request_random_peer' });
          expect(
            (await a.next((m) => m.type === 'no_peer_available' || m.type === 'error')).type,
          ).toBe('no_peer_available');
          await new Promise((r) => setTimeout(r, 250));
        }
      }, 30_000);

      it('refuses request_random_peer past MATCHES_PER_MINUTE matches made with error rate_limited', async () => {
        const a = await connect();
        for (let i = 0; i < 3; i++) {
          const partner = await connect();
          await settle(partner, { type: 'user_available_webrtc' });
          a.send({ type: 'request_random_peer' });
          expect((await a.nextOfType('assign_role')).payload.peerId).toBe(partner.userId);
        }
        const waiting = await connect();
        await settle(waiting, { type: 'user_available_webrtc' });
        a.send({ type: 'request_random_peer' });
        expect((await a.nextOfType('error')).payload.code).toBe('rate_limited');
        // Refused before drawing: the one waiting is still there for someone else.
        const other = await connect();
        other.send({ type: 'request_random_peer' });
        expect((await other.nextOfType('assign_role')).payload.peerId).toBe(waiting.userId);
      });
    });

    describe('token auth (AUTH_JWT_SECRET)', () => {
      const SECRET = 'contract-suite-hs256-secret-of-32-bytes!';
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ AUTH_JWT_SECRET: SECRET });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);
      const now = () => Math.floor(Date.now() / 1000);
      const jwt = (sub: string, claims: { exp?: number; nbf?: number } = {}, secret = SECRET) =>
        new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject(sub)
          .setExpirationTime(claims.exp ?? now() + 300)
          .setNotBefore(claims.nbf ?? now() - 10)
          .sign(new TextEncoder().encode(secret));

      it('accepts a valid token in Sec-WebSocket-Protocol and echoes the first subprotocol offered', async () => {
        const user = uid('jwt');
        const a = await connect({ userId: user, protocols: [await jwt(user)] });
        await a.roundTrip();
        // As a browser offers them: "aleatoria.v1, <jwt>".
        const res = await rawUpgrade(server.baseUrl, { userId: uid('jwt') }, {});
        expect(res.status).toBe(401);
        const other = uid('jwt');
        const ok = await rawUpgrade(
          server.baseUrl,
          { userId: other },
          { 'sec-websocket-protocol': `aleatoria.v1, ${await jwt(other)}` },
        );
        expect(ok.status).toBe(101);
        expect(ok.headers['sec-websocket-protocol']).toBe('aleatoria.v1');
      });

      it('accepts a valid token as access_token, and takes the userId from sub when none is given', async () => {
        const user = uid('jwt');
        const a = await connect({ userId: '', query: { access_token: await jwt(user) } });
        a.send({ type: 'get_rooms' });
        expect((await a.nextOfType('rooms_list')).toUser).toBe(user);
      });

      it.each([
        ['no token', async (user: string) => ({ userId: user })],
        [
          'an expired token',
          async (user: string) => ({
            userId: user,
            protocols: [await jwt(user, { exp: now() - 60 })],
          }),
        ],
        [
          'a token not valid yet (nbf)',
          async (user: string) => ({
            userId: user,
            protocols: [await jwt(user, { nbf: now() + 120 })],
          }),
        ],
        [
          'a forged token (other secret)',
          async (user: string) => ({
            userId: user,
            protocols: [await jwt(user, {}, 'another-secret-another-secret-1234')],
          }),
        ],
        [
          'a token for another user',
          async (user: string) => ({ userId: user, protocols: [await jwt(`${user}-other`)] }),
        ],
        [
          'an unsigned token (alg none)',
          async (user: string) => ({
            userId: user,
            protocols: [
              `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: user, exp: now() + 60 })).toString('base64url')}.`,
            ],
          }),
        ],
        [
          'garbage in access_token',
          async (user: string) => ({ query: { userId: user, access_token: 'not-a-jwt' } }),
        ],
      ])('refuses %s with 401 before the upgrade', async (_label, options) => {
        expect(await upgradeStatus(server.baseUrl, await options(uid('jwt')))).toBe(401);
      });

      it('lets a second connection proving the same subject take the session over', async () => {
        const user = uid('jwt');
        const first = await connect({ userId: user, protocols: [await jwt(user)] });
        // Served once before it is replaced (workerd leaves a socket that never sent a frame in
        // CLOSING after a server close: see the README's Cloudflare limits).
        await first.roundTrip();
        const second = await connect({ userId: user, protocols: [await jwt(user)] });
        expect((await first.nextOfType('error')).payload.code).toBe('replaced');
        expect((await first.closed).code).toBe(4000);
        await second.roundTrip();
      });
    });

    describe('token auth (AUTH_JWKS_URL)', () => {
      let server: LaunchedServer;
      let keyServer: Server;
      let privateKey: CryptoKey;
      let fetches = 0;
      beforeAll(async () => {
        const pair = await generateKeyPair('ES256', { extractable: true });
        privateKey = pair.privateKey as CryptoKey;
        const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
        keyServer = createServer((_req, res) => {
          fetches++;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ keys: [jwk] }));
        });
        await new Promise<void>((resolve) => keyServer.listen(0, '127.0.0.1', resolve));
        const { port } = keyServer.address() as AddressInfo;
        server = await target.launch({ AUTH_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` });
      });
      afterAll(async () => {
        await server?.stop();
        keyServer?.close();
      });
      const sign = (sub: string, key: CryptoKey | Uint8Array, alg: string) =>
        new SignJWT({})
          .setProtectedHeader({ alg, kid: 'k1' })
          .setSubject(sub)
          .setExpirationTime('5m')
          .sign(key);

      it('accepts a token signed by a key of the set, fetching the set once for many connections', async () => {
        for (let i = 0; i < 3; i++) {
          const user = uid('jwks');
          expect(
            // The key set is cached per process.
            await upgradeStatus(oneProcess(server).baseUrl, {
              userId: user,
              protocols: [await sign(user, privateKey, 'ES256')],
            }),
          ).toBe(101);
        }
        expect(fetches).toBe(1);
      });

      it('refuses a token signed by another key, or an HS256 token, with 401', async () => {
        const other = (await generateKeyPair('ES256')).privateKey as CryptoKey;
        const user = uid('jwks');
        expect(
          await upgradeStatus(server.baseUrl, {
            userId: user,
            protocols: [await sign(user, other, 'ES256')],
          }),
        ).toBe(401);
        expect(
          await upgradeStatus(server.baseUrl, {
            userId: user,
            protocols: [await sign(user, new TextEncoder().encode('x'.repeat(32)), 'HS256')],
          }),
        ).toBe(401);
      });
    });

    describe('METRICS_TOKEN', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ METRICS_TOKEN: 'scrape-me' });
      });
      afterAll(() => server?.stop());

      it('guards /metrics with a bearer token', async () => {
        expect((await fetch(`${server.baseUrl}/metrics`)).status).toBe(401);
        expect(
          (await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: 'Bearer wrong' } }))
            .status,
        ).toBe(401);
        const ok = await fetch(`${server.baseUrl}/metrics`, {
          headers: { authorization: 'Bearer scrape-me' },
        });
        expect(ok.status).toBe(200);
        expect(await ok.text()).toMatch(/^aleatoria_connections \d+$/m);
      });
    });

    describe('operator page (ADMIN_TOKEN)', () => {
      const TOKEN = 'operator-page-token-0123';
      let server: LaunchedServer;
      /** The same server without ADMIN_TOKEN. */
      let plain: LaunchedServer;
      beforeAll(async () => {
        [server, plain] = await Promise.all([
          target.launch({ ADMIN_TOKEN: TOKEN }),
          target.launch({}),
        ]);
      });
      afterAll(() => Promise.all([server?.stop(), plain?.stop()]));
      const connect = clientPool(() => server);
      const figuresUrl = () => `${oneProcess(server).baseUrl}/admin/figures`;
      const readFigures = async () => {
        const res = await fetch(figuresUrl(), { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(res.status).toBe(200);
        return (await res.json()) as Record<string, any>;
      };

      it('is absent without ADMIN_TOKEN', async () => {
        for (const path of ['/admin', '/admin/figures', '/admin/admin.js'])
          expect((await fetch(`${plain.baseUrl}${path}`)).status).toBe(404);
      });

      it('serves the page to anyone but its figures only for the bearer token', async () => {
        const page = await fetch(`${server.baseUrl}/admin`);
        expect(page.status).toBe(200);
        expect(page.headers.get('content-security-policy')).toContain("form-action 'none'");
        const html = await page.text();
        // Its script is named relative to the page, which resolves it next to itself.
        const script = /<script type="module" src="([^"]+)"/.exec(html)?.[1] ?? '';
        expect(new URL(script, `${server.baseUrl}/admin`).pathname).toBe('/admin/admin.js');
        expect(html).not.toContain(TOKEN);
        expect((await fetch(`${server.baseUrl}/admin/admin.js`)).status).toBe(200);
        for (const authorization of [
          undefined,
          'Bearer wrong',
          `Basic ${TOKEN}`,
          `Bearer ${TOKEN}x`,
        ]) {
          const res = await fetch(figuresUrl(), {
            headers: authorization === undefined ? {} : { authorization },
          });
          expect(res.status).toBe(401);
          expect(await res.text()).not.toMatch(/connections|\d/);
        }
      });

      it('agrees with /metrics after clients joined rooms, chatted and were matched', async () => {
        const [big, small] = [uid('big'), uid('small')];
        const members = [await connect({ room: big }), await connect({ room: big })];
        members.push(await connect({ room: big }), await connect({ room: small }));
        members[0]!.send({ type: 'chat_message', room: big, payload: { content: 'hi' } });
        for (const member of members.slice(0, 3)) await member.nextOfType('chat_message');
        const [x, y] = [await connect(), await connect()];
        await settle(y, { type: 'user_available_webrtc' });
        x.send({ type: 'request_random_peer' });
        await Promise.all([x.nextOfType('assign_role'), y.nextOfType('assign_role')]);

        // A cluster's other nodes write their figures at each heartbeat: read until they agree.
        let last = '';
        for (let i = 0; ; i++) {
          const [figures, metric, stats] = await Promise.all([
            readFigures(),
            readMetrics(server),
            fetch(`${server.baseUrl}/stats`).then((res) => res.json() as any),
          ]);
          const ttm = 'aleatoria_time_to_match_seconds';
          const seen = {
            connections: [figures.connections, metric('aleatoria_connections'), 6],
            matches: [figures.matches, metric('aleatoria_matches_total'), 1],
            waits: [figures.timeToMatch.count, metric(`${ttm}_count`), 1],
            fastest: [figures.timeToMatch.buckets[0].count, metric(`${ttm}_bucket{le="0.1"}`)],
            fiveMinutes: [figures.timeToMatch.buckets[8].count, metric(`${ttm}_bucket{le="300"}`)],
            everyWait: [figures.timeToMatch.buckets[9].count, metric(`${ttm}_count`)],
            // Processes cannot add up rooms and the pool (one spans them): /stats counts them.
            rooms: [figures.rooms, stats.rooms, 3],
            pool: [figures.pool, stats.available, 0],
            // Summed over a cluster's nodes, a pair across two of them counts once.
            pairs: [figures.pairs, metric('aleatoria_pairs'), 1],
            nodeConnections: [
              figures.nodes.length === 0
                ? figures.connections
                : figures.nodes.reduce((sum: number, node: any) => sum + node.connections, 0),
              figures.connections,
            ],
          };
          last = JSON.stringify(seen);
          if (Object.values(seen).every((values) => values.every((n) => n === values[0]))) break;
          if (i === 25) throw new Error(`figures never agreed with /metrics: ${last}`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        const figures = await readFigures();
        // x and y are in the default room.
        expect(figures.topRooms).toEqual([
          { room: big, members: 3 },
          { room: 'Lobby', members: 2 },
          { room: small, members: 1 },
        ]);
        if (!server.nodes) {
          // One process: every gauge is its own.
          const metric = await readMetrics(server);
          expect([figures.rooms, figures.pool, figures.pairs]).toEqual([
            metric('aleatoria_rooms'),
            metric('aleatoria_pool_size'),
            1,
          ]);
        }
        if (figures.history) expect(figures.history.messages).toBeGreaterThanOrEqual(1);
      });
    });

    describe('MAX_CONNECTIONS_PER_IP', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({ MAX_CONNECTIONS_PER_IP: '3' });
      });
      afterAll(() => server?.stop());
      // The cap is per process (a cluster's nodes, a deployment's gateways each count their own).
      const connect = clientPool(() => oneProcess(server));

      it('answers the upgrade past the cap with 429 and admits again after a close', async () => {
        const one = oneProcess(server);
        const clients = [];
        for (let i = 0; i < 3; i++) clients.push(await connect({ userId: uidOn(one) }));
        const { baseUrl } = one;
        expect(await upgradeStatus(baseUrl, { userId: uidOn(one) })).toBe(429);
        await clients[0]!.close();
        for (let i = 0; ; i++) {
          const status = await upgradeStatus(baseUrl, { userId: uidOn(one) });
          if (status === 101) break;
          expect(status).toBe(429);
          expect(i).toBeLessThan(50);
          await new Promise((r) => setTimeout(r, 20));
        }
      });
    });

    describeIf(
      'serverHeartbeat',
      'heartbeat (capability serverHeartbeat)',
      () => {
        let server: LaunchedServer;
        beforeAll(async () => {
          server = await target.launch({ PING_INTERVAL_MS: '100', PONG_TIMEOUT_MS: '400' });
        });
        afterAll(() => server?.stop());
        const connect = clientPool(() => server);

        it('pings every PING_INTERVAL_MS and keeps a client that answers', async () => {
          const a = await connect();
          let pings = 0;
          a.ws.on('ping', () => pings++);
          await new Promise((r) => setTimeout(r, 1000));
          expect(pings).toBeGreaterThanOrEqual(5);
          expect(pings).toBeLessThanOrEqual(12);
          await a.roundTrip();
        });

        it('drops a client that stops answering pings and tells its partner', async () => {
          const silent = await connect({ autoPong: false });
          const partner = await connect();
          await settle(partner, { type: 'user_available_webrtc' });
          silent.send({ type: 'request_random_peer' });
          await partner.nextOfType('assign_role');
          const started = Date.now();
          const hangup = await partner.nextOfType('hangup', 3000);
          expect(hangup).toMatchObject({
            fromUser: silent.userId,
            payload: { reason: 'peer_disconnected' },
          });
          expect(Date.now() - started).toBeLessThan(2000);
          await silent.closed;
        });
      },
      () => {
        let server: LaunchedServer;
        beforeAll(async () => {
          server = await target.launch({});
        });
        afterAll(() => server?.stop());
        const connect = clientPool(() => server);

        it('answers the text frame "ping" with "pong" without involving the hub', async () => {
          const a = await connect();
          const pong = new Promise<string>((resolve) =>
            a.ws.once('message', (data) => resolve(data.toString())),
          );
          a.sendText('ping');
          expect(await pong).toBe('pong');
          // "pong" is the platform's, outside the JSON protocol: the harness noted it as such.
          expect(a.violations.splice(0)).toEqual(['pong']);
          await a.roundTrip();
        });
      },
    );

    describeIf('slowConsumerClose', 'slow consumers (capability slowConsumerClose)', () => {
      let server: LaunchedServer;
      beforeAll(async () => {
        server = await target.launch({
          SEND_QUEUE_MAX_BYTES: '65536',
          RATE_LIMIT_PER_SECOND: '100000',
          RATE_LIMIT_BURST: '100000',
        });
      });
      afterAll(() => server?.stop());
      const connect = clientPool(() => server);

      it('drops a client that stops reading (1013) while the room keeps flowing', async () => {
        const room = uid('busy');
        const [sender, reader, stalled] = [
          await connect({ room }),
          await connect({ room }),
          await connect({ room }),
        ];
        const tcp = (stalled.ws as unknown as { _socket: import('node:net').Socket })._socket;
        // The stalled client never reads again: the server's buffer for it can only grow.
        tcp.pause();
        let received = 0;
        // Chat only: the room's presence messages are not part of the count.
        reader.ws.on('message', (data) => {
          if (String(data).startsWith('{"type":"chat_message"')) received++;
        });
        const content = 'x'.repeat(4000);
        let sent = 0;
        let dropped = false;
        while (!dropped && sent < 10_000) {
          for (let i = 0; i < 100; i++)
            sender.send({ type: 'chat_message', room, payload: { content } });
          sent += 100;
          // The reader keeps pace: everyone but the stalled client is served as usual.
          const deadline = Date.now() + 5000;
          while (received < sent && Date.now() < deadline)
            await new Promise((r) => setTimeout(r, 5));
          expect(received).toBe(sent);
          reader.queue.length = 0;
          sender.queue.length = 0;
          // Once dropped, the stalled user is gone from the hub: a DM to it is refused.
          sender.send({
            type: 'chat_message',
            toUser: stalled.userId,
            payload: { content: 'there?' },
          });
          const reply = await sender.next(
            (m) => (m.type === 'chat_message' && m.toUser === stalled.userId) || m.type === 'error',
          );
          dropped = reply.type === 'error' && reply.payload.code === 'user_not_found';
        }
        expect(dropped).toBe(true);
        // Reading again, it finds its connection closed: with 1013, or cut (1006) if the close frame never fit.
        tcp.resume();
        expect([1013, 1006]).toContain((await stalled.closed).code);
      }, 30_000);
    });

    describeIf('signalDrain', 'shutdown (capability signalDrain)', () => {
      it.each(['SIGTERM', 'SIGINT'] as const)(
        'on %s closes every socket with 1012 and exits 0 within SHUTDOWN_TIMEOUT_MS',
        async (signal) => {
          const server = await target.launch({ SHUTDOWN_TIMEOUT_MS: '3000' });
          try {
            const clients = await Promise.all(
              Array.from({ length: 20 }, () => TestClient.open(server.baseUrl)),
            );
            const closes = clients.map((client) => client.closed);
            const exit = server.kill(signal);
            for (const close of await Promise.all(closes)) expect(close.code).toBe(1012);
            const { code, elapsedMs } = await exit;
            expect(code).toBe(0);
            expect(elapsedMs).toBeLessThan(3000 + 1000);
          } finally {
            await server.stop();
          }
        },
      );

      it('exits at the drain deadline even if a client never answers the close', async () => {
        const server = await target.launch({ SHUTDOWN_TIMEOUT_MS: '500' });
        try {
          const stuck = await TestClient.open(server.baseUrl);
          (stuck.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
          const { code, elapsedMs } = await server.kill('SIGTERM');
          expect(code).toBe(0);
          expect(elapsedMs).toBeGreaterThanOrEqual(400);
          expect(elapsedMs).toBeLessThan(500 + 1500);
        } finally {
          await server.stop();
        }
      });
    });
  });
}
