/**
 * The SDK's chat history: catching up after a reconnect (paging back to the last seen id, holding
 * and merging live messages, reporting gaps), seeding a view, and the history requests. A scripted
 * fake socket plays the server; no sleeps.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createClient,
  type ChatMessage,
  type ClientOptions,
  type HistoryGap,
} from '../../src/client/index.ts';
import { FakeWebSocket } from './fake-websocket.ts';

const latest = (): FakeWebSocket => FakeWebSocket.instances.at(-1)!;
const flush = () => vi.advanceTimersByTimeAsync(0);

/** A 16-digit server id: they compare as strings. */
const id = (n: number) => String(1_764_000_000_000_000 + n);
/** Server time `n` seconds after a fixed instant. */
const at = (n: number) => new Date(Date.UTC(2026, 11, 3, 12, 0, n)).toISOString();

function room(n: number, name = 'Lobby', from = 'bob'): ChatMessage {
  return {
    type: 'chat_message',
    id: id(n),
    fromUser: from,
    room: name,
    payload: { content: `${name}-${n}` },
    createTime: at(n),
  };
}

/** A direct message between alice (the client) and `partner`, as alice receives it. */
function direct(n: number, partner = 'bob', fromAlice = false): ChatMessage {
  return {
    type: 'chat_message',
    id: id(n),
    fromUser: fromAlice ? 'alice' : partner,
    toUser: fromAlice ? partner : 'alice',
    payload: { content: `dm-${partner}-${n}` },
    incoming: !fromAlice,
    createTime: at(n),
  };
}

const system = (type: string, payload: unknown, extra: Record<string, unknown> = {}) => ({
  type,
  fromUser: 'system',
  toUser: 'alice',
  payload,
  createTime: at(500),
  ...extra,
});

/** Answers the last `get_recent_messages` (newest first, as the server does). */
function answerRecent(socket: FakeWebSocket, messages: ChatMessage[]): void {
  const request = socket.last('get_recent_messages');
  const sorted = [...messages].sort((a, b) => (a.id! < b.id! ? 1 : -1));
  socket.receive(
    system(
      'recent_messages',
      { room: request.room, messages: sorted },
      { room: request.room, messageId: request.messageId },
    ),
  );
}

/** Answers the last `get_direct_messages` (oldest first, as the server does). */
function answerDirect(socket: FakeWebSocket, messages: ChatMessage[]): void {
  const request = socket.last('get_direct_messages');
  const sorted = [...messages].sort((a, b) => (a.id! < b.id! ? -1 : 1));
  const withUser = (request.payload as { withUser: string }).withUser;
  socket.receive(
    system('direct_messages', { withUser, messages: sorted }, { messageId: request.messageId }),
  );
}

function makeClient(overrides: Partial<ClientOptions> = {}) {
  const client = createClient({
    url: 'ws://localhost:8085/ws',
    userId: 'alice',
    WebSocket: FakeWebSocket as unknown as typeof WebSocket,
    reconnect: { random: () => 0 },
    ...overrides,
  });
  /** What the app saw, in order: chat messages by content, gaps as `gap:<afterId>..<beforeId>`. */
  const seen: string[] = [];
  const gaps: HistoryGap[] = [];
  client.on('chat_message', (message) => seen.push(message.payload.content));
  client.onHistoryGap((gap) => {
    gaps.push(gap);
    seen.push(`gap:${gap.room ?? gap.withUser}`);
  });
  return { client, seen, gaps };
}

/** Drops the socket and opens the next one. */
async function reconnect(): Promise<FakeWebSocket> {
  latest().drop();
  await flush();
  const socket = latest();
  socket.open();
  return socket;
}

const contents = (messages: ChatMessage[]) => messages.map((m) => m.payload.content);
const range = (from: number, to: number, make = (n: number) => room(n)) =>
  Array.from({ length: to - from + 1 }, (_, i) => make(from + i));

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.instances = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe('live chat messages', () => {
  it('delivers each id once: a repeated or older id of the same conversation is dropped', () => {
    const { seen } = makeClient();
    latest().open();
    for (const message of [room(1), room(2), room(2), room(1), room(3), room(1, 'music')]) {
      latest().receive(message);
    }
    expect(seen).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3', 'music-1']);
  });

  it('passes messages without an id through untouched (a server without history)', () => {
    const { seen } = makeClient();
    latest().open();
    const { id: _, ...old } = room(1);
    latest().receive(old);
    latest().receive(old);
    expect(seen).toEqual(['Lobby-1', 'Lobby-1']);
  });

  it('sends nothing of its own on the first open', () => {
    makeClient();
    latest().open();
    expect(latest().sent).toEqual([]);
  });
});

