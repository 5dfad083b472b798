import { describe, it, expect, vi } from 'vitest';
import * as v from 'valibot';
import { CloseCode, SessionState } from '../../src/core/hub.ts';
import type { UserDirectory } from '../../src/core/seams.ts';
import {
  errorResponse,
  isSent,
  makeHub,
  mulberry32,
  refusal,
  type Sent,
  T0,
  type TestHub,
} from './hub-harness.ts';
import { SERVER_ONLY_TYPES } from '../fixtures/server-only-types.ts';

const NO_PEER_MESSAGE = 'No peer available at the moment. Please try again later.';

/** Opens each user on `${userId}#1` and clears the outbox. */
function connectAll(h: TestHub, ...users: string[]) {
  for (const user of users) expect(h.connect(user)).toStrictEqual({ accepted: true });
  h.take();
}

/** Pairs `requester` with `partner` (the only other available user) and clears the outbox. */
function pair(h: TestHub, requester: string, partner: string) {
  h.take();
  h.send(`${partner}#1`, { type: 'user_available_webrtc' });
  h.script(0);
  h.send(`${requester}#1`, { type: 'request_random_peer' });
  expect(h.to(`${requester}#1`)).toStrictEqual([
    expect.objectContaining({
      type: 'assign_role',
      payload: { role: 'impolite', peerId: partner },
    }),
  ]);
  h.take();
}

function roomsOf(h: TestHub, user: string, conn = `${user}#1`): unknown {
  h.take();
  h.send(conn, { type: 'get_rooms' });
  const [reply] = h.take();
  expect(reply).toBeDefined();
  return (reply as { msg: { payload: { rooms: unknown } } }).msg.payload.rooms;
}

describe('open', () => {
  it('puts a connection without ?room= in the default room "Lobby" and sends nothing', () => {
    const h = makeHub();
    expect(h.connect('alice')).toStrictEqual({ accepted: true });
    expect(h.outbox).toStrictEqual([]);
    expect(h.hub.state('alice#1')).toStrictEqual({
      userId: 'alice',
      rooms: ['Lobby'],
      available: false,
    });
    expect(h.hub.stats()).toStrictEqual({ connections: 1, rooms: 1, available: 0, pairs: 0 });
  });

  it('puts a connection with ?room= in that room only', () => {
    const h = makeHub();
    h.connect('alice', { room: 'music' });
    expect(h.hub.state('alice#1')?.rooms).toStrictEqual(['music']);
    expect(roomsOf(h, 'alice')).toStrictEqual(['music']);
  });
});

describe('chat_message to a room', () => {
  it('broadcasts to every member including the sender, with server-set fromUser and createTime and the client messageId', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r' });
    h.connect('bob', { room: 'r' });
    h.connect('carol', { room: 'elsewhere' });
    h.advance(1234);
    h.send('alice#1', {
      type: 'chat_message',
      room: 'r',
      fromUser: 'mallory',
      createTime: '1999-12-31T23:59:59Z',
      incoming: true,
      messageId: 'm-1',
      payload: { content: 'hi' },
    });
    const expected = {
      type: 'chat_message',
      fromUser: 'alice',
      room: 'r',
      payload: { content: 'hi' },
      messageId: 'm-1',
      createTime: new Date(T0 + 1234).toISOString(),
      // The first message of its millisecond: the server id is that millisecond times 1000.
      id: String((T0 + 1234) * 1000).padStart(16, '0'),
    };
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expected },
      { conn: 'bob#1', msg: expected },
    ]);
  });

  it('stamps createTime as new Date(now).toISOString() at the moment of routing', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r' });
    h.setTime(Date.UTC(2030, 0, 1, 0, 0, 0, 7));
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'x' } });
    expect(h.to('alice#1')).toStrictEqual([
      expect.objectContaining({ createTime: '2030-01-01T00:00:00.007Z' }),
    ]);
    h.take();
    // RFC 3339 with milliseconds (DECISIONS.md), even on a whole second.
    h.setTime(Date.UTC(2030, 0, 1, 12, 0, 0, 0));
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'y' } });
    expect(h.to('alice#1')).toStrictEqual([
      expect.objectContaining({ createTime: '2030-01-01T12:00:00.000Z' }),
    ]);
  });

  it('relays extra payload fields next to content', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r' });
    h.send('alice#1', {
      type: 'chat_message',
      room: 'r',
      payload: { content: 'x', format: 'md', meta: { n: [1, 2] } },
    });
    expect(h.to('alice#1')).toStrictEqual([
      expect.objectContaining({ payload: { content: 'x', format: 'md', meta: { n: [1, 2] } } }),
    ]);
  });

  it('refuses a room the sender has not joined with error not_in_room and tells no member', () => {
    const h = makeHub();
    h.connect('alice', { room: 'a' });
    h.connect('bob', { room: 'r' });
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'let me in' } });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'error',
          fromUser: 'system',
          toUser: 'alice',
          payload: { error: 'You are not in that room. Join the room first.', code: 'not_in_room' },
          createTime: h.iso(),
        },
      },
    ]);
  });

  it('refuses a room that does not exist with not_in_room', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'chat_message', room: 'nowhere', payload: { content: 'x' } });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'not_in_room', h.iso()) },
    ]);
  });
});

describe('chat_message to a user', () => {
  it('delivers incoming:true to the recipient and an incoming:false copy to the sender', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob', 'carol');
    h.send('alice#1', {
      type: 'chat_message',
      toUser: 'bob',
      fromUser: 'carol',
      createTime: '2000-01-01T00:00:00Z',
      incoming: false,
      messageId: 'dm-1',
      payload: { content: 'psst' },
    });
    const base = {
      type: 'chat_message',
      fromUser: 'alice',
      toUser: 'bob',
      payload: { content: 'psst' },
      messageId: 'dm-1',
      createTime: h.iso(),
      id: String(Date.parse(h.iso()) * 1000).padStart(16, '0'),
    };
    expect(h.take()).toStrictEqual([
      { conn: 'bob#1', msg: { ...base, incoming: true } },
      { conn: 'alice#1', msg: { ...base, incoming: false } },
    ]);
  });

  it('refuses an unknown recipient with error user_not_found', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'chat_message', toUser: 'ghost', payload: { content: 'hello?' } });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'user_not_found', h.iso()) },
    ]);
  });

  it('answers a chat with both room and toUser with error_response invalid_message and delivers nothing', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', {
      type: 'chat_message',
      room: 'Lobby',
      toUser: 'bob',
      payload: { content: 'x' },
    });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
  });

  it('answers a chat with neither room nor toUser with error_response invalid_message', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'chat_message', payload: { content: 'x' } });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
  });
});

describe('chat content length', () => {
  const chat = (content: string) => ({ type: 'chat_message', room: 'Lobby', payload: { content } });

  it('accepts 4096 emoji (8192 UTF-16 units) because the limit counts code points', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    const content = '😀'.repeat(4096);
    expect(content.length).toBe(8192);
    h.send('alice#1', chat(content));
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: expect.objectContaining({ type: 'chat_message', payload: { content } }),
      },
    ]);
  });

  it('accepts exactly 4096 ASCII characters', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', chat('a'.repeat(4096)));
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'chat_message' }) },
    ]);
  });

  it.each([
    ['4097 ASCII characters', 'a'.repeat(4097)],
    ['4097 emoji', '😀'.repeat(4097)],
    ['an empty string', ''],
  ])('rejects content of %s with invalid_message naming payload.content', (_label, content) => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', chat(content));
    const out = h.take();
    expect(out).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
    expect((out[0] as { msg: { payload: { details: string } } }).msg.payload.details).toContain(
      'payload.content',
    );
  });
});

describe('rooms', () => {
  it('answers join_room with room_joined {room, action:"joined"} and starts receiving that room', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', { type: 'join_room', room: 'music', messageId: 'j1' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'room_joined',
          fromUser: 'system',
          toUser: 'alice',
          room: 'music',
          payload: { room: 'music', action: 'joined' },
          messageId: 'j1',
          createTime: h.iso(),
        },
      },
    ]);
    h.send('bob#1', { type: 'join_room', room: 'music' });
    h.take();
    h.send('bob#1', { type: 'chat_message', room: 'music', payload: { content: 'tune' } });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['alice#1', 'bob#1']);
  });

  it('answers a repeated join_room with room_joined again without joining twice', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'join_room', room: 'music' });
    h.take();
    h.send('alice#1', { type: 'join_room', room: 'music' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: expect.objectContaining({
          type: 'room_joined',
          payload: { room: 'music', action: 'joined' },
        }),
      },
    ]);
    expect(roomsOf(h, 'alice')).toStrictEqual(['Lobby', 'music']);
    h.send('alice#1', { type: 'chat_message', room: 'music', payload: { content: 'once' } });
    expect(h.take()).toHaveLength(1);
    expect(h.hub.stats().rooms).toBe(2);
  });

  it('answers leave_room with room_left {room, action:"left"} and stops delivering that room', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r' });
    h.connect('bob', { room: 'r' });
    h.send('alice#1', { type: 'leave_room', room: 'r', messageId: 'l1' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'room_left',
          fromUser: 'system',
          toUser: 'alice',
          room: 'r',
          payload: { room: 'r', action: 'left' },
          messageId: 'l1',
          createTime: h.iso(),
        },
      },
    ]);
    h.send('bob#1', { type: 'chat_message', room: 'r', payload: { content: 'anyone?' } });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['bob#1']);
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'back?' } });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'not_in_room', h.iso()) },
    ]);
  });

  it('answers leave_room for a room not joined with room_left, as the spec lists, and changes nothing', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'leave_room', room: 'never', messageId: 'l1' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'room_left',
          fromUser: 'system',
          toUser: 'alice',
          room: 'never',
          payload: { room: 'never', action: 'left' },
          messageId: 'l1',
          createTime: h.iso(),
        },
      },
    ]);
    expect(roomsOf(h, 'alice')).toStrictEqual(['Lobby']);
    expect(h.hub.stats().rooms).toBe(1);
  });

  it('deletes a room when its last member leaves', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r' });
    h.connect('bob', { room: 'r' });
    h.send('alice#1', { type: 'join_room', room: 'solo' });
    expect(h.hub.stats().rooms).toBe(2);
    h.send('alice#1', { type: 'leave_room', room: 'solo' });
    expect(h.hub.stats().rooms).toBe(1);
    h.send('alice#1', { type: 'leave_room', room: 'r' });
    expect(h.hub.stats().rooms).toBe(1);
    h.send('bob#1', { type: 'leave_room', room: 'r' });
    expect(h.hub.stats().rooms).toBe(0);
  });

  it('lists rooms with get_rooms in join order', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    for (const room of ['zeta', 'alpha', 'mid']) h.send('alice#1', { type: 'join_room', room });
    h.send('alice#1', { type: 'leave_room', room: 'alpha' });
    h.send('alice#1', { type: 'join_room', room: 'alpha' });
    h.take();
    h.send('alice#1', { type: 'get_rooms', messageId: 'g1' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'rooms_list',
          fromUser: 'system',
          toUser: 'alice',
          payload: { rooms: ['Lobby', 'zeta', 'mid', 'alpha'] },
          messageId: 'g1',
          createTime: h.iso(),
        },
      },
    ]);
  });

  it('lists an empty array after leaving every room', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'leave_room', room: 'Lobby' });
    expect(roomsOf(h, 'alice')).toStrictEqual([]);
  });

  it('refuses a join beyond maxRoomsPerConnection with too_many_rooms, still answers a re-join, and allows a join after a leave', () => {
    const h = makeHub({ maxRoomsPerConnection: 3 });
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'join_room', room: 'two' });
    h.send('alice#1', { type: 'join_room', room: 'three' });
    h.take();
    h.send('alice#1', { type: 'join_room', room: 'four' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'too_many_rooms', h.iso()) },
    ]);
    expect(h.hub.stats().rooms).toBe(3);
    h.send('alice#1', { type: 'join_room', room: 'two' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'room_joined', room: 'two' }) },
    ]);
    h.send('alice#1', { type: 'leave_room', room: 'Lobby' });
    h.send('alice#1', { type: 'join_room', room: 'four' });
    expect(roomsOf(h, 'alice')).toStrictEqual(['two', 'three', 'four']);
  });

  it.each([
    ['longer than 64 characters', 'r'.repeat(65)],
    ['with a control character', 'bad\u0007room'],
    ['empty', ''],
  ])('rejects a room name %s with invalid_message naming room', (_label, room) => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'join_room', room });
    const out = h.take();
    expect(out).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
    expect((out[0] as { msg: { payload: { details: string } } }).msg.payload.details).toMatch(
      /^room\b/,
    );
    expect(h.hub.stats().rooms).toBe(1);
  });
});

