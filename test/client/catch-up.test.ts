/**
 * The SDK's catch-up against a real Node server over real sockets: a sender posts 1,000 room
 * messages (and direct messages) while the receiver's connection is cut under it, through a
 * proxy; the receiver's SDK reconnects with its token and fills the hole from the server's
 * history. Its app must see every message exactly once, in order, and be told of any gap.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  createClient,
  type AleatoriaClient,
  type ClientOptions,
  type HistoryGap,
} from '../../src/client/index.ts';
import type { LaunchedServer } from '../contract/harness.ts';
import { launchNode } from '../contract/launchers.ts';
import { startCutProxy, type CutProxy } from './cut-proxy.ts';

/** ws's client, counting the history answers its sockets receive. */
let historyFrames = 0;
class CountingWebSocket extends WebSocket {
  constructor(url: string) {
    super(url);
    this.on('message', (data) => {
      const text = data.toString();
      if (
        text.startsWith('{"type":"recent_messages"') ||
        text.startsWith('{"type":"direct_messages"')
      )
        historyFrames++;
    });
  }
}

const NO_LIMITS = {
  RATE_LIMIT_PER_SECOND: '1000000',
  RATE_LIMIT_BURST: '1000000',
  ALLOW_NO_ORIGIN: 'true',
  LOG_LEVEL: 'error',
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const clients: AleatoriaClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

function connectClient(url: string, userId: string, extra: Partial<ClientOptions> = {}) {
  const client = createClient({
    url,
    userId,
    WebSocket: CountingWebSocket as unknown as typeof globalThis.WebSocket,
    reconnect: { initialDelayMs: 20, maxDelayMs: 100 },
    ...extra,
  });
  clients.push(client);
  return client;
}

/** What the receiver's app saw: room and direct messages by content, and gaps, in order. */
function record(client: AleatoriaClient) {
  const app = { room: [] as string[], side: [] as string[], direct: [] as string[] };
  const gaps: HistoryGap[] = [];
  client.on('chat_message', (message) => {
    const list =
      message.room === 'Lobby' ? app.room : message.room === 'side' ? app.side : app.direct;
    list.push(message.payload.content);
  });
  client.onHistoryGap((gap) => gaps.push(gap));
  return { app, gaps };
}

const opened = (client: AleatoriaClient) =>
  waitFor(`${client.userId} to open`, () => client.status === 'open');

const numbered = (prefix: string, count: number, step = 1) =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i * step).padStart(4, '0')}`);

describe('catching up over real sockets (Node server)', () => {
  let server: LaunchedServer;
  let port: number;
  let proxy: CutProxy;
  beforeAll(async () => {
    server = await launchNode({ ...NO_LIMITS, HISTORY_LIMIT: '5000' });
    port = Number(new URL(server.baseUrl).port);
    proxy = await startCutProxy(port);
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  });

  it('delivers 1,000 room messages and 20 direct messages exactly once, in order, across half-open drops', async () => {
    historyFrames = 0;
    const before = proxy.connections;
    const receiver = connectClient(proxy.url, 'receiver-a');
    const sender = connectClient(`ws://127.0.0.1:${port}/ws`, 'sender-a');
    const { app, gaps } = record(receiver);
    // Cut the receiver's connection twice mid-stream; the server keeps writing into the void.
    const cutAt = new Set([200, 600]);
    receiver.on('chat_message', () => {
      if (cutAt.delete(app.room.length)) proxy.cut('half-open');
    });
    await Promise.all([opened(receiver), opened(sender)]);

    for (let i = 0; i < 1000; i++) {
      const content = `room-${String(i).padStart(4, '0')}`;
      expect(sender.sendRoomMessage('Lobby', content)).toBe(true);
      if (i % 50 === 0)
        expect(sender.sendDirectMessage('receiver-a', `dm-${String(i).padStart(4, '0')}`)).toBe(
          true,
        );
      if (i % 2 === 1) await sleep(3);
    }
    await waitFor('every message', () => app.room.length >= 1000 && app.direct.length >= 20);
    await sleep(300); // anything arriving late would be a duplicate

    expect(cutAt.size).toBe(0);
    expect(proxy.connections - before).toBeGreaterThanOrEqual(3);
    expect(historyFrames).toBeGreaterThan(0);
    expect(app.room).toEqual(numbered('room', 1000));
    expect(app.direct).toEqual(numbered('dm', 20, 50));
    expect(gaps).toEqual([]);
  }, 60_000);

  it('catches up after hard drops that end the session, a room rejoined by the app included', async () => {
    historyFrames = 0;
    const receiver = connectClient(proxy.url, 'receiver-b');
    const sender = connectClient(`ws://127.0.0.1:${port}/ws`, 'sender-b');
    const { app, gaps } = record(receiver);
    // What the demo page does: after a reconnect, rejoin the rooms the session had.
    let reconnected = false;
    receiver.onStatus((status) => {
      if (status === 'open' && reconnected) receiver.joinRoom('side');
      if (status === 'reconnecting') reconnected = true;
    });
    const cutAt = new Set([300, 700]);
    receiver.on('chat_message', () => {
      if (cutAt.delete(app.room.length)) proxy.cut('hard');
    });
    await Promise.all([opened(receiver), opened(sender)]);
    const joined = (client: AleatoriaClient) =>
      new Promise<void>((resolve) => {
        const off = client.on('room_joined', () => {
          off();
          resolve();
        });
        client.joinRoom('side');
      });
    await Promise.all([joined(receiver), joined(sender)]);

    for (let i = 0; i < 1000; i++) {
      expect(sender.sendRoomMessage('Lobby', `room-${String(i).padStart(4, '0')}`)).toBe(true);
      if (i % 10 === 0)
        expect(sender.sendRoomMessage('side', `side-${String(i).padStart(4, '0')}`)).toBe(true);
      if (i % 2 === 1) await sleep(3);
    }
    await waitFor('every message', () => app.room.length >= 1000 && app.side.length >= 100);
    await sleep(300);

    expect(cutAt.size).toBe(0);
    expect(historyFrames).toBeGreaterThan(0);
    expect(app.room).toEqual(numbered('room', 1000));
    expect(app.side).toEqual(numbered('side', 100, 10));
    expect(gaps).toEqual([]);
  }, 60_000);
});