describe('catching up a room after a reconnect', () => {
  it('asks which rooms the session is in, pages back with before to the last seen id, and delivers the missed messages then the held live ones, each once and in order', async () => {
    const { seen, gaps } = makeClient({ history: { pageSize: 3 } });
    latest().open();
    for (const n of [1, 2, 3]) latest().receive(room(n));

    const socket = await reconnect();
    expect(socket.frames()).toEqual([{ type: 'get_rooms' }]);
    socket.receive(room(9)); // live, while nothing is caught up yet: held
    expect(seen).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3']);

    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    expect(socket.last('get_recent_messages')).toMatchObject({
      room: 'Lobby',
      payload: { limit: 3 },
    });
    answerRecent(socket, range(7, 9));
    await flush();
    expect(socket.last('get_recent_messages').payload).toEqual({ limit: 3, before: id(7) });
    socket.receive(room(10)); // live during the catch-up: held too
    socket.receive(room(9)); // a duplicate of a held one
    answerRecent(socket, range(4, 6));
    await flush();
    expect(socket.last('get_recent_messages').payload).toEqual({ limit: 3, before: id(4) });
    answerRecent(socket, range(1, 3));
    await flush();

    expect(socket.count('get_recent_messages')).toBe(3);
    expect(seen).toEqual(range(1, 10).map((m) => m.payload.content));
    expect(gaps).toEqual([]);
    // Caught up: live messages flow again, still deduplicated.
    socket.receive(room(10));
    socket.receive(room(11));
    expect(seen.slice(-2)).toEqual(['Lobby-10', 'Lobby-11']);
  });

  it('stops paging at a short page that reaches the last seen id', async () => {
    const { seen, gaps } = makeClient();
    latest().open();
    latest().receive(room(1));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    answerRecent(socket, range(1, 4));
    await flush();
    expect(socket.count('get_recent_messages')).toBe(1);
    expect(seen).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3', 'Lobby-4']);
    expect(gaps).toEqual([]);
  });

  it('reports a gap when the history no longer reaches the last seen id, before the messages after it', async () => {
    const { seen, gaps } = makeClient({ history: { pageSize: 5 } });
    latest().open();
    latest().receive(room(3));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    socket.receive(room(10));
    // Trimmed: the server keeps messages 7-10 only.
    answerRecent(socket, range(7, 10));
    await flush();
    expect(gaps).toEqual([
      { room: 'Lobby', afterId: id(3), beforeId: id(7), reason: 'history_incomplete' },
    ]);
    expect(seen).toEqual(['Lobby-3', 'gap:Lobby', 'Lobby-7', 'Lobby-8', 'Lobby-9', 'Lobby-10']);
  });

  it('reports a gap when the history is empty (HISTORY=off), then delivers the held live messages', async () => {
    const { seen, gaps } = makeClient();
    latest().open();
    latest().receive(room(3));
    const socket = await reconnect();
    socket.receive(room(8));
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    answerRecent(socket, []);
    await flush();
    expect(gaps).toEqual([
      { room: 'Lobby', afterId: id(3), beforeId: id(8), reason: 'history_incomplete' },
    ]);
    expect(seen).toEqual(['Lobby-3', 'gap:Lobby', 'Lobby-8']);
  });

  it('reports a gap when the pages run out before the last seen id (maxPages)', async () => {
    const { seen, gaps } = makeClient({ history: { pageSize: 2, maxPages: 2 } });
    latest().open();
    latest().receive(room(1));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    answerRecent(socket, range(6, 7));
    await flush();
    answerRecent(socket, range(4, 5));
    await flush();
    expect(socket.count('get_recent_messages')).toBe(2);
    expect(gaps).toEqual([
      { room: 'Lobby', afterId: id(1), beforeId: id(4), reason: 'history_incomplete' },
    ]);
    expect(seen).toEqual(['Lobby-1', 'gap:Lobby', 'Lobby-4', 'Lobby-5', 'Lobby-6', 'Lobby-7']);
  });

  it('waits for room_joined before catching up a room the new session is not in', async () => {
    const { seen } = makeClient();
    latest().open();
    latest().receive(system('room_joined', { room: 'music', action: 'joined' }));
    latest().receive(room(1, 'music'));
    const socket = await reconnect();
    // A fresh session: only the room of the URL.
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    await flush();
    expect(socket.frames().filter((f) => f.room === 'music')).toEqual([]);
    socket.receive(system('room_joined', { room: 'music', action: 'joined' }, { room: 'music' }));
    expect(socket.last('get_recent_messages').room).toBe('music');
    answerRecent(
      socket,
      range(1, 2, (n) => room(n, 'music')),
    );
    await flush();
    expect(seen).toEqual(['music-1', 'music-2']);
  });

  it('forgets a room it left: no catch-up for it', async () => {
    makeClient();
    latest().open();
    latest().receive(room(1, 'music'));
    latest().receive(system('room_left', { room: 'music', action: 'left' }));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby', 'music'] }));
    await flush();
    expect(socket.frames().filter((f) => f.room === 'music')).toEqual([]);
  });

  it('catches up a room with no message seen from the server time it was joined', async () => {
    const { seen, gaps } = makeClient();
    latest().open();
    // The first frame gives the server's clock: the Lobby is followed from then.
    latest().receive({ ...system('rooms_list', { rooms: ['Lobby'] }), createTime: at(5) });
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    answerRecent(socket, range(2, 7));
    await flush();
    expect(seen).toEqual(['Lobby-5', 'Lobby-6', 'Lobby-7']);
    expect(gaps).toEqual([]);
  });

  it('keeps the held messages when the socket drops during a catch-up, and asks again after the next open', async () => {
    const { seen, gaps } = makeClient();
    latest().open();
    latest().receive(room(1));
    let socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    socket.receive(room(4));
    expect(socket.count('get_recent_messages')).toBe(1);
    socket = await reconnect(); // the answer never comes
    socket.receive(room(6));
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    expect(socket.last('get_recent_messages').payload).toEqual({ limit: 100 });
    answerRecent(socket, range(1, 5));
    await flush();
    expect(seen).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3', 'Lobby-4', 'Lobby-5', 'Lobby-6']);
    expect(gaps).toEqual([]);
  });

  it('reports request_failed when no answer comes in time, and releases the held messages', async () => {
    const { seen, gaps } = makeClient({ history: { timeoutMs: 1000 } });
    latest().open();
    latest().receive(room(1));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    socket.receive(room(5));
    await vi.advanceTimersByTimeAsync(1000);
    expect(gaps).toEqual([
      { room: 'Lobby', afterId: id(1), beforeId: id(5), reason: 'request_failed' },
    ]);
    expect(seen).toEqual(['Lobby-1', 'gap:Lobby', 'Lobby-5']);
  });

  it('does nothing after a reconnect with catchUp: false, beyond dropping duplicates', async () => {
    const { seen } = makeClient({ history: { catchUp: false } });
    latest().open();
    latest().receive(room(1));
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    socket.receive(room(1));
    socket.receive(room(5));
    await flush();
    expect(socket.count('get_recent_messages')).toBe(0);
    expect(seen).toEqual(['Lobby-1', 'Lobby-5']);
  });
});