describe('error_response', () => {
  it('answers invalid JSON with error_response invalid_json addressed to the sender, and keeps the socket open', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.raw('alice#1', '{"type": "chat_message",');
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_json', h.iso()) },
    ]);
    h.send('alice#1', { type: 'get_rooms' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'rooms_list' }) },
    ]);
  });

  it('gives every error_response a unique messageId starting with "err-"', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    for (let i = 0; i < 5; i++) h.raw('alice#1', 'nope');
    h.raw('bob#1', 'nope');
    h.advance(1);
    h.hub.binary('alice#1');
    h.send('alice#1', { type: 'no_such_type' });
    const ids = h.take().map((item) => (item as { msg: { messageId: string } }).msg.messageId);
    expect(ids).toHaveLength(8);
    for (const id of ids) expect(id).toMatch(/^err-/);
    expect(new Set(ids).size).toBe(8);
  });

  it('refuses JSON nested deeper than 32 levels with invalid_json', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    // Envelope (1) + payload (2) + 31 arrays = 33 levels.
    const deep = `{"type":"chat_message","room":"Lobby","payload":{"content":"x","deep":${'['.repeat(31)}${']'.repeat(31)}}}`;
    h.raw('alice#1', deep);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_json', h.iso()) },
    ]);
  });

  it('accepts and relays JSON nested exactly 32 levels deep', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    const deep = `{"type":"chat_message","room":"Lobby","payload":{"content":"x","deep":${'['.repeat(30)}${']'.repeat(30)}}}`;
    h.raw('alice#1', deep);
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: expect.objectContaining({ type: 'chat_message', payload: JSON.parse(deep).payload }),
      },
    ]);
  });

  it('refuses a 50k-deep frame with invalid_json without throwing', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    expect(() => h.raw('alice#1', '['.repeat(50_000) + ']'.repeat(50_000))).not.toThrow();
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_json', h.iso()) },
    ]);
  });

  it.each([['42'], ['"chat_message"'], ['null'], ['true'], ['[]'], ['[{"type":"get_rooms"}]']])(
    'answers the non-object JSON %s with invalid_message',
    (text) => {
      const h = makeHub();
      connectAll(h, 'alice');
      h.raw('alice#1', text);
      expect(h.take()).toStrictEqual([
        { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
      ]);
    },
  );

  it.each([
    ['missing', { payload: {} }],
    ['a number', { type: 7 }],
    ['null', { type: null }],
  ])('answers a type that is %s with invalid_message', (_label, msg) => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', msg);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
  });

  it.each([['dance'], ['error_response'], ['assign_role'], ['__proto__'], ['toString'], ['']])(
    'answers the unknown type %j with unknown_type',
    (type) => {
      const h = makeHub();
      connectAll(h, 'alice');
      h.send('alice#1', { type });
      expect(h.take()).toStrictEqual([
        { conn: 'alice#1', msg: errorResponse('alice', 'unknown_type', h.iso()) },
      ]);
    },
  );

  const MARK = 'Zq9MARKq9Z';
  it.each<[string, object, string, string]>([
    [
      'a number as chat content',
      { type: 'chat_message', room: 'Lobby', payload: { content: 987654321 } },
      'payload.content',
      '987654321',
    ],
    ['a missing chat payload', { type: 'chat_message', room: 'Lobby' }, 'payload', MARK],
    ['a number as room', { type: 'join_room', room: 31337313 }, 'room', '31337313'],
    ['a room with a control character', { type: 'join_room', room: `${MARK}\u0001` }, 'room', MARK],
    ['an over-long room', { type: 'leave_room', room: MARK.repeat(7) }, 'room', MARK],
    [
      'a bad session description type',
      { type: 'webrtc_offer', toUser: 'bob', payload: { type: MARK, sdp: 'v=0' } },
      'payload.type',
      MARK,
    ],
    [
      'a number as sdp',
      { type: 'webrtc_answer', toUser: 'bob', payload: { type: 'answer', sdp: 123456789 } },
      'payload.sdp',
      '123456789',
    ],
    [
      'a number as candidate',
      { type: 'webrtc_candidate', toUser: 'bob', payload: { candidate: 4242424242 } },
      'payload.candidate',
      '4242424242',
    ],
    [
      'a negative sdpMLineIndex',
      {
        type: 'webrtc_candidate',
        toUser: 'bob',
        payload: { candidate: 'c', sdpMLineIndex: -77777 },
      },
      'payload.sdpMLineIndex',
      '77777',
    ],
    ['a number as toUser', { type: 'hangup', toUser: 55555555 }, 'toUser', '55555555'],
    [
      'an over-long messageId',
      { type: 'get_rooms', messageId: MARK.repeat(20) },
      'messageId',
      MARK,
    ],
    [
      'a number as currentPeerId',
      { type: 'request_random_peer', payload: { currentPeerId: 88888888 } },
      'payload.currentPeerId',
      '88888888',
    ],
    [
      'a string as incoming',
      { type: 'chat_message', room: 'Lobby', incoming: MARK, payload: { content: 'x' } },
      'incoming',
      MARK,
    ],
    [
      'an array as payload',
      { type: 'webrtc_offer', toUser: 'bob', payload: [MARK] },
      'payload',
      MARK,
    ],
  ])(
    'answers %s with invalid_message whose details name the field and never echo the input',
    (_label, msg, path, secret) => {
      const h = makeHub();
      connectAll(h, 'alice', 'bob');
      h.send('alice#1', msg);
      const out = h.take();
      expect(out).toStrictEqual([
        { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
      ]);
      const details = (out[0] as { msg: { payload: { details: string } } }).msg.payload.details;
      expect(details).toContain(path);
      expect(details).not.toContain(secret);
    },
  );

  it('answers a binary frame with error_response binary_not_supported', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.hub.binary('alice#1');
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'binary_not_supported', h.iso()) },
    ]);
  });

  it('never closes the socket over a bad frame', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.raw('alice#1', '}{');
    h.send('alice#1', { type: 'nope' });
    h.send('alice#1', { type: 'join_room' });
    h.hub.binary('alice#1');
    const out = h.take();
    expect(out.map((item) => ('msg' in item ? item.msg.payload.code : item))).toStrictEqual([
      'invalid_json',
      'unknown_type',
      'invalid_message',
      'binary_not_supported',
    ]);
    expect(h.hub.stats().connections).toBe(1);
  });

  it('does not let __proto__ or constructor keys in a frame pollute Object.prototype', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    const text =
      '{"type":"chat_message","room":"Lobby","__proto__":{"polluted":"yes"},' +
      '"payload":{"content":"hi","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}}}}';
    h.raw('alice#1', text);
    h.raw(
      'alice#1',
      '{"type":"webrtc_offer","toUser":"bob","payload":{"sdp":"v=0","__proto__":{"polluted":"yes"}}}',
    );
    h.raw('alice#1', '{"__proto__":{"type":"get_rooms"}}');
    const probe: Record<string, unknown> = {};
    expect(probe.polluted).toBeUndefined();
    expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
    const out = h.take();
    const chats = out.filter((item) => 'msg' in item && item.msg.type === 'chat_message');
    expect(chats).toHaveLength(2);
    for (const item of chats) {
      const { payload } = (item as { msg: { payload: Record<string, unknown> } }).msg;
      expect(payload.content).toBe('hi');
      expect(payload.polluted).toBeUndefined();
    }
    // The object whose only key is __proto__ has no own `type`.
    expect(out.at(-1)).toStrictEqual({
      conn: 'alice#1',
      msg: errorResponse('alice', 'invalid_message', h.iso()),
    });
  });
});