describe.each([
  ['HISTORY_LIMIT=20', { HISTORY_LIMIT: '20' }, 20],
  ['HISTORY=off', { HISTORY: 'off' }, 0],
])('reporting what history cannot give back (%s)', (_name, env, kept) => {
  let server: LaunchedServer;
  let proxy: CutProxy;
  beforeAll(async () => {
    server = await launchNode({ ...NO_LIMITS, ...env });
    proxy = await startCutProxy(Number(new URL(server.baseUrl).port));
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  });

  it('tells the app about the gap, then delivers what is left, in order and once', async () => {
    const receiver = connectClient(proxy.url, 'receiver-c');
    const sender = connectClient(`ws://127.0.0.1:${new URL(server.baseUrl).port}/ws`, 'sender-c');
    const { app, gaps } = record(receiver);
    const ids: string[] = [];
    receiver.on('chat_message', (message) => ids.push(message.id!));
    const echoes: string[] = [];
    sender.on('chat_message', (message) => echoes.push(message.id!));
    await Promise.all([opened(receiver), opened(sender)]);

    const post = async (from: number, to: number) => {
      for (let i = from; i < to; i++)
        sender.sendRoomMessage('Lobby', `room-${String(i).padStart(4, '0')}`);
      await waitFor('the echoes', () => echoes.length >= to);
    };
    await post(0, 10);
    await waitFor('the first ten', () => app.room.length === 10);
    proxy.hold();
    proxy.cut('half-open');
    await waitFor('the receiver to notice', () => receiver.status === 'reconnecting');
    await post(10, 110); // 100 messages the receiver misses
    proxy.release();
    await waitFor('the catch-up', () => gaps.length > 0);
    await post(110, 111); // one live message after it
    await waitFor('the live message', () => app.room.at(-1) === 'room-0110');
    await sleep(200);

    const missedKept = numbered('room', 111).slice(110 - kept, 110);
    expect(app.room).toEqual([...numbered('room', 10), ...missedKept, 'room-0110']);
    // With nothing kept, the gap is reported before any message follows it.
    expect(gaps).toEqual([
      {
        room: 'Lobby',
        afterId: echoes[9],
        ...(kept ? { beforeId: echoes[110 - kept] } : {}),
        reason: 'history_incomplete',
      },
    ]);
    expect(new Set(ids).size).toBe(ids.length);
  }, 60_000);
});
