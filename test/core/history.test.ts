/**
 * Chat history through the hub: ids, `get_recent_messages`, `get_direct_messages`, retention by
 * count and age on the fake clock, who may read what, and `HISTORY=off`.
 */
import { describe, expect, it } from 'vitest';
import type { HistoryConfig } from '../../src/core/config.ts';
import { isSent, makeHub, type Sent, T0 } from './hub-harness.ts';

const HOUR = 3_600_000;
const ON: HistoryConfig = { enabled: true, limit: 100, ttlMs: 24 * HOUR, maxBytes: 1 << 24 };

function historyHub(history: Partial<HistoryConfig> = {}, asyncSeams = false) {
  const h = makeHub({ history: { ...ON, ...history } }, { asyncSeams });
  const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
  /** Sends and returns what `conn` got back (after the async seams answered, if any). */
  const ask = async (conn: string, msg: unknown) => {
    h.take();
    h.send(conn, msg);
    if (asyncSeams) await settle();
    return h
      .take()
      .filter(isSent)
      .filter((item) => item.conn === conn)
      .map((item) => item.msg);
  };
  /** `count` room messages from `conn`, one per millisecond, contents `${prefix}${i}`. */
  const chat = async (conn: string, room: string, count: number, prefix = 'm') => {
    for (let i = 0; i < count; i++) {
      h.send(conn, { type: 'chat_message', room, payload: { content: `${prefix}${i}` } });
      h.advance(1);
    }
    if (asyncSeams) await settle();
  };
  return { h, ask, chat, settle };
}

const contents = (reply: any) => reply.payload.messages.map((m: any) => m.payload.content);

describe('server ids', () => {
  it('orders messages within a room, as strings, even within one millisecond', () => {
    const { h } = historyHub();
    h.connect('alice', { room: 'r' });
    h.take();
    for (let i = 0; i < 5; i++)
      h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: `${i}` } });
    const ids = (h.take() as Sent[]).map((item) => item.msg.id as string);
    expect(ids).toHaveLength(5);
    expect(ids.every((id) => /^\d{16}$/.test(id))).toBe(true);
    expect([...ids].sort()).toStrictEqual(ids);
    expect(new Set(ids).size).toBe(5);
  });
});