describe('matching', () => {
  it('answers request_random_peer with no_peer_available and the spec message when nobody is available', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'no_peer_available',
          fromUser: 'system',
          toUser: 'alice',
          payload: { message: NO_PEER_MESSAGE },
          createTime: h.iso(),
        },
      },
    ]);
  });

  it('answers no_peer_available when the only available user is the requester', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'user_available_webrtc' });
    h.send('alice#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
  });

  it('answers no_peer_available when the only available user is currentPeerId', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('bob#1', { type: 'user_available_webrtc' });
    h.send('alice#1', { type: 'request_random_peer', payload: { currentPeerId: 'bob' } });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
    expect(h.hub.stats().available).toBe(1);
  });

  it('sends assign_role impolite to the requester and polite to the partner with mutual peerIds, without the requester declaring availability', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('bob#1', { type: 'user_available_webrtc' });
    h.script(0.5);
    h.send('alice#1', { type: 'request_random_peer', payload: {} });
    // The partner is told in the same step as it is paired (see UserDirectory.pair), then the
    // requester.
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: {
          type: 'assign_role',
          fromUser: 'system',
          toUser: 'bob',
          payload: { role: 'polite', peerId: 'alice' },
          createTime: h.iso(),
        },
      },
      {
        conn: 'alice#1',
        msg: {
          type: 'assign_role',
          fromUser: 'system',
          toUser: 'alice',
          payload: { role: 'impolite', peerId: 'bob' },
          createTime: h.iso(),
        },
      },
    ]);
    expect(h.unusedRandom).toBe(0);
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 1, available: 0, pairs: 1 });
    expect(h.hub.state('alice#1')).toStrictEqual({
      userId: 'alice',
      rooms: ['Lobby'],
      available: false,
      partner: 'bob',
    });
    expect(h.hub.state('bob#1')).toStrictEqual({
      userId: 'bob',
      rooms: ['Lobby'],
      available: false,
      partner: 'alice',
    });
  });

  it('takes both matched users out of the pool so a third requester finds nobody', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob', 'carol');
    h.send('alice#1', { type: 'user_available_webrtc' });
    h.send('bob#1', { type: 'user_available_webrtc' });
    expect(h.hub.stats().available).toBe(2);
    h.script(0);
    h.send('alice#1', { type: 'request_random_peer' });
    expect(h.hub.stats().available).toBe(0);
    h.take();
    h.send('carol#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      { conn: 'carol#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
  });

  it("keeps the messageId of request_random_peer on the requester's answer", () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', { type: 'request_random_peer', messageId: 'q1' });
    expect(h.to('alice#1')).toStrictEqual([
      expect.objectContaining({ type: 'no_peer_available', messageId: 'q1' }),
    ]);
    h.take();
    h.send('bob#1', { type: 'user_available_webrtc' });
    h.script(0);
    h.send('alice#1', { type: 'request_random_peer', messageId: 'q2' });
    expect(h.to('alice#1')).toStrictEqual([
      expect.objectContaining({ type: 'assign_role', messageId: 'q2' }),
    ]);
  });

  it('never picks the requester or currentPeerId, and picks each other candidate for an equal slice of [0,1)', () => {
    const counts: Record<string, number> = {};
    const steps = 30;
    for (let i = 0; i < steps; i++) {
      const h = makeHub();
      connectAll(h, 'alice', 'bob', 'carol', 'dave', 'erin');
      // The requester and currentPeerId are in the pool too, between the candidates.
      for (const user of ['bob', 'alice', 'carol', 'dave', 'erin'])
        h.send(`${user}#1`, { type: 'user_available_webrtc' });
      h.script(i / steps);
      h.send('alice#1', { type: 'request_random_peer', payload: { currentPeerId: 'carol' } });
      const [answer] = h.to('alice#1') as { type: string; payload: { peerId: string } }[];
      expect(answer?.type).toBe('assign_role');
      const peer = answer!.payload.peerId;
      counts[peer] = (counts[peer] ?? 0) + 1;
    }
    expect(counts).toStrictEqual({ bob: 10, dave: 10, erin: 10 });
  });

  it('picks uniformly: scripted random stepping through [0,1) gives each of 3 candidates the same count', () => {
    const counts: Record<string, number> = {};
    const steps = 30;
    for (let i = 0; i < steps; i++) {
      const h = makeHub();
      connectAll(h, 'req', 'a', 'b', 'c');
      for (const user of ['a', 'b', 'c']) h.send(`${user}#1`, { type: 'user_available_webrtc' });
      h.script((i + 0.5) / steps);
      h.send('req#1', { type: 'request_random_peer' });
      const [answer] = h.to('req#1') as { payload: { peerId: string } }[];
      const peer = answer!.payload.peerId;
      counts[peer] = (counts[peer] ?? 0) + 1;
    }
    expect(counts).toStrictEqual({ a: 10, b: 10, c: 10 });
  });

  it('picks uniformly with a seeded Math.random-like source: each of 3 candidates gets 1000 ± 100 of 3000 draws', () => {
    const h = makeHub();
    connectAll(h, 'req', 'a', 'b', 'c');
    for (const user of ['a', 'b', 'c']) h.send(`${user}#1`, { type: 'user_available_webrtc' });
    h.useRandom(mulberry32(0xa1ea7));
    const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 3000; i++) {
      h.take();
      h.send('req#1', { type: 'request_random_peer' });
      const [answer] = h.to('req#1') as { type: string; payload: { peerId: string } }[];
      expect(answer?.type).toBe('assign_role');
      const peer = answer!.payload.peerId;
      counts[peer] = (counts[peer] ?? 0) + 1;
      // The partner comes back to the pool for the next draw.
      h.send(`${peer}#1`, { type: 'user_available_webrtc' });
    }
    expect(Object.keys(counts).sort()).toStrictEqual(['a', 'b', 'c']);
    for (const count of Object.values(counts)) {
      expect(count).toBeGreaterThanOrEqual(900);
      expect(count).toBeLessThanOrEqual(1100);
    }
  });

  it('removes a user from the pool on user_unavailable_webrtc', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('bob#1', { type: 'user_available_webrtc' });
    h.send('bob#1', { type: 'user_available_webrtc' });
    expect(h.hub.stats().available).toBe(1);
    expect(h.hub.state('bob#1')?.available).toBe(true);
    h.send('bob#1', { type: 'user_unavailable_webrtc' });
    expect(h.hub.stats().available).toBe(0);
    expect(h.hub.state('bob#1')?.available).toBe(false);
    h.take();
    h.send('alice#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
  });

  it('ends the requester\'s old pair on a re-match: the old partner gets hangup {reason:"peer_left"}', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob', 'carol');
    pair(h, 'alice', 'bob');
    h.send('carol#1', { type: 'user_available_webrtc' });
    h.script(0);
    h.send('alice#1', { type: 'request_random_peer', payload: { currentPeerId: 'bob' } });
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: {
          type: 'hangup',
          fromUser: 'alice',
          toUser: 'bob',
          payload: { reason: 'peer_left' },
          createTime: h.iso(),
        },
      },
      {
        conn: 'carol#1',
        msg: expect.objectContaining({
          type: 'assign_role',
          payload: { role: 'polite', peerId: 'alice' },
        }),
      },
      {
        conn: 'alice#1',
        msg: expect.objectContaining({
          type: 'assign_role',
          payload: { role: 'impolite', peerId: 'carol' },
        }),
      },
    ]);
    expect(h.hub.stats().pairs).toBe(1);
    expect(h.hub.state('bob#1')?.partner).toBeUndefined();
    // bob is no longer anyone's partner: his disconnect tells nobody.
    h.hub.close('bob#1');
    expect(h.take()).toStrictEqual([]);
  });

  it("ends at once a pairing older than the user's current pair (two pairings crossing between processes)", () => {
    let local: UserDirectory | undefined;
    const h = makeHub({}, { seams: { users: (users) => (local = users) } });
    connectAll(h, 'alice', 'bob', 'carol');
    pair(h, 'alice', 'bob');
    // Carol's match with bob was made first (number 0): carol holds it already, bob's process
    // hears of it only now, after bob's own later match with alice.
    local!.pair(
      'carol',
      'bob',
      JSON.stringify({
        type: 'assign_role',
        fromUser: 'system',
        toUser: 'carol',
        payload: { role: 'impolite', peerId: 'bob' },
        createTime: h.iso(),
      }),
      0,
    );
    h.take();
    const announce = JSON.stringify({
      type: 'assign_role',
      fromUser: 'system',
      toUser: 'bob',
      payload: { role: 'polite', peerId: 'carol' },
      createTime: h.iso(),
    });
    expect(local!.pair('bob', 'carol', announce, 0)).toBe(true);
    expect(h.take()).toStrictEqual([
      {
        conn: 'carol#1',
        msg: {
          type: 'hangup',
          fromUser: 'bob',
          toUser: 'carol',
          payload: { reason: 'peer_left' },
          createTime: h.iso(),
        },
      },
    ]);
    expect(h.hub.state('bob#1')?.partner).toBe('alice');
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
    // A newer match than bob's current one holds: alice hears bob left.
    expect(local!.pair('bob', 'carol', announce, 2)).toBe(true);
    expect(h.take().map((m) => [m.conn, (m as { msg: { type: string } }).msg.type])).toStrictEqual([
      ['alice#1', 'hangup'],
      ['bob#1', 'assign_role'],
    ]);
  });

  it('tells a user of a preempting match once, even when its pairing arrives after a later preemption', async () => {
    // Pat's requests each find that someone else's take drew pat just before (`preempted`): pat
    // hears of that match at once and leaves it. The pairing messages of those matches come from
    // the requesters' processes, late; the first one comes after pat's second preemption.
    const takes = [
      { userId: 'quinn', since: T0, match: 6, preempted: { by: 'rex', match: 5 } },
      { userId: 'sam', since: T0, match: 9, preempted: { by: 'tess', match: 8 } },
    ];
    const remote = new Set(['quinn', 'rex', 'sam', 'tess']);
    const pairings: Array<() => void> = [];
    let local: UserDirectory | undefined;
    const h = makeHub(
      {},
      {
        seams: {
          users: (users) => {
            local = users;
            return {
              deliver: (...args) => users.deliver(...args),
              pair: (userId, partner, announce, match) =>
                remote.has(userId)
                  ? new Promise<boolean>((resolve) => pairings.push(() => resolve(true)))
                  : users.pair(userId, partner, announce, match),
              endPair: (userId, former, hangup) =>
                remote.has(userId) ? undefined : users.endPair(userId, former, hangup),
            };
          },
          pool: (pool) => ({
            get size() {
              return pool.size;
            },
            has: (userId) => pool.has(userId),
            add: (userId, since) => pool.add(userId, since),
            delete: (userId) => pool.delete(userId),
            take: () => Promise.resolve(takes.shift()),
          }),
        },
      },
    );
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    const roles = () =>
      h
        .take()
        .filter((item): item is Sent => 'msg' in item && item.msg.type === 'assign_role')
        .map(({ msg }) => `${msg.payload.role} ${msg.payload.peerId}`);
    const announce = (by: string) =>
      JSON.stringify({
        type: 'assign_role',
        fromUser: 'system',
        toUser: 'pat',
        payload: { role: 'polite', peerId: by },
        createTime: h.iso(),
      });
    connectAll(h, 'pat');
    h.send('pat#1', { type: 'request_random_peer', messageId: 'q1' });
    await tick();
    pairings.shift()!();
    await tick();
    expect(roles()).toStrictEqual(['polite rex', 'impolite quinn']);
    h.send('pat#1', { type: 'request_random_peer', messageId: 'q2' });
    await tick();
    // Pat's second match is still being settled with sam's process when rex's pairing (match 5)
    // arrives, and then tess's (match 8): pat heard of both already.
    expect(local!.pair('pat', 'rex', announce('rex'), 5)).toBe(true);
    expect(local!.pair('pat', 'tess', announce('tess'), 8)).toBe(true);
    pairings.shift()!();
    await tick();
    expect(roles()).toStrictEqual(['polite tess', 'impolite sam']);
    expect(h.hub.state('pat#1')?.partner).toBe('sam');
  });

  it('ends the chosen partner\'s old pair on a match: its old partner gets hangup {reason:"peer_left"}', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'carol', 'dave');
    pair(h, 'carol', 'dave');
    h.send('carol#1', { type: 'user_available_webrtc' });
    h.script(0);
    h.send('alice#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'dave#1',
        msg: {
          type: 'hangup',
          fromUser: 'carol',
          toUser: 'dave',
          payload: { reason: 'peer_left' },
          createTime: h.iso(),
        },
      },
      {
        conn: 'carol#1',
        msg: expect.objectContaining({
          type: 'assign_role',
          payload: { role: 'polite', peerId: 'alice' },
        }),
      },
      {
        conn: 'alice#1',
        msg: expect.objectContaining({
          type: 'assign_role',
          payload: { role: 'impolite', peerId: 'carol' },
        }),
      },
    ]);
    expect(h.hub.stats().pairs).toBe(1);
    h.hub.close('dave#1');
    expect(h.take()).toStrictEqual([]);
    h.hub.close('carol#1');
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'hangup',
          fromUser: 'carol',
          toUser: 'alice',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
  });
});

