import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createBackoff } from '../../src/client/backoff.ts';
import { createClient, type ClientStatus, type StatusDetail } from '../../src/client/index.ts';
import type { ClientOptions } from '../../src/client/index.ts';
import { FakeWebSocket } from './fake-websocket.ts';

const sockets = () => FakeWebSocket.instances;
const latest = (): FakeWebSocket => {
  const socket = FakeWebSocket.instances.at(-1);
  if (!socket) throw new Error('no socket was made');
  return socket;
};

/** Lets the diagnosis (an awaited fetch) run to the end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

const fetchStub = vi.fn<typeof fetch>();

function respondWith(status: number): void {
  fetchStub.mockImplementation(async () => new Response('refused', { status }));
}

function makeClient(overrides: Partial<ClientOptions> = {}) {
  const client = createClient({
    url: 'ws://localhost:8085/ws',
    userId: 'alice',
    WebSocket: FakeWebSocket as unknown as typeof WebSocket,
    ...overrides,
  });
  const statuses: [ClientStatus, StatusDetail][] = [];
  client.onStatus((status, detail) => statuses.push([status, detail]));
  return { client, statuses };
}

const at = (time: string) => ({ createTime: time });

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.instances = [];
  fetchStub.mockReset();
  // The request was fine, only not an upgrade: what the server answers when nothing is wrong.
  respondWith(426);
  vi.stubGlobal('fetch', fetchStub);
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.useRealTimers();
});

describe('connecting', () => {
  it('puts userId, room and token in the query string', () => {
    const { client } = makeClient({ room: 'music & more', token: 'secret-1' });
    const url = new URL(latest().url);
    expect(url.origin + url.pathname).toBe('ws://localhost:8085/ws');
    expect(url.searchParams.get('userId')).toBe('alice');
    expect(url.searchParams.get('room')).toBe('music & more');
    expect(url.searchParams.get('token')).toBe('secret-1');
    expect(client.token).toBe('secret-1');
  });

  it('generates a random token when none is given and exposes it', () => {
    const first = makeClient().client;
    const second = makeClient().client;
    expect(first.token).toMatch(/^[0-9a-f]{32}$/);
    expect(second.token).not.toBe(first.token);
    expect(new URL(sockets()[0]!.url).searchParams.get('token')).toBe(first.token);
    expect(new URL(sockets()[0]!.url).searchParams.has('room')).toBe(false);
  });

  it('reports connecting, then open', () => {
    const { client, statuses } = makeClient();
    expect(client.status).toBe('connecting');
    latest().open();
    expect(client.status).toBe('open');
    expect(statuses.map(([status]) => status)).toEqual(['open']);
  });
});

describe('events', () => {
  it('dispatches each server message to the handlers of its type, until unsubscribed', () => {
    const { client } = makeClient();
    latest().open();
    const roles: string[] = [];
    const rooms: string[][] = [];
    const off = client.on('assign_role', (message) =>
      roles.push(`${message.payload.role}:${message.payload.peerId}`),
    );
    client.on('rooms_list', (message) => rooms.push(message.payload.rooms));
    // @ts-expect-error rooms_list has no role: the handler is typed by the message type
    client.on('rooms_list', (message) => message.payload.role);

    latest().receive({
      type: 'assign_role',
      fromUser: 'system',
      payload: { role: 'polite', peerId: 'bob' },
      ...at('t1'),
    });
    latest().receive({
      type: 'rooms_list',
      fromUser: 'system',
      payload: { rooms: ['Lobby'] },
      ...at('t2'),
    });
    off();
    latest().receive({
      type: 'assign_role',
      fromUser: 'system',
      payload: { role: 'impolite', peerId: 'carol' },
      ...at('t3'),
    });

    expect(roles).toEqual(['polite:bob']);
    expect(rooms).toEqual([['Lobby']]);
  });

  it('ignores frames that are not JSON objects with a type', () => {
    const { client } = makeClient();
    latest().open();
    const seen: unknown[] = [];
    client.on('error', (message) => seen.push(message));
    latest().receive('not json');
    latest().receive({ payload: { error: 'x' } });
    latest().receive([1, 2]);
    latest().receive({
      type: 'error',
      fromUser: 'system',
      payload: { error: 'Nope', code: 'not_in_room' },
      ...at('t'),
    });
    expect(seen).toHaveLength(1);
  });

  it('keeps calling the other handlers when one throws, and rethrows outside the dispatch', async () => {
    const { client } = makeClient();
    latest().open();
    const thrown = new Error('handler bug');
    const rethrown: unknown[] = [];
    const original = globalThis.queueMicrotask;
    vi.stubGlobal('queueMicrotask', (task: () => void) =>
      original(() => {
        try {
          task();
        } catch (error) {
          rethrown.push(error);
        }
      }),
    );
    const seen: string[] = [];
    client.on('no_peer_available', () => {
      throw thrown;
    });
    client.on('no_peer_available', (message) => seen.push(message.payload.message));
    latest().receive({
      type: 'no_peer_available',
      fromUser: 'system',
      payload: { message: 'none' },
      ...at('t'),
    });
    await settle();
    expect(seen).toEqual(['none']);
    expect(rethrown).toEqual([thrown]);
  });
});

describe('sending', () => {
  it('sends the exact protocol frame for each helper', () => {
    const { client } = makeClient();
    latest().open();
    client.joinRoom('jazz');
    client.leaveRoom('jazz');
    client.getRooms();
    client.sendRoomMessage('Lobby', 'hello room');
    client.sendDirectMessage('bob', 'hello bob');
    client.setAvailable(true);
    client.setAvailable(false);
    client.requestRandomPeer();
    client.requestRandomPeer('bob');
    client.hangup('bob');
    client.hangup('bob', 'next');
    expect(latest().frames()).toEqual([
      { type: 'join_room', room: 'jazz' },
      { type: 'leave_room', room: 'jazz' },
      { type: 'get_rooms' },
      { type: 'chat_message', room: 'Lobby', payload: { content: 'hello room' } },
      { type: 'chat_message', toUser: 'bob', payload: { content: 'hello bob' } },
      { type: 'user_available_webrtc' },
      { type: 'user_unavailable_webrtc' },
      { type: 'request_random_peer' },
      { type: 'request_random_peer', payload: { currentPeerId: 'bob' } },
      { type: 'hangup', toUser: 'bob' },
      { type: 'hangup', toUser: 'bob', payload: { reason: 'next' } },
    ]);
  });

  it('drops messages with false while the socket is not open', () => {
    const { client } = makeClient();
    expect(client.getRooms()).toBe(false);
    latest().open();
    expect(client.getRooms()).toBe(true);
    latest().drop(1006);
    expect(client.send({ type: 'get_rooms' })).toBe(false);
    expect(sockets()[0]!.sent).toEqual(['{"type":"get_rooms"}']);
  });
});

describe('reconnecting', () => {
  it('waits random() * min(max, initial * 2^attempt) between failed attempts, then resets after an open', async () => {
    const script = [1, 1, 1, 1, 1, 1, 0.5, 0.25, 0.999];
    const { statuses } = makeClient({
      reconnect: { initialDelayMs: 100, maxDelayMs: 1000, random: () => script.shift() ?? 1 },
    });
    latest().open();
    latest().drop(1006);
    const delays: number[] = [];
    for (let attempt = 0; attempt < 7; attempt++) {
      const [status, detail] = statuses.at(-1)!;
      expect(status).toBe('reconnecting');
      const delay = detail.retryInMs!;
      delays.push(delay);
      const before = sockets().length;
      if (delay > 0) {
        await vi.advanceTimersByTimeAsync(delay - 1);
        expect(sockets()).toHaveLength(before);
      }
      await vi.advanceTimersByTimeAsync(1);
      expect(sockets()).toHaveLength(before + 1);
      latest().drop(1006); // the attempt fails before opening
      await settle();
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000, 500]);

    const [, capped] = statuses.at(-1)!;
    expect(capped.retryInMs).toBe(250); // 0.25 * the 1000 cap
    await vi.advanceTimersByTimeAsync(250);
    latest().open();
    latest().drop(1012);
    const [, afterOpen] = statuses.at(-1)!;
    expect(afterOpen.retryInMs).toBeCloseTo(99.9); // back to the first cap: 0.999 * 100
  });

  it('keeps every delay within [0, cap] whatever random returns', () => {
    const values = [0, 0.9999, 1, 1.5, -0.2, 0.3];
    const backoff = createBackoff({
      initialDelayMs: 500,
      maxDelayMs: 15_000,
      random: () => values.shift()!,
    });
    const caps = [500, 1000, 2000, 4000, 8000, 15_000];
    for (const cap of caps) {
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThanOrEqual(cap);
    }
    expect(backoff.attempt).toBe(6);
    backoff.reset();
    expect(backoff.attempt).toBe(0);
  });

  it('uses the defaults 500 ms and 15 s', () => {
    const backoff = createBackoff({ random: () => 1 });
    const delays = Array.from({ length: 8 }, () => backoff.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 15_000, 15_000, 15_000]);
  });

  it('reconnects with the same URL and token after a server restart (1012)', async () => {
    const { client, statuses } = makeClient({ reconnect: { random: () => 0.5 } });
    latest().open();
    latest().drop(1012, 'server restart');
    expect(statuses.at(-1)).toEqual([
      'reconnecting',
      { code: 1012, reason: 'server restart', retryInMs: 250 },
    ]);
    await vi.advanceTimersByTimeAsync(250);
    expect(sockets()).toHaveLength(2);
    latest().open();
    expect(client.status).toBe('open');
    expect(sockets()[1]!.url).toBe(sockets()[0]!.url);
    expect(new URL(sockets()[1]!.url).searchParams.get('token')).toBe(client.token);
    // A socket that had opened is not diagnosed: its drop says nothing about the request.
    expect(fetchStub).not.toHaveBeenCalled();
  });

  it('retries within 500 ms of an abnormal drop, whatever the jitter: a call waits for it', async () => {
    // The server keeps a call for CALL_RESUME_MS (10 s by default) after a drop without a close
    // frame; the first retry must come well inside it.
    const { client, statuses } = makeClient({ reconnect: { random: () => 0.999 } });
    latest().open();
    latest().drop(1006);
    const [status, detail] = statuses.at(-1)!;
    expect(status).toBe('reconnecting');
    expect(detail.retryInMs).toBeLessThanOrEqual(500);
    await vi.advanceTimersByTimeAsync(500);
    expect(sockets()).toHaveLength(2);
    expect(new URL(latest().url).searchParams.get('token')).toBe(client.token);
  });

  it.each([1001, 1006, 1008, 1011, 1013, 4999])('reconnects after close code %i', async (code) => {
    makeClient({ reconnect: { random: () => 0 } });
    latest().open();
    latest().drop(code);
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets()).toHaveLength(2);
  });

  it.each([
    [4009, 'user_id_taken'],
    [4000, 'replaced'],
  ] as const)(
    'does not reconnect after close code %i and reports it as fatal',
    async (code, diagnosis) => {
      const { client, statuses } = makeClient({ reconnect: { random: () => 0 } });
      latest().open();
      latest().drop(code);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(sockets()).toHaveLength(1);
      expect(client.status).toBe('closed');
      expect(statuses.at(-1)).toEqual(['closed', { code, fatal: true, diagnosis }]);
    },
  );

  it('does not reconnect after close(), even if the socket reports its close later', async () => {
    const { client, statuses } = makeClient({ reconnect: { random: () => 0 } });
    const socket = latest();
    socket.open();
    client.close();
    expect(socket.closedWith).toBe(1000);
    socket.drop(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(1);
    expect(statuses.map(([status]) => status)).toEqual(['open', 'closed']);
    expect(statuses.at(-1)![1].fatal).toBeUndefined();
  });

  it('cancels a scheduled reconnect on close()', async () => {
    const { client } = makeClient({ reconnect: { random: () => 1 } });
    latest().open();
    latest().drop(1006);
    client.close();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(1);
    expect(client.status).toBe('closed');
  });
});

describe('diagnosing a connection that never opened', () => {
  it('probes the same URL over http and stops for good on 403 (origin not allowed)', async () => {
    respondWith(403);
    const { client, statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    expect(fetchStub).toHaveBeenCalledTimes(1);
    const probed = new URL(String(fetchStub.mock.calls[0]![0]));
    expect(probed.protocol).toBe('http:');
    expect(probed.host).toBe('localhost:8085');
    expect(probed.pathname).toBe('/ws');
    expect(probed.searchParams.get('userId')).toBe('alice');
    expect(client.status).toBe('closed');
    expect(statuses.at(-1)).toEqual([
      'closed',
      { code: 1006, fatal: true, diagnosis: 'origin_not_allowed' },
    ]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(1);
  });

  it('probes wss: URLs over https', async () => {
    respondWith(403);
    makeClient({ url: 'wss://chat.example/ws' });
    latest().drop(1006);
    await settle();
    expect(String(fetchStub.mock.calls[0]![0])).toMatch(/^https:\/\/chat\.example\/ws\?/);
  });

  it('stops for good on 400 (bad request)', async () => {
    respondWith(400);
    const { statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(1);
    expect(statuses.at(-1)).toEqual([
      'closed',
      { code: 1006, fatal: true, diagnosis: 'bad_request' },
    ]);
  });

  it.each([
    [429, 'too_many_connections'],
    [503, 'server_restarting'],
  ] as const)('keeps retrying on %i and says why (%s)', async (status, diagnosis) => {
    respondWith(status);
    const { statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    expect(statuses.at(-1)).toEqual(['reconnecting', { code: 1006, diagnosis, retryInMs: 0 }]);
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets()).toHaveLength(2);
  });

  it('keeps retrying on 426, with no diagnosis: the request itself was fine', async () => {
    respondWith(426);
    const { statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    expect(statuses.at(-1)).toEqual(['reconnecting', { code: 1006, retryInMs: 0 }]);
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets()).toHaveLength(2);
  });

  it('calls the server unreachable when the probe fails, and keeps retrying', async () => {
    fetchStub.mockImplementation(async () => {
      throw new TypeError('fetch failed');
    });
    const { statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    expect(statuses.at(-1)).toEqual([
      'reconnecting',
      { code: 1006, diagnosis: 'unreachable', retryInMs: 0 },
    ]);
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets()).toHaveLength(2);
  });

  it('does not trust a 403 for a same-origin probe, which carries no Origin header', async () => {
    respondWith(403);
    vi.stubGlobal('location', { origin: 'http://localhost:8085' });
    const { statuses } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    expect(statuses.at(-1)).toEqual(['reconnecting', { code: 1006, retryInMs: 0 }]);
  });

  it('uses an injected fetch over the global one', async () => {
    const injected = vi.fn<typeof fetch>(async () => new Response('', { status: 403 }));
    const { statuses } = makeClient({ fetch: injected });
    latest().drop(1006);
    await settle();
    expect(injected).toHaveBeenCalledTimes(1);
    expect(fetchStub).not.toHaveBeenCalled();
    expect(statuses.at(-1)![1].diagnosis).toBe('origin_not_allowed');
  });

  it('does not reconnect when close() is called while the probe is pending', async () => {
    let answer: (response: Response) => void = () => {};
    fetchStub.mockImplementation(() => new Promise<Response>((resolve) => (answer = resolve)));
    const { client } = makeClient({ reconnect: { random: () => 0 } });
    latest().drop(1006);
    await settle();
    client.close();
    answer(new Response('', { status: 426 }));
    await settle();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets()).toHaveLength(1);
    expect(client.status).toBe('closed');
  });
});

describe('getIceServers', () => {
  it('asks with get_ice_servers and resolves with the matching ice_servers reply only', async () => {
    const { client } = makeClient();
    latest().open();
    const pending = client.getIceServers();
    const request = latest().frames().at(-1) as { type: string; messageId: string };
    expect(request.type).toBe('get_ice_servers');
    const payload = {
      iceServers: [{ urls: 'turn:t.example:3478', username: '1:alice', credential: 'c' }],
      ttl: 600,
    };
    latest().receive({
      type: 'ice_servers',
      fromUser: 'system',
      toUser: 'alice',
      messageId: 'someone-else',
      payload: { iceServers: [], ttl: 0 },
      ...at('2026-01-01T00:00:00.000Z'),
    });
    latest().receive({
      type: 'ice_servers',
      fromUser: 'system',
      toUser: 'alice',
      messageId: request.messageId,
      payload,
      ...at('2026-01-01T00:00:00.000Z'),
    });
    await expect(pending).resolves.toEqual(payload);
  });

  it('rejects when not connected, and when no reply comes in time', async () => {
    const { client } = makeClient();
    await expect(client.getIceServers()).rejects.toThrow('not connected');
    latest().open();
    const pending = client.getIceServers(1000);
    vi.advanceTimersByTime(1001);
    await expect(pending).rejects.toThrow('no ice_servers reply');
  });
});