describe('catching up direct conversations', () => {
  it('asks get_direct_messages for each partner at once, pages back, and merges own and incoming copies in order', async () => {
    const { seen, gaps } = makeClient({ history: { pageSize: 2 } });
    latest().open();
    latest().receive(direct(1, 'bob'));
    latest().receive(direct(2, 'bob', true));
    latest().receive(direct(1, 'carol', true));

    const socket = await reconnect();
    expect(socket.frames().filter((f) => f.type === 'get_direct_messages')).toEqual([
      {
        type: 'get_direct_messages',
        payload: { withUser: 'bob', limit: 2 },
        messageId: expect.any(String),
      },
      {
        type: 'get_direct_messages',
        payload: { withUser: 'carol', limit: 2 },
        messageId: expect.any(String),
      },
    ]);
    const bob = socket
      .frames()
      .find((f) => (f.payload as { withUser?: string })?.withUser === 'bob')!;
    const carol = socket
      .frames()
      .find((f) => (f.payload as { withUser?: string })?.withUser === 'carol')!;
    socket.receive(direct(6, 'bob')); // live: held
    const reply = (request: Record<string, unknown>, partner: string, messages: ChatMessage[]) =>
      socket.receive(
        system(
          'direct_messages',
          { withUser: partner, messages },
          { messageId: request.messageId },
        ),
      );
    reply(carol, 'carol', [direct(1, 'carol', true)]);
    reply(bob, 'bob', [direct(4, 'bob', true), direct(5, 'bob')]);
    await flush();
    expect(socket.last('get_direct_messages').payload).toEqual({
      withUser: 'bob',
      limit: 2,
      before: id(4),
    });
    answerDirect(socket, [direct(2, 'bob', true), direct(3, 'bob')]);
    await flush();
    answerDirect(socket, [direct(1, 'bob')]);
    await flush();

    expect(seen).toEqual([
      'dm-bob-1',
      'dm-bob-2',
      'dm-carol-1',
      'dm-bob-3',
      'dm-bob-4',
      'dm-bob-5',
      'dm-bob-6',
    ]);
    expect(gaps).toEqual([]);
  });

  it('reports a gap for a partner whose conversation expired', async () => {
    const { seen, gaps } = makeClient();
    latest().open();
    latest().receive(direct(1, 'bob'));
    const socket = await reconnect();
    answerDirect(socket, [direct(3, 'bob')]);
    await flush();
    expect(gaps).toEqual([
      { withUser: 'bob', afterId: id(1), beforeId: id(3), reason: 'history_incomplete' },
    ]);
    expect(seen).toEqual(['dm-bob-1', 'gap:bob', 'dm-bob-3']);
  });

  it('follows at most maxPartners partners, the least recently active forgotten first', async () => {
    makeClient({ history: { maxPartners: 2 } });
    latest().open();
    latest().receive(direct(1, 'bob'));
    latest().receive(direct(2, 'carol'));
    latest().receive(direct(3, 'bob'));
    latest().receive(direct(4, 'dave'));
    const socket = await reconnect();
    const partners = socket
      .frames()
      .filter((f) => f.type === 'get_direct_messages')
      .map((f) => (f.payload as { withUser: string }).withUser);
    expect(partners.sort()).toEqual(['bob', 'dave']);
  });
});