describe('signaling relay', () => {
  const offerPayload = {
    type: 'offer',
    sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n',
    extra: { nested: [1, 'two'] },
  };
  const answerPayload = { type: 'answer', sdp: 'v=0\r\n', vendor: 'x' };

  it.each<[string, Record<string, unknown>]>([
    ['webrtc_offer', offerPayload],
    ['webrtc_answer', answerPayload],
    [
      'webrtc_candidate',
      {
        candidate: {
          candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host',
          sdpMid: '0',
          sdpMLineIndex: 0,
          usernameFragment: 'uf',
        },
      },
    ],
    [
      'webrtc_candidate',
      {
        candidate: 'candidate:2 1 udp 1686052607 203.0.113.7 3478 typ srflx',
        sdpMid: '0',
        sdpMLineIndex: 1,
        usernameFragment: 'uf',
        extra: true,
      },
    ],
    ['webrtc_candidate', { candidate: null }],
    ['hangup', { reason: 'user_clicked', note: 'bye' }],
  ])(
    'relays %s to toUser with server fromUser and createTime and the payload preserved (%j)',
    (type, payload) => {
      const h = makeHub();
      connectAll(h, 'alice', 'bob');
      h.advance(42);
      h.send('alice#1', {
        type,
        toUser: 'bob',
        fromUser: 'mallory',
        createTime: '2001-01-01T00:00:00Z',
        messageId: 'sig-1',
        payload,
      });
      expect(h.take()).toStrictEqual([
        {
          conn: 'bob#1',
          msg: {
            type,
            fromUser: 'alice',
            toUser: 'bob',
            payload,
            messageId: 'sig-1',
            createTime: new Date(T0 + 42).toISOString(),
          },
        },
      ]);
    },
  );

  it('relays a hangup without payload as a hangup without payload', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', { type: 'hangup', toUser: 'bob' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: { type: 'hangup', fromUser: 'alice', toUser: 'bob', createTime: h.iso() },
      },
    ]);
  });

  it.each([
    ['webrtc_offer', offerPayload],
    ['webrtc_answer', answerPayload],
    ['webrtc_candidate', { candidate: null }],
    ['hangup', {}],
  ])('refuses %s to an unknown recipient with error user_not_found', (type, payload) => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.send('alice#1', { type, toUser: 'ghost', payload });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'user_not_found', h.iso()) },
    ]);
  });

  it('ends the pair on hangup, so a later disconnect of one side does not send peer_disconnected to the other', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    pair(h, 'alice', 'bob');
    h.send('alice#1', { type: 'hangup', toUser: 'bob' });
    expect(h.hub.stats().pairs).toBe(0);
    expect(h.hub.state('alice#1')?.partner).toBeUndefined();
    expect(h.hub.state('bob#1')?.partner).toBeUndefined();
    h.take();
    h.hub.close('alice#1');
    expect(h.take()).toStrictEqual([]);
  });

  it.each<[string, unknown]>([
    ['webrtc_offer', { type: 'offer', sdp: 'v=0' }],
    ['webrtc_answer', { type: 'answer', sdp: 'v=0' }],
    ['webrtc_candidate', { candidate: 'candidate:1 1 udp 1 192.0.2.1 1 typ host' }],
  ])('keeps the pair when a user relays %s to its partner', (type, payload) => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    pair(h, 'alice', 'bob');
    h.send('alice#1', { type, toUser: 'bob', payload });
    expect(h.hub.stats().pairs).toBe(1);
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
    expect(h.hub.state('bob#1')?.partner).toBe('alice');
  });

  it('keeps the pair when a user sends hangup to someone who is not its partner', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob', 'carol');
    pair(h, 'alice', 'bob');
    h.send('alice#1', { type: 'hangup', toUser: 'carol' });
    expect(h.hub.stats().pairs).toBe(1);
    h.take();
    h.hub.close('alice#1');
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: {
          type: 'hangup',
          fromUser: 'alice',
          toUser: 'bob',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
  });
});

describe('disconnect', () => {
  it('sends the partner hangup with fromUser = the departed user and payload {reason:"peer_disconnected"}', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob', 'carol');
    pair(h, 'alice', 'bob');
    h.advance(5000);
    h.hub.close('bob#1');
    expect(h.take()).toStrictEqual([
      {
        conn: 'alice#1',
        msg: {
          type: 'hangup',
          fromUser: 'bob',
          toUser: 'alice',
          payload: { reason: 'peer_disconnected' },
          createTime: new Date(T0 + 5000).toISOString(),
        },
      },
    ]);
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 1, available: 0, pairs: 0 });
    expect(h.hub.state('alice#1')?.partner).toBeUndefined();
  });

  it('removes the user from the pool and from its rooms, deleting rooms left empty', () => {
    const h = makeHub();
    h.connect('alice', { room: 'shared' });
    h.connect('bob', { room: 'shared' });
    h.send('alice#1', { type: 'join_room', room: 'alone' });
    h.send('alice#1', { type: 'user_available_webrtc' });
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 2, available: 1, pairs: 0 });
    h.hub.close('alice#1');
    expect(h.hub.stats()).toStrictEqual({ connections: 1, rooms: 1, available: 0, pairs: 0 });
    expect(h.hub.state('alice#1')).toBeUndefined();
    h.take();
    h.send('bob#1', { type: 'chat_message', room: 'shared', payload: { content: 'x' } });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['bob#1']);
    h.send('bob#1', { type: 'chat_message', toUser: 'alice', payload: { content: 'x' } });
    expect(h.take()).toStrictEqual([
      { conn: 'bob#1', msg: refusal('bob', 'user_not_found', h.iso()) },
    ]);
    h.send('bob#1', { type: 'request_random_peer' });
    expect(h.take()).toStrictEqual([
      { conn: 'bob#1', msg: expect.objectContaining({ type: 'no_peer_available' }) },
    ]);
  });

  it('ignores a close of an unknown or already closed connection', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    pair(h, 'alice', 'bob');
    h.hub.close('nobody');
    h.hub.close('bob#1');
    h.take();
    h.hub.close('bob#1');
    expect(h.take()).toStrictEqual([]);
    expect(h.hub.stats().connections).toBe(1);
  });

  it('frees the userId, so a new connection without a token is accepted afterwards', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    h.hub.close('alice#1');
    expect(h.connect('alice', { conn: 'alice#2' })).toStrictEqual({ accepted: true });
  });
});