describe('get_recent_messages', () => {
  it('answers a member with the room messages newest first, exactly as delivered', async () => {
    const { h, ask } = historyHub();
    h.connect('alice', { room: 'r' });
    h.connect('bob', { room: 'r' });
    h.take();
    h.send('alice#1', {
      type: 'chat_message',
      room: 'r',
      messageId: 'c1',
      payload: { content: 'one' },
    });
    h.advance(5);
    h.send('bob#1', { type: 'chat_message', room: 'r', payload: { content: 'two', x: 1 } });
    const delivered = (h.take() as Sent[]).filter((i) => i.conn === 'bob#1').map((i) => i.msg);
    const [reply] = await ask('bob#1', {
      type: 'get_recent_messages',
      room: 'r',
      messageId: 'q1',
      payload: {},
    });
    expect(reply).toStrictEqual({
      type: 'recent_messages',
      fromUser: 'system',
      toUser: 'bob',
      room: 'r',
      payload: { room: 'r', messages: [delivered[1], delivered[0]] },
      messageId: 'q1',
      createTime: h.iso(),
    });
  });

  it('pages back with before, by id or by time, each message exactly once', async () => {
    const { h, ask, chat } = historyHub({ limit: 1000 });
    h.connect('alice', { room: 'r' });
    await chat('alice#1', 'r', 250);
    const seen: string[] = [];
    let before: string | undefined;
    for (;;) {
      const [reply] = await ask('alice#1', {
        type: 'get_recent_messages',
        room: 'r',
        payload: { limit: 100, ...(before ? { before } : {}) },
      });
      const page = reply.payload.messages;
      if (page.length === 0) break;
      seen.push(...contents(reply));
      before = page.at(-1).id;
    }
    expect(seen).toStrictEqual(Array.from({ length: 250 }, (_, i) => `m${249 - i}`));

    // Message i was sent at T0 + i ms: before the time of message 10 means messages 0-9.
    const byTime = new Date(T0 + 10).toISOString();
    const [reply] = await ask('alice#1', {
      type: 'get_recent_messages',
      room: 'r',
      payload: { before: byTime },
    });
    expect(contents(reply)).toStrictEqual(Array.from({ length: 10 }, (_, i) => `m${9 - i}`));
    // A time past what an id can name (after 2255) bounds nothing.
    const [far] = await ask('alice#1', {
      type: 'get_recent_messages',
      room: 'r',
      payload: { before: '2300-01-01T00:00:00Z', limit: 1 },
    });
    expect(contents(far)).toStrictEqual(['m249']);
  });

  it('answers 50 by default and refuses a limit above 100 as invalid', async () => {
    const { h, ask, chat } = historyHub();
    h.connect('alice', { room: 'r' });
    await chat('alice#1', 'r', 80);
    const [reply] = await ask('alice#1', { type: 'get_recent_messages', room: 'r' });
    expect(reply.payload.messages).toHaveLength(50);
    const [refused] = await ask('alice#1', {
      type: 'get_recent_messages',
      room: 'r',
      payload: { limit: 101 },
    });
    expect(refused.type).toBe('error_response');
    expect(refused.payload.code).toBe('invalid_message');
  });

  it('refuses a room the sender is not in with not_in_room, and reveals nothing', async () => {
    const { h, ask, chat } = historyHub();
    h.connect('alice', { room: 'secret' });
    h.connect('mallory', { room: 'Lobby' });
    await chat('alice#1', 'secret', 3);
    const replies = await ask('mallory#1', {
      type: 'get_recent_messages',
      room: 'secret',
      messageId: 'peek-1',
    });
    expect(replies).toHaveLength(1);
    expect(replies[0].type).toBe('error');
    expect(replies[0].payload.code).toBe('not_in_room');
    // The refusal names the request it answers, so a client can settle that request.
    expect(replies[0].messageId).toBe('peek-1');
  });

  it('keeps the last HISTORY_LIMIT messages of a room', async () => {
    const { h, ask, chat } = historyHub({ limit: 10 });
    h.connect('alice', { room: 'r' });
    await chat('alice#1', 'r', 25);
    const [reply] = await ask('alice#1', { type: 'get_recent_messages', room: 'r' });
    expect(contents(reply)).toStrictEqual(Array.from({ length: 10 }, (_, i) => `m${24 - i}`));
  });

  it('forgets messages older than HISTORY_TTL_HOURS, and keeps an empty room until then', async () => {
    const { h, ask, chat } = historyHub({ ttlMs: 2 * HOUR });
    h.connect('alice', { room: 'r' });
    await chat('alice#1', 'r', 3, 'old');
    h.send('alice#1', { type: 'leave_room', room: 'r' });
    h.advance(HOUR);
    // Nobody was in the room for an hour: its history is still there for the next member.
    h.connect('bob', { room: 'r' });
    await chat('bob#1', 'r', 2, 'new');
    const [reply] = await ask('bob#1', { type: 'get_recent_messages', room: 'r' });
    expect(contents(reply)).toStrictEqual(['new1', 'new0', 'old2', 'old1', 'old0']);
    h.advance(HOUR);
    const [later] = await ask('bob#1', { type: 'get_recent_messages', room: 'r' });
    expect(contents(later)).toStrictEqual(['new1', 'new0']);
  });
});