describe('loadHistory', () => {
  it('seeds a view before the socket opens: the last messages oldest first, then the live ones held meanwhile', async () => {
    const { client, seen } = makeClient();
    const loaded = client.loadHistory({ room: 'Lobby' }, { limit: 20 });
    latest().open();
    expect(latest().last('get_recent_messages')).toMatchObject({
      room: 'Lobby',
      payload: { limit: 20 },
    });
    latest().receive(room(4)); // live before the answer: after the history
    answerRecent(latest(), range(1, 3));
    await flush();
    expect(seen).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3', 'Lobby-4']);
    expect(contents(await loaded)).toEqual(['Lobby-1', 'Lobby-2', 'Lobby-3', 'Lobby-4']);

    // Followed from then on: caught up after a reconnect.
    const socket = await reconnect();
    socket.receive(system('rooms_list', { rooms: ['Lobby'] }));
    answerRecent(socket, range(3, 5));
    await flush();
    expect(seen.at(-1)).toBe('Lobby-5');
  });

  it('seeds a direct conversation with get_direct_messages', async () => {
    const { client, seen } = makeClient();
    latest().open();
    const loaded = client.loadHistory({ withUser: 'bob' });
    expect(latest().last('get_direct_messages').payload).toEqual({ withUser: 'bob', limit: 50 });
    answerDirect(latest(), [direct(1, 'bob'), direct(2, 'bob', true)]);
    await flush();
    expect(contents(await loaded)).toEqual(['dm-bob-1', 'dm-bob-2']);
    expect(seen).toEqual(['dm-bob-1', 'dm-bob-2']);
  });

  it('delivers only messages newer than those already delivered', async () => {
    const { client, seen } = makeClient();
    latest().open();
    latest().receive(room(3));
    const loaded = client.loadHistory({ room: 'Lobby' });
    answerRecent(latest(), range(1, 4));
    await flush();
    expect(contents(await loaded)).toEqual(['Lobby-4']);
    expect(seen).toEqual(['Lobby-3', 'Lobby-4']);
  });

  it('rejects when the client is closed before the socket opens', async () => {
    const { client } = makeClient();
    const loaded = client.loadHistory({ room: 'Lobby' });
    client.close();
    await expect(loaded).rejects.toThrow('client closed');
  });

  it('rejects when no answer comes (not in the room), and lets the held messages through', async () => {
    const { client, seen, gaps } = makeClient({ history: { timeoutMs: 500 } });
    latest().open();
    const loaded = client.loadHistory({ room: 'jazz' });
    const failed = expect(loaded).rejects.toThrow('no recent_messages reply');
    latest().receive(room(1, 'jazz'));
    await vi.advanceTimersByTimeAsync(500);
    await failed;
    expect(seen).toEqual(['jazz-1']);
    expect(gaps).toEqual([]);
  });
});