describe('identity', () => {
  it.each<[string, string | undefined, string | undefined]>([
    ['no token when the first had one', 'secret-1', undefined],
    ['a different token', 'secret-1', 'secret-2'],
    ['no token when the first had none either', undefined, undefined],
    ['a token when the first had none', undefined, 'secret-1'],
  ])(
    'refuses a second connection for the same userId with %s: error user_id_taken then close 4009',
    (_label, first, second) => {
      const h = makeHub();
      h.connect('alice', { room: 'r', ...(first === undefined ? {} : { token: first }) });
      h.connect('bob', { room: 'r' });
      pair(h, 'alice', 'bob');
      const before = h.hub.state('alice#1');
      const result = h.hub.open('alice#2', {
        userId: 'alice',
        room: 'other',
        ...(second === undefined ? {} : { token: second }),
      });
      expect(result).toStrictEqual({ accepted: false, code: 'user_id_taken' });
      expect(h.take()).toStrictEqual([
        { conn: 'alice#2', msg: refusal('alice', 'user_id_taken', h.iso()) },
        { conn: 'alice#2', code: CloseCode.userIdTaken, reason: expect.any(String) },
      ]);
      expect(CloseCode.userIdTaken).toBe(4009);
      // The first session is untouched and still the one that receives.
      expect(h.hub.state('alice#1')).toStrictEqual(before);
      expect(h.hub.state('alice#2')).toBeUndefined();
      expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 1, available: 0, pairs: 1 });
      h.send('alice#2', { type: 'get_rooms' });
      h.hub.close('alice#2');
      expect(h.take()).toStrictEqual([]);
      h.send('bob#1', {
        type: 'chat_message',
        toUser: 'alice',
        payload: { content: 'still you?' },
      });
      expect(h.take().map((item) => item.conn)).toStrictEqual(['alice#1', 'bob#1']);
    },
  );

  it('lets a connection with the same token take over: the old one gets error replaced then close 4000', () => {
    const h = makeHub();
    h.connect('alice', { token: 'tok' });
    h.take();
    const result = h.hub.open('alice#2', { userId: 'alice', token: 'tok' });
    expect(result).toStrictEqual({ accepted: true, replaced: 'alice#1' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'replaced', h.iso()) },
      { conn: 'alice#1', code: CloseCode.replaced, reason: expect.any(String) },
    ]);
    expect(CloseCode.replaced).toBe(4000);
  });

  it('keeps rooms, availability and the pair across a takeover, and ignores the old connection afterwards', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r', token: 'tok' });
    h.connect('bob', { room: 'r' });
    h.send('alice#1', { type: 'join_room', room: 'second' });
    pair(h, 'alice', 'bob');
    h.send('alice#1', { type: 'user_available_webrtc' });
    h.take();

    h.hub.open('alice#2', { userId: 'alice', token: 'tok', room: 'r' });
    h.take();
    expect(h.hub.state('alice#2')).toStrictEqual({
      userId: 'alice',
      token: 'tok',
      rooms: ['r', 'second'],
      available: true,
      partner: 'bob',
    });
    expect(h.hub.state('alice#1')).toBeUndefined();
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 2, available: 1, pairs: 1 });

    // The old socket's late close and frames change nothing.
    h.hub.close('alice#1');
    h.send('alice#1', { type: 'leave_room', room: 'r' });
    expect(h.take()).toStrictEqual([]);
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 2, available: 1, pairs: 1 });

    // Traffic for alice now goes to the new connection.
    h.send('bob#1', { type: 'chat_message', room: 'r', payload: { content: 'hey' } });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['alice#2', 'bob#1']);
    h.send('bob#1', {
      type: 'webrtc_offer',
      toUser: 'alice',
      payload: { type: 'offer', sdp: 'v=0' },
    });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['alice#2']);

    // And the pair still ends with peer_disconnected when the new connection drops.
    h.hub.close('alice#2');
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: {
          type: 'hangup',
          fromUser: 'alice',
          toUser: 'bob',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
  });

  it('joins the ?room= of the taking-over connection in addition to the kept rooms', () => {
    const h = makeHub();
    h.connect('alice', { room: 'r', token: 'tok' });
    h.hub.open('alice#2', { userId: 'alice', token: 'tok', room: 'new' });
    expect(h.hub.state('alice#2')?.rooms).toStrictEqual(['r', 'new']);
  });
});

describe('rate limit', () => {
  const limited = { rateLimit: { perSecond: 1, burst: 3 }, rateLimitCloseAfterMs: 10_000 };
  const probe = { type: 'get_rooms' };

  it('drops the 4th message in the same millisecond with error rate_limited (burst 3, 1 per second)', () => {
    const h = makeHub(limited);
    connectAll(h, 'alice');
    for (let i = 0; i < 3; i++) h.send('alice#1', probe);
    expect(h.take().map((item) => (item as { msg: { type: string } }).msg.type)).toStrictEqual([
      'rooms_list',
      'rooms_list',
      'rooms_list',
    ]);
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'rate_limited', h.iso()) },
    ]);
  });

  it('sends at most one rate_limited error per second', () => {
    const h = makeHub(limited);
    connectAll(h, 'alice');
    for (let i = 0; i < 3; i++) h.send('alice#1', probe);
    h.take();
    for (let i = 0; i < 5; i++) h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'rate_limited', h.iso()) },
    ]);
    h.advance(500);
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([]);
    h.advance(500);
    // A full second since the first refusal: one token has refilled, so one frame passes...
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'rooms_list' }) },
    ]);
    // ...and the next excess frame may be told again.
    h.send('alice#1', probe);
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'rate_limited', h.iso()) },
    ]);
  });

  it('drops the refused frame entirely: a rate-limited join_room joins nothing', () => {
    const h = makeHub(limited);
    connectAll(h, 'alice');
    for (let i = 0; i < 3; i++) h.send('alice#1', probe);
    h.send('alice#1', { type: 'join_room', room: 'sneaky' });
    expect(h.hub.state('alice#1')?.rooms).toStrictEqual(['Lobby']);
    expect(h.hub.stats().rooms).toBe(1);
  });

  it('refills tokens with the clock at perSecond, up to burst', () => {
    const h = makeHub(limited);
    connectAll(h, 'alice');
    for (let i = 0; i < 3; i++) h.send('alice#1', probe);
    h.take();
    h.advance(2000);
    h.send('alice#1', probe);
    h.send('alice#1', probe);
    h.send('alice#1', probe);
    expect(h.take().map((item) => (item as { msg: { type: string } }).msg.type)).toStrictEqual([
      'rooms_list',
      'rooms_list',
      'error',
    ]);
    h.advance(60_000);
    for (let i = 0; i < 4; i++) h.send('alice#1', probe);
    expect(h.take().map((item) => (item as { msg: { type: string } }).msg.type)).toStrictEqual([
      'rooms_list',
      'rooms_list',
      'rooms_list',
      'error',
    ]);
  });

  it('counts binary frames against the limit too', () => {
    const h = makeHub(limited);
    connectAll(h, 'alice');
    for (let i = 0; i < 3; i++) h.hub.binary('alice#1');
    h.take();
    h.hub.binary('alice#1');
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'rate_limited', h.iso()) },
    ]);
  });

  it('closes with 1008 after rateLimitCloseAfterMs of continuous refusal and removes the user; the partner gets peer_disconnected', () => {
    const h = makeHub({ rateLimit: { perSecond: 1, burst: 3 }, rateLimitCloseAfterMs: 500 });
    h.connect('alice', { room: 'r' });
    h.connect('bob');
    pair(h, 'alice', 'bob');
    h.send('alice#1', { type: 'user_available_webrtc' });
    // pair() spent one of alice's 3 tokens, user_available_webrtc another: one left, then refusals.
    h.take();
    h.send('alice#1', probe);
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: expect.objectContaining({ type: 'rooms_list' }) },
      { conn: 'alice#1', msg: refusal('alice', 'rate_limited', h.iso()) },
    ]);
    h.advance(499);
    h.send('alice#1', probe);
    expect(h.closes()).toStrictEqual([]);
    h.take();
    h.advance(1);
    h.send('alice#1', probe);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', code: CloseCode.policyViolation, reason: expect.any(String) },
      {
        conn: 'bob#1',
        msg: {
          type: 'hangup',
          fromUser: 'alice',
          toUser: 'bob',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
    expect(CloseCode.policyViolation).toBe(1008);
    expect(h.hub.state('alice#1')).toBeUndefined();
    expect(h.hub.stats()).toStrictEqual({ connections: 1, rooms: 1, available: 0, pairs: 0 });
    // The adapter's close callback that follows is a no-op.
    h.hub.close('alice#1');
    expect(h.take()).toStrictEqual([]);
  });

  it('closes with 1008 a connection that floods at 100x the limit for rateLimitCloseAfterMs, even though a token trickles in every second', () => {
    const h = makeHub({ rateLimit: { perSecond: 1, burst: 3 }, rateLimitCloseAfterMs: 3000 });
    connectAll(h, 'alice');
    let closedAt: number | undefined;
    // 100 frames a second against a limit of 1 a second, for 6 seconds.
    for (let i = 0; i < 600 && closedAt === undefined; i++) {
      h.send('alice#1', probe);
      if (h.closes().length > 0) closedAt = h.now - T0;
      h.advance(10);
    }
    expect(h.closes()).toStrictEqual([{ conn: 'alice#1', code: 1008, reason: expect.any(String) }]);
    // Over the limit from the 4th frame (t=30ms): closed once 3 s of excess have passed, with a second's slack.
    expect(closedAt).toBeGreaterThanOrEqual(3030);
    expect(closedAt).toBeLessThanOrEqual(4100);
    expect(h.hub.stats().connections).toBe(0);
  });

  it('never closes when rateLimitCloseAfterMs is 0', () => {
    const h = makeHub({ rateLimit: { perSecond: 1, burst: 1 }, rateLimitCloseAfterMs: 0 });
    connectAll(h, 'alice');
    for (let i = 0; i < 100; i++) {
      h.send('alice#1', probe);
      h.advance(100);
    }
    expect(h.closes()).toStrictEqual([]);
    expect(h.hub.stats().connections).toBe(1);
  });
});