describe('get_direct_messages', () => {
  it('gives each participant the conversation oldest first, as it received each copy', async () => {
    const { h, ask } = historyHub();
    for (const user of ['alice', 'bob', 'carol']) h.connect(user);
    h.send('alice#1', { type: 'chat_message', toUser: 'bob', payload: { content: 'hi bob' } });
    h.advance(1);
    h.send('bob#1', { type: 'chat_message', toUser: 'alice', payload: { content: 'hi alice' } });
    h.advance(1);
    h.send('carol#1', { type: 'chat_message', toUser: 'bob', payload: { content: 'from carol' } });
    const got = h.take() as Sent[];
    const copy = (conn: string, content: string) =>
      got.find((i) => i.conn === conn && i.msg.payload.content === content)!.msg;

    const [forAlice] = await ask('alice#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'bob' },
    });
    expect(forAlice.payload).toStrictEqual({
      withUser: 'bob',
      messages: [copy('alice#1', 'hi bob'), copy('alice#1', 'hi alice')],
    });
    expect(forAlice.payload.messages.map((m: any) => m.incoming)).toStrictEqual([false, true]);
    const [forBob] = await ask('bob#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'alice' },
    });
    expect(forBob.payload.messages).toStrictEqual([
      copy('bob#1', 'hi bob'),
      copy('bob#1', 'hi alice'),
    ]);

    // Carol cannot read Alice and Bob's conversation: naming Bob gives her own with Bob only.
    const [forCarol] = await ask('carol#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'bob' },
    });
    expect(contents(forCarol)).toStrictEqual(['from carol']);
    const [aliceForCarol] = await ask('carol#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'alice' },
    });
    expect(aliceForCarol.payload.messages).toStrictEqual([]);
  });

  it('keeps no message that was never delivered', async () => {
    const { h, ask } = historyHub();
    h.connect('alice');
    h.send('alice#1', { type: 'chat_message', toUser: 'ghost', payload: { content: 'hello?' } });
    h.connect('ghost');
    const [reply] = await ask('ghost#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'alice' },
    });
    expect(reply.payload.messages).toStrictEqual([]);
  });

  it('pages back with before, the last limit of each page oldest first', async () => {
    const { h, ask } = historyHub();
    h.connect('alice');
    h.connect('bob');
    for (let i = 0; i < 7; i++) {
      h.send('alice#1', { type: 'chat_message', toUser: 'bob', payload: { content: `d${i}` } });
      h.advance(1);
    }
    const [last] = await ask('bob#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'alice', limit: 3 },
    });
    expect(contents(last)).toStrictEqual(['d4', 'd5', 'd6']);
    const [earlier] = await ask('bob#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'alice', limit: 3, before: last.payload.messages[0].id },
    });
    expect(contents(earlier)).toStrictEqual(['d1', 'd2', 'd3']);
  });
});

describe('HISTORY=off', () => {
  it('still names messages but keeps none', async () => {
    const { h, ask, chat } = historyHub({ enabled: false });
    h.connect('alice', { room: 'r' });
    h.connect('bob');
    h.take();
    h.send('alice#1', { type: 'chat_message', room: 'r', payload: { content: 'x' } });
    expect((h.take()[0] as Sent).msg.id).toMatch(/^\d{16}$/);
    await chat('alice#1', 'r', 3);
    h.send('alice#1', { type: 'chat_message', toUser: 'bob', payload: { content: 'dm' } });
    const [recent] = await ask('alice#1', { type: 'get_recent_messages', room: 'r' });
    expect(recent.payload.messages).toStrictEqual([]);
    const [direct] = await ask('alice#1', {
      type: 'get_direct_messages',
      payload: { withUser: 'bob' },
    });
    expect(direct.payload.messages).toStrictEqual([]);
  });
});

describe('with a store that answers later (Redis, another object)', () => {
  it('delivers in order and reads back the same as the in-memory store', async () => {
    const runs = [];
    for (const asyncSeams of [false, true]) {
      const { h, ask, chat, settle } = historyHub({}, asyncSeams);
      h.connect('alice', { room: 'r' });
      h.connect('bob', { room: 'r' });
      await chat('alice#1', 'r', 5);
      await settle();
      const live = (h.take() as Sent[])
        .filter((i) => i.conn === 'bob#1' && i.msg.type === 'chat_message')
        .map((i) => i.msg.payload.content);
      const [reply] = await ask('bob#1', { type: 'get_recent_messages', room: 'r' });
      runs.push({ live, stored: contents(reply) });
    }
    expect(runs[0]!.live).toStrictEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(runs[1]).toStrictEqual(runs[0]);
  });
});