describe('history requests', () => {
  it('resolves getRecentMessages and getDirectMessages with the matching answer, which no handler sees', async () => {
    const { client } = makeClient();
    latest().open();
    const answers: string[] = [];
    client.on('recent_messages', () => answers.push('recent'));
    client.on('direct_messages', () => answers.push('direct'));
    const recent = client.getRecentMessages('Lobby', { limit: 2, before: id(9) });
    expect(latest().last('get_recent_messages')).toEqual({
      type: 'get_recent_messages',
      room: 'Lobby',
      payload: { limit: 2, before: id(9) },
      messageId: expect.any(String),
    });
    answerRecent(latest(), [room(7), room(8)]);
    expect(contents(await recent)).toEqual(['Lobby-8', 'Lobby-7']);

    const dms = client.getDirectMessages('bob');
    answerDirect(latest(), [direct(1, 'bob'), direct(2, 'bob')]);
    expect(contents(await dms)).toEqual(['dm-bob-1', 'dm-bob-2']);
    // An answer to someone else's request (the app's own messageId) still reaches handlers.
    latest().receive(
      system('recent_messages', { room: 'Lobby', messages: [] }, { messageId: 'mine' }),
    );
    expect(answers).toEqual(['recent']);
  });

  it('rejects when not connected, on timeout, and when the socket drops', async () => {
    const { client } = makeClient();
    await expect(client.getRecentMessages('Lobby')).rejects.toThrow('not connected');
    latest().open();
    const late = client.getDirectMessages('bob', { timeoutMs: 100 });
    const lateFails = expect(late).rejects.toThrow('no direct_messages reply');
    await vi.advanceTimersByTimeAsync(100);
    await lateFails;
    const cut = client.getRecentMessages('Lobby');
    latest().drop();
    await expect(cut).rejects.toThrow('disconnected');
  });

  it('rejects with the code of an error that names the request', async () => {
    const { client } = makeClient();
    latest().open();
    const refused = client.getRecentMessages('Elsewhere');
    const request = latest().last('get_recent_messages');
    latest().receive(
      system(
        'error',
        { error: 'You are not in that room.', code: 'not_in_room' },
        { messageId: request.messageId },
      ),
    );
    await expect(refused).rejects.toMatchObject({ name: 'RequestRefused', code: 'not_in_room' });
  });

  it('resolves getRoomMembers with room_members', async () => {
    const { client } = makeClient();
    latest().open();
    const members = client.getRoomMembers('Lobby');
    const request = latest().last('get_room_members');
    expect(request).toEqual({
      type: 'get_room_members',
      room: 'Lobby',
      messageId: expect.any(String),
    });
    latest().receive(
      system(
        'room_members',
        { room: 'Lobby', members: ['alice', 'bob'], count: 2 },
        { messageId: request.messageId },
      ),
    );
    await expect(members).resolves.toEqual({ room: 'Lobby', members: ['alice', 'bob'], count: 2 });
  });
});