describe('persist', () => {
  it('persists the new session on open, with its token', () => {
    const h = makeHub();
    h.connect('alice', { token: 'tok' });
    expect(h.persisted).toStrictEqual([
      {
        conn: 'alice#1',
        state: { userId: 'alice', token: 'tok', rooms: ['Lobby'], available: false },
      },
    ]);
  });

  it('persists once per operation for each session whose state changed, and not for reads or chat', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.persisted.length = 0;

    h.send('alice#1', { type: 'join_room', room: 'r' });
    expect(h.persisted.splice(0)).toStrictEqual([
      { conn: 'alice#1', state: { userId: 'alice', rooms: ['Lobby', 'r'], available: false } },
    ]);

    h.send('alice#1', { type: 'get_rooms' });
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'x' } });
    h.send('alice#1', {
      type: 'webrtc_offer',
      toUser: 'bob',
      payload: { type: 'offer', sdp: 'v=0' },
    });
    expect(h.persisted.splice(0)).toStrictEqual([]);

    h.send('bob#1', { type: 'user_available_webrtc' });
    expect(h.persisted.splice(0)).toStrictEqual([
      { conn: 'bob#1', state: { userId: 'bob', rooms: ['Lobby'], available: true } },
    ]);

    h.script(0);
    h.send('alice#1', { type: 'request_random_peer' });
    const matched = h.persisted.splice(0).sort((a, b) => a.conn.localeCompare(b.conn));
    expect(matched).toStrictEqual([
      {
        conn: 'alice#1',
        state: { userId: 'alice', rooms: ['Lobby', 'r'], available: false, partner: 'bob' },
      },
      {
        conn: 'bob#1',
        state: { userId: 'bob', rooms: ['Lobby'], available: false, partner: 'alice' },
      },
    ]);

    h.send('alice#1', { type: 'leave_room', room: 'r' });
    expect(h.persisted.splice(0)).toStrictEqual([
      {
        conn: 'alice#1',
        state: { userId: 'alice', rooms: ['Lobby'], available: false, partner: 'bob' },
      },
    ]);

    h.hub.close('bob#1');
    expect(h.persisted.splice(0)).toStrictEqual([
      { conn: 'alice#1', state: { userId: 'alice', rooms: ['Lobby'], available: false } },
    ]);
  });

  it('persists the taken-over session under the new connection and nothing for a refused one', () => {
    const h = makeHub();
    h.connect('alice', { token: 'tok' });
    h.persisted.length = 0;
    h.hub.open('alice#x', { userId: 'alice', token: 'wrong' });
    expect(h.persisted).toStrictEqual([]);
    h.hub.open('alice#2', { userId: 'alice', token: 'tok' });
    expect(h.persisted).toStrictEqual([
      {
        conn: 'alice#2',
        state: { userId: 'alice', token: 'tok', rooms: ['Lobby'], available: false },
      },
    ]);
  });

  it('persists states that SessionState accepts', () => {
    const h = makeHub();
    h.connect('alice', { token: 'tok', room: 'r' });
    h.connect('bob');
    pair(h, 'alice', 'bob');
    expect(h.persisted.length).toBeGreaterThan(0);
    for (const { state } of h.persisted)
      expect(v.safeParse(SessionState, state).success).toBe(true);
  });
});

describe('restore', () => {
  it('rebuilds rooms, availability and token from a persisted state without sending anything', () => {
    const h = makeHub();
    expect(
      h.hub.restore('alice#9', {
        userId: 'alice',
        token: 'tok',
        rooms: ['r', 'q'],
        available: true,
      }),
    ).toBe(true);
    expect(h.outbox).toStrictEqual([]);
    expect(h.hub.state('alice#9')).toStrictEqual({
      userId: 'alice',
      token: 'tok',
      rooms: ['r', 'q'],
      available: true,
    });
    expect(h.hub.stats()).toStrictEqual({ connections: 1, rooms: 2, available: 1, pairs: 0 });

    h.connect('bob', { room: 'r' });
    h.send('bob#1', { type: 'chat_message', room: 'r', payload: { content: 'hi' } });
    expect(h.take().map((item) => item.conn)).toStrictEqual(['alice#9', 'bob#1']);

    h.script(0);
    h.send('bob#1', { type: 'request_random_peer' });
    expect(h.to('alice#9')).toStrictEqual([
      expect.objectContaining({ type: 'assign_role', payload: { role: 'polite', peerId: 'bob' } }),
    ]);
    h.take();

    // The restored token still allows a takeover.
    expect(h.hub.open('alice#10', { userId: 'alice', token: 'tok' })).toStrictEqual({
      accepted: true,
      replaced: 'alice#9',
    });
  });

  it('persists nothing for restored sessions: a chat after a wake rewrites no attachment', () => {
    const h = makeHub();
    for (const user of ['alice', 'bob', 'carol'])
      expect(
        h.hub.restore(`${user}#w`, { userId: user, rooms: ['r'], available: user === 'carol' }),
      ).toBe(true);
    h.send('alice#w', { type: 'chat_message', room: 'r', payload: { content: 'awake?' } });
    expect(h.sent()).toHaveLength(3);
    expect(h.persisted).toStrictEqual([]);
    // A change after the wake persists the one session it changed.
    h.send('bob#w', { type: 'join_room', room: 'q' });
    expect(h.persisted.map((p) => p.conn)).toStrictEqual(['bob#w']);
  });

  it('rebuilds a pair so that a drop still sends peer_disconnected', () => {
    const h = makeHub();
    expect(
      h.hub.restore('a', { userId: 'alice', rooms: [], available: false, partner: 'bob' }),
    ).toBe(true);
    expect(
      h.hub.restore('b', { userId: 'bob', rooms: ['Lobby'], available: false, partner: 'alice' }),
    ).toBe(true);
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 1, available: 0, pairs: 1 });
    h.hub.close('b');
    expect(h.take()).toStrictEqual([
      {
        conn: 'a',
        msg: {
          type: 'hangup',
          fromUser: 'bob',
          toUser: 'alice',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
  });

  it('round-trips what persist recorded', () => {
    const source = makeHub();
    source.connect('alice', { token: 'tok', room: 'r' });
    source.connect('bob');
    source.send('alice#1', { type: 'join_room', room: 'q' });
    pair(source, 'alice', 'bob');
    const latest = new Map(source.persisted.map(({ conn, state }) => [conn, state]));

    const h = makeHub();
    for (const [conn, state] of latest) expect(h.hub.restore(conn, state)).toBe(true);
    expect(h.hub.state('alice#1')).toStrictEqual(source.hub.state('alice#1'));
    expect(h.hub.state('bob#1')).toStrictEqual(source.hub.state('bob#1'));
    expect(h.hub.stats()).toStrictEqual(source.hub.stats());
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['a string', '{"userId":"alice"}'],
    ['a missing userId', { rooms: [], available: false }],
    ['an empty userId', { userId: '', rooms: [], available: false }],
    ['a userId with a control character', { userId: 'a\nb', rooms: [], available: false }],
    ['rooms that are not an array', { userId: 'alice', rooms: 'Lobby', available: false }],
    [
      'a room name over 64 characters',
      { userId: 'alice', rooms: ['r'.repeat(65)], available: false },
    ],
    ['available that is not a boolean', { userId: 'alice', rooms: [], available: 'yes' }],
    ['an empty partner', { userId: 'alice', rooms: [], available: false, partner: '' }],
  ])('rejects an invalid state (%s) and registers nothing', (_label, state) => {
    const h = makeHub();
    expect(h.hub.restore('x', state)).toBe(false);
    expect(h.hub.state('x')).toBeUndefined();
    expect(h.hub.stats()).toStrictEqual({ connections: 0, rooms: 0, available: 0, pairs: 0 });
    expect(h.outbox).toStrictEqual([]);
  });

  it('rejects a state for a userId that is already connected', () => {
    const h = makeHub();
    connectAll(h, 'alice');
    expect(
      h.hub.restore('alice#2', { userId: 'alice', rooms: ['elsewhere'], available: true }),
    ).toBe(false);
    expect(h.hub.state('alice#2')).toBeUndefined();
    expect(h.hub.stats()).toStrictEqual({ connections: 1, rooms: 1, available: 0, pairs: 0 });
  });
});

describe('hub: ICE servers and the matching cap (issue 5)', () => {
  const turn = {
    secret: 'k',
    turnUrls: ['turn:t.example:3478'],
    stunUrls: [],
    ttlSeconds: 60,
    staticServers: [],
  };
  const sentMessages = (h: TestHub) => h.outbox.filter(isSent).map((item) => item.msg);

  it('answers get_ice_servers with TURN credentials for that user, keeping the messageId', async () => {
    const h = makeHub({ turn });
    h.setTime(1_000_000);
    h.hub.open('c1', { userId: 'alice' });
    h.hub.message('c1', JSON.stringify({ type: 'get_ice_servers', messageId: 'q1' }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const [reply] = sentMessages(h);
    expect(reply).toMatchObject({
      type: 'ice_servers',
      toUser: 'alice',
      messageId: 'q1',
      payload: { ttl: 60 },
    });
    expect(reply.payload.iceServers[0].username).toBe('1060:alice');
  });

  it('sends nothing when the user left before the credential was ready', async () => {
    const h = makeHub({ turn });
    h.hub.open('c1', { userId: 'alice' });
    h.hub.message('c1', JSON.stringify({ type: 'get_ice_servers' }));
    h.hub.close('c1');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sentMessages(h)).toEqual([]);
  });

  it('never refuses re-asking while nobody is available: 40 requests at 4/s get 40 no_peer_available', () => {
    const h = makeHub({ matchesPerMinute: 30 });
    h.hub.open('c1', { userId: 'alice' });
    for (let i = 0; i < 40; i++) {
      h.hub.message('c1', JSON.stringify({ type: 'request_random_peer' }));
      h.advance(250);
    }
    expect(sentMessages(h).map((m) => m.type)).toEqual(Array(40).fill('no_peer_available'));
  });

  it('counts matches made for the requester: past matchesPerMinute it answers error rate_limited, refilling over the minute', () => {
    const h = makeHub({ matchesPerMinute: 2 });
    for (const user of ['alice', 'p1', 'p2', 'p3']) h.hub.open(`${user}#1`, { userId: user });
    const request = () => h.hub.message('alice#1', JSON.stringify({ type: 'request_random_peer' }));
    const offer = (user: string) =>
      h.hub.message(`${user}#1`, JSON.stringify({ type: 'user_available_webrtc' }));
    request(); // nobody yet: free
    offer('p1');
    h.script(0);
    request(); // match 1
    offer('p2');
    h.script(0);
    request(); // match 2
    offer('p3');
    request(); // over the limit: no draw, p3 stays available
    const toAlice = h.to('alice#1') as any[];
    expect(toAlice.map((m) => m.type)).toEqual([
      'no_peer_available',
      'assign_role',
      'assign_role',
      'error',
    ]);
    expect(toAlice[3].payload.code).toBe('rate_limited');
    expect(h.hub.stats().available).toBe(1);
    h.advance(30_000); // one match's worth refills in 60 s / 2
    h.script(0);
    request();
    expect((h.to('alice#1') as any[]).at(-1)).toMatchObject({
      type: 'assign_role',
      payload: { peerId: 'p3' },
    });
  });

  it('does not count being picked as a partner against the one picked', () => {
    const h = makeHub({ matchesPerMinute: 1 });
    for (const user of ['alice', 'bob', 'carol']) h.hub.open(`${user}#1`, { userId: user });
    h.hub.message('bob#1', JSON.stringify({ type: 'user_available_webrtc' }));
    h.script(0);
    h.hub.message('alice#1', JSON.stringify({ type: 'request_random_peer' })); // bob picked
    h.hub.message('carol#1', JSON.stringify({ type: 'user_available_webrtc' }));
    h.script(0);
    h.hub.message('bob#1', JSON.stringify({ type: 'request_random_peer' }));
    expect((h.to('bob#1') as any[]).map((m) => m.type)).toEqual(['assign_role', 'assign_role']);
  });
});

describe('serialization cost (issue 6)', () => {
  /** JSON.stringify calls made while the hub handles `text` from `conn`. */
  function stringifiesFor(h: TestHub, conn: string, text: string): number {
    const stringify = vi.spyOn(JSON, 'stringify');
    try {
      h.raw(conn, text);
      return stringify.mock.calls.length;
    } finally {
      stringify.mockRestore();
    }
  }

  it('serializes a room broadcast once, whatever the size of the room', () => {
    for (const members of [2, 50]) {
      const h = makeHub();
      for (let i = 0; i < members; i++) h.connect(`m${i}`, { room: 'big' });
      h.take();
      expect(
        stringifiesFor(
          h,
          'm0#1',
          JSON.stringify({ type: 'chat_message', room: 'big', payload: { content: 'hi all' } }),
        ),
      ).toBe(1);
      expect(h.sent()).toHaveLength(members);
    }
  });

  it('serializes a direct chat message once for both copies, which differ only in incoming', () => {
    const h = makeHub();
    h.connect('alice');
    h.connect('bob');
    h.take();
    expect(
      stringifiesFor(
        h,
        'alice#1',
        JSON.stringify({
          type: 'chat_message',
          toUser: 'bob',
          messageId: 'm1',
          payload: { content: 'hi "bob"', extra: [1] },
        }),
      ),
    ).toBe(1);
    const [toBob] = h.to('bob#1') as any[];
    const [toAlice] = h.to('alice#1') as any[];
    expect(toBob).toEqual({ ...toAlice, incoming: true });
    expect(toAlice.incoming).toBe(false);
    expect(toBob.payload).toEqual({ content: 'hi "bob"', extra: [1] });
  });
});

describe('clients of the original: lenient relay (issue 10)', () => {
  it.each<[string, string, unknown]>([
    ['end of candidates as payload null', 'webrtc_candidate', null],
    [
      'an empty candidate string',
      'webrtc_candidate',
      { candidate: '', sdpMid: '0', sdpMLineIndex: 0 },
    ],
    [
      'a null candidate in an init object',
      'webrtc_candidate',
      { candidate: { candidate: null, sdpMid: '0' } },
    ],
    [
      'the flat RTCIceCandidateInit that payload: e.candidate gives',
      'webrtc_candidate',
      {
        candidate:
          'candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Ab1c network-cost 999',
        sdpMid: '0',
        sdpMLineIndex: 0,
        usernameFragment: 'Ab1c',
      },
    ],
    ['a string hangup payload', 'hangup', 'bye'],
    ['a null hangup payload', 'hangup', null],
    ['an array hangup payload', 'hangup', [1, 'two', { three: 3 }]],
  ])('relays %s verbatim', (_label, type, payload) => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', { type, toUser: 'bob', payload });
    expect(h.take()).toStrictEqual([
      {
        conn: 'bob#1',
        msg: { type, fromUser: 'alice', toUser: 'bob', payload, createTime: h.iso() },
      },
    ]);
  });

  it('refuses a hangup payload over 1 KiB of JSON with error_response invalid_message and relays nothing', () => {
    const h = makeHub();
    connectAll(h, 'alice', 'bob');
    h.send('alice#1', { type: 'hangup', toUser: 'bob', payload: 'x'.repeat(1022) }); // 1,024 bytes with its quotes
    expect(h.take().map((item) => item.conn)).toStrictEqual(['bob#1']);
    h.send('alice#1', { type: 'hangup', toUser: 'bob', payload: 'x'.repeat(1023) });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: errorResponse('alice', 'invalid_message', h.iso()) },
    ]);
  });

  it.each(SERVER_ONLY_TYPES)(
    'answers a client-sent %s with error_response unknown_type and relays nothing',
    (type) => {
      const h = makeHub();
      connectAll(h, 'alice', 'bob');
      h.send('alice#1', {
        type,
        toUser: 'bob',
        fromUser: 'system',
        room: 'Lobby',
        payload: { role: 'polite', peerId: 'alice' },
      });
      expect(h.take()).toStrictEqual([
        { conn: 'alice#1', msg: errorResponse('alice', 'unknown_type', h.iso()) },
      ]);
    },
  );
});

describe('takeover of a silent session without its token (issue 10)', () => {
  const PROBE_MS = 2000;

  /** alice (no token) paired with bob; returns the hub with the outbox cleared. */
  function alicePairedWithBob(canPing = true) {
    const h = makeHub({ takeoverProbeMs: PROBE_MS }, { canPing });
    h.connect('alice', { room: 'r' });
    h.connect('bob', { room: 'r' });
    h.hub.message('alice#1', JSON.stringify({ type: 'join_room', room: 'second' }));
    pair(h, 'alice', 'bob');
    return h;
  }

  const settledFlag = (promise: Promise<void> | undefined) => {
    const flag = { settled: false };
    void promise?.then(() => (flag.settled = true));
    return flag;
  };
  const microtasks = () => new Promise((resolve) => setTimeout(resolve, 0));

  it('needs no probe for a free userId, for the right token, or with takeoverProbeMs 0', () => {
    const h = makeHub({ takeoverProbeMs: PROBE_MS });
    expect(h.hub.prepare({ userId: 'alice' })).toBeUndefined();
    h.connect('alice', { token: 'tok' });
    expect(h.hub.prepare({ userId: 'alice', token: 'tok' })).toBeUndefined();
    expect(h.pinged).toStrictEqual([]);
    const off = makeHub({ takeoverProbeMs: 0 });
    off.connect('alice');
    expect(off.hub.prepare({ userId: 'alice' })).toBeUndefined();
    expect(off.hub.open('alice#2', { userId: 'alice' })).toStrictEqual({
      accepted: false,
      code: 'user_id_taken',
    });
  });

  it('pings the old socket and, when it answers within takeoverProbeMs, leaves it alone: the newcomer is refused with 4009', async () => {
    const h = alicePairedWithBob();
    const before = h.hub.state('alice#1');
    const flag = settledFlag(h.hub.prepare({ userId: 'alice' }));
    expect(h.pinged).toStrictEqual(['alice#1']);
    h.advance(PROBE_MS - 1);
    await microtasks();
    expect(flag.settled).toBe(false);
    h.hub.heard('alice#1');
    await microtasks();
    expect(flag.settled).toBe(true);
    expect(h.take()).toStrictEqual([]);
    expect(h.hub.open('alice#2', { userId: 'alice' })).toStrictEqual({
      accepted: false,
      code: 'user_id_taken',
    });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#2', msg: refusal('alice', 'user_id_taken', h.iso()) },
      { conn: 'alice#2', code: CloseCode.userIdTaken, reason: expect.any(String) },
    ]);
    expect(h.hub.state('alice#1')).toStrictEqual(before);
    expect(h.pendingTimers).toBe(0);
  });

  it('counts any frame from the old socket as a sign of life', async () => {
    const h = alicePairedWithBob();
    const flag = settledFlag(h.hub.prepare({ userId: 'alice' }));
    h.advance(500);
    h.send('alice#1', { type: 'get_rooms' });
    await microtasks();
    expect(flag.settled).toBe(true);
    h.advance(PROBE_MS);
    expect(h.closes()).toStrictEqual([]);
    expect(h.hub.open('alice#2', { userId: 'alice' }).accepted).toBe(false);
  });

  it('replaces a socket silent for takeoverProbeMs: error replaced + 4000, the partner hung up, the newcomer gets a fresh session', async () => {
    const h = alicePairedWithBob();
    const flag = settledFlag(h.hub.prepare({ userId: 'alice', room: 'new' }));
    h.advance(PROBE_MS - 1);
    await microtasks();
    expect(flag.settled).toBe(false);
    expect(h.take()).toStrictEqual([]);
    h.advance(1);
    await microtasks();
    expect(flag.settled).toBe(true);
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'replaced', h.iso()) },
      { conn: 'alice#1', code: CloseCode.replaced, reason: expect.any(String) },
      {
        conn: 'bob#1',
        msg: {
          type: 'hangup',
          fromUser: 'alice',
          toUser: 'bob',
          payload: { reason: 'peer_disconnected' },
          createTime: h.iso(),
        },
      },
    ]);
    expect(h.hub.open('alice#2', { userId: 'alice', room: 'new' })).toStrictEqual({
      accepted: true,
    });
    // Nothing of the old session: only the requested room, not available, no partner.
    expect(h.hub.state('alice#2')).toStrictEqual({
      userId: 'alice',
      rooms: ['new'],
      available: false,
    });
    expect(h.hub.state('bob#1')?.partner).toBeUndefined();
    expect(h.hub.stats()).toStrictEqual({ connections: 2, rooms: 2, available: 0, pairs: 0 });
    // The old connection is gone for good: its late frames and close change nothing.
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'ghost' } });
    h.hub.close('alice#1');
    expect(h.take()).toStrictEqual([]);
    expect(
      h.hub.metrics.render({
        aleatoria_connections: 0,
        aleatoria_rooms: 0,
        aleatoria_pool_size: 0,
        aleatoria_pairs: 0,
      }),
    ).toContain('aleatoria_takeover_probes_total{outcome="silent"} 1');
  });

  it('lets exactly one of three racing newcomers win: one ping, one probe, the others refused with 4009', async () => {
    const h = alicePairedWithBob();
    const probes = [
      h.hub.prepare({ userId: 'alice' }),
      h.hub.prepare({ userId: 'alice' }),
      h.hub.prepare({ userId: 'alice' }),
    ];
    expect(new Set(probes).size).toBe(1);
    expect(h.pinged).toStrictEqual(['alice#1']);
    h.advance(PROBE_MS);
    await Promise.all(probes);
    h.take();
    const results = ['alice#2', 'alice#3', 'alice#4'].map((conn) =>
      h.hub.open(conn, { userId: 'alice' }),
    );
    expect(results).toStrictEqual([
      { accepted: true },
      { accepted: false, code: 'user_id_taken' },
      { accepted: false, code: 'user_id_taken' },
    ]);
    expect(h.closes().map((c) => [c.conn, c.code])).toStrictEqual([
      ['alice#3', 4009],
      ['alice#4', 4009],
    ]);
    expect(h.hub.stats().connections).toBe(2);
  });

  it('settles when the old socket closes during the probe, so the newcomer is accepted at once', async () => {
    const h = alicePairedWithBob();
    const flag = settledFlag(h.hub.prepare({ userId: 'alice' }));
    h.advance(300);
    h.hub.close('alice#1');
    await microtasks();
    expect(flag.settled).toBe(true);
    expect(h.pendingTimers).toBe(0);
    expect(h.hub.open('alice#2', { userId: 'alice' })).toStrictEqual({ accepted: true });
  });

  it('where the runtime cannot ping (Durable Object), counts a silent socket as alive and refuses the newcomer', async () => {
    const h = alicePairedWithBob(false);
    const flag = settledFlag(h.hub.prepare({ userId: 'alice' }));
    h.advance(PROBE_MS);
    await microtasks();
    expect(flag.settled).toBe(true);
    expect(h.take()).toStrictEqual([]);
    expect(h.hub.open('alice#2', { userId: 'alice' }).accepted).toBe(false);
    expect(h.hub.state('alice#1')?.partner).toBe('bob');
  });

  it('starts a new probe for a later newcomer once the previous one settled', async () => {
    const h = alicePairedWithBob();
    const first = h.hub.prepare({ userId: 'alice' });
    h.hub.heard('alice#1');
    await first;
    const second = h.hub.prepare({ userId: 'alice' });
    expect(second).not.toBe(first);
    expect(h.pinged).toStrictEqual(['alice#1', 'alice#1']);
    h.hub.heard('alice#1');
    await second;
  });
});

describe('seams that answer later (state in another process)', () => {
  /** Runs the same conversation on `h`; returns what each connection received, in order. */
  async function conversation(h: TestHub) {
    for (const user of ['alice', 'bob', 'carol']) h.connect(user, { room: 'r' });
    const steps: unknown[][] = [
      [
        'alice#1',
        { type: 'chat_message', toUser: 'bob', messageId: 'd1', payload: { content: 'hi bob' } },
      ],
      ['alice#1', { type: 'chat_message', toUser: 'nobody', payload: { content: 'anyone?' } }],
      ['bob#1', { type: 'webrtc_offer', toUser: 'alice', payload: { type: 'offer', sdp: 'v=0' } }],
      ['bob#1', { type: 'user_available_webrtc' }],
      ['alice#1', { type: 'request_random_peer', messageId: 'm1' }],
      ['carol#1', { type: 'user_available_webrtc' }],
      ['bob#1', { type: 'request_random_peer' }],
      ['carol#1', { type: 'hangup', toUser: 'bob', payload: 'bye' }],
    ];
    h.script(0, 0);
    for (const [conn, msg] of steps) {
      h.send(conn as string, msg);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    h.hub.close('alice#1');
    await new Promise((resolve) => setTimeout(resolve, 0));
    return h.take();
  }

  it('produces the same frames, in the same order, as the in-memory seams', async () => {
    const now = await conversation(makeHub());
    const later = await conversation(makeHub({}, { asyncSeams: true }));
    expect(later).toStrictEqual(now);
    expect(
      now.map((item) => ('msg' in item ? `${item.conn}:${item.msg.type}` : `${item.conn}:close`)),
    ).toContain('bob#1:hangup');
  });

  it('answers user_not_found only once the directory says nobody has the user', async () => {
    const h = makeHub({}, { asyncSeams: true });
    connectAll(h, 'alice');
    h.send('alice#1', {
      type: 'webrtc_offer',
      toUser: 'ghost',
      payload: { type: 'offer', sdp: 'v=0' },
    });
    expect(h.take()).toStrictEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: refusal('alice', 'user_not_found', h.iso()) },
    ]);
  });
});

describe("one connection's frames in order across processes (writes to shared state)", () => {
  /** A gate: a promise the test opens. */
  function gate() {
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    return { opened, open };
  }
  const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
  const types = (items: ReturnType<TestHub['take']>) =>
    items.map((item) => ('msg' in item ? `${item.conn}:${item.msg.type}` : `${item.conn}:close`));

  it("holds a user's next frames until its availability is written, then runs them in order", async () => {
    const written = gate();
    const h = makeHub(
      {},
      {
        seams: {
          pool: (local) => ({
            get size() {
              return local.size;
            },
            has: (userId) => local.has(userId),
            add: (userId, since) => {
              local.add(userId, since);
              return written.opened;
            },
            delete: (userId) => local.delete(userId),
            take: (...args) => local.take(...args),
          }),
        },
      },
    );
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'user_available_webrtc' });
    h.send('alice#1', { type: 'get_rooms', messageId: 'g1' });
    h.send('alice#1', { type: 'get_rooms', messageId: 'g2' });
    await tick();
    // Not written yet: what alice said next waits.
    expect(h.take()).toStrictEqual([]);
    written.open();
    await tick();
    expect(h.take().map((item) => ('msg' in item ? item.msg.messageId : undefined))).toStrictEqual([
      'g1',
      'g2',
    ]);
  });

  it('answers room_joined once the member hears the room everywhere', async () => {
    const subscribed = gate();
    const h = makeHub(
      {},
      {
        seams: {
          rooms: (local) => ({
            get size() {
              return local.size;
            },
            join: (room, member) => {
              local.join(room, member);
              return room === 'late' ? subscribed.opened : undefined;
            },
            leave: (room, member) => local.leave(room, member),
            broadcast: (...args) => local.broadcast(...args),
            count: (room) => local.count(room),
            members: (room, limit) => local.members(room, limit),
          }),
        },
      },
    );
    connectAll(h, 'alice');
    h.send('alice#1', { type: 'join_room', room: 'late' });
    await tick();
    expect(h.take()).toStrictEqual([]);
    subscribed.open();
    await tick();
    expect(types(h.take())).toStrictEqual(['alice#1:room_joined']);
  });
});

describe('presence (issue 12)', () => {
  const status = (room: string, userId: string, s: 'online' | 'offline', at: string) => ({
    type: 'user_status',
    fromUser: 'system',
    room,
    payload: { userId, status: s, timestamp: at },
    createTime: at,
  });

  it('tells the other members of a room when someone joins, leaves or disconnects', () => {
    const h = makeHub({ presenceRoomLimit: 3 });
    h.connect('alice', { room: 'r' });
    expect(h.take()).toStrictEqual([]);
    h.connect('bob', { room: 'r' });
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: status('r', 'bob', 'online', h.iso()) },
    ]);
    h.connect('carol', { room: 'elsewhere' });
    h.send('carol#1', { type: 'join_room', room: 'r' });
    expect(
      h.take().filter((item) => 'msg' in item && item.msg.type === 'user_status'),
    ).toStrictEqual([
      { conn: 'alice#1', msg: status('r', 'carol', 'online', h.iso()) },
      { conn: 'bob#1', msg: status('r', 'carol', 'online', h.iso()) },
    ]);
    h.send('carol#1', { type: 'leave_room', room: 'r' });
    expect(h.take().filter((item) => item.conn !== 'carol#1')).toStrictEqual([
      { conn: 'alice#1', msg: status('r', 'carol', 'offline', h.iso()) },
      { conn: 'bob#1', msg: status('r', 'carol', 'offline', h.iso()) },
    ]);
    h.hub.close('bob#1');
    expect(h.take()).toStrictEqual([
      { conn: 'alice#1', msg: status('r', 'bob', 'offline', h.iso()) },
    ]);
  });

  it('says nothing in a room larger than presenceRoomLimit, or with the limit at 0', () => {
    const h = makeHub({ presenceRoomLimit: 2 });
    h.connect('a', { room: 'r' });
    h.connect('b', { room: 'r' });
    h.take();
    h.connect('c', { room: 'r' }); // three members now: over the limit
    h.hub.close('c#1'); // three before the leave
    expect(h.take()).toStrictEqual([]);
    const off = makeHub({ presenceRoomLimit: 0 });
    off.connect('a', { room: 'r' });
    off.connect('b', { room: 'r' });
    expect(off.take()).toStrictEqual([]);
  });

  it('announces nothing when sessions are restored after a wake', () => {
    const h = makeHub({ presenceRoomLimit: 10 });
    h.connect('alice', { room: 'r' });
    h.take();
    expect(h.hub.restore('bob#w', { userId: 'bob', rooms: ['r'], available: false })).toBe(true);
    expect(h.take()).toStrictEqual([]);
  });

  it('lists up to presenceListLimit members with an exact count, to members only', () => {
    const h = makeHub({ presenceListLimit: 2 });
    for (const user of ['a', 'b', 'c']) h.connect(user, { room: 'r' });
    h.connect('outsider', { room: 'other' });
    h.take();
    h.send('a#1', { type: 'get_room_members', room: 'r', messageId: 'gm' });
    expect(h.take()).toStrictEqual([
      {
        conn: 'a#1',
        msg: {
          type: 'room_members',
          fromUser: 'system',
          toUser: 'a',
          room: 'r',
          payload: { room: 'r', members: ['a', 'b'], count: 3 },
          messageId: 'gm',
          createTime: h.iso(),
        },
      },
    ]);
    h.send('outsider#1', { type: 'get_room_members', room: 'r' });
    expect(h.take()).toStrictEqual([
      { conn: 'outsider#1', msg: refusal('outsider', 'not_in_room', h.iso()) },
    ]);
  });
});
