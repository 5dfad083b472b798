/**
 * Chat history over real sockets, the same on every runtime: what a member missed while away,
 * paging with `before`, who may read a conversation, and `HISTORY_LIMIT`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ContractTarget,
  type LaunchedServer,
  type Received,
  TestClient,
  uid,
} from './harness.ts';

const ENV = {
  ALLOWED_ORIGINS: 'https://www.aleatoria.chat',
  RATE_LIMIT_PER_SECOND: '5000',
  RATE_LIMIT_BURST: '5000',
  HISTORY_LIMIT: '20',
  PRESENCE_ROOM_LIMIT: '0',
};

const contents = (reply: Received) =>
  (reply.payload as { messages: Received[] }).messages.map(
    (m) => (m.payload as { content: string }).content,
  );

export function defineHistorySuite(target: ContractTarget) {
  describe(`history on ${target.name} (HISTORY_LIMIT=20)`, () => {
    let server: LaunchedServer;
    const open: TestClient[] = [];
    beforeAll(async () => {
      server = await target.launch(ENV);
    }, 120_000);
    afterAll(() => server?.stop());
    afterEach(async () => {
      await Promise.all(open.splice(0).map((client) => client.close()));
    });
    const connect = async (options: Parameters<typeof TestClient.open>[1] = {}) => {
      const client = await TestClient.open(server.baseUrl, options);
      open.push(client);
      return client;
    };
    const ask = async (client: TestClient, message: Record<string, unknown>) => {
      client.send(message);
      return client.next((m) => m.type === 'recent_messages' || m.type === 'direct_messages');
    };
    /** Sends `count` room messages from `client` and waits until `client` has each one back. */
    const chat = async (client: TestClient, room: string, count: number, prefix = 'm') => {
      const delivered: Received[] = [];
      for (let i = 0; i < count; i++)
        client.send({ type: 'chat_message', room, payload: { content: `${prefix}${i}` } });
      for (let i = 0; i < count; i++) delivered.push(await client.nextOfType('chat_message'));
      return delivered;
    };

    it('shows a member who reconnects what was said while it was away, exactly as delivered', async () => {
      const room = uid('h');
      const a = await connect({ room });
      const b = await connect({ room });
      await b.close();
      const delivered = await chat(a, room, 3);
      const ids = delivered.map((m) => m.id as string);
      expect(ids.every((id) => /^\d{16}$/.test(id))).toBe(true);
      expect([...ids].sort()).toStrictEqual(ids);

      const back = await connect({ room, userId: b.userId });
      const reply = await ask(back, { type: 'get_recent_messages', room, messageId: 'q' });
      expect(reply).toMatchObject({
        type: 'recent_messages',
        fromUser: 'system',
        toUser: b.userId,
        room,
        messageId: 'q',
      });
      expect((reply.payload as { messages: Received[] }).messages).toStrictEqual(
        [...delivered].reverse(),
      );
    });

    it('pages back with before (an id or a time) and keeps the last HISTORY_LIMIT', async () => {
      const room = uid('h');
      const a = await connect({ room });
      const delivered = await chat(a, room, 25);
      const seen: string[] = [];
      let before: string | undefined;
      for (;;) {
        const reply = await ask(a, {
          type: 'get_recent_messages',
          room,
          payload: { limit: 8, ...(before ? { before } : {}) },
        });
        const page = (reply.payload as { messages: Received[] }).messages;
        if (page.length === 0) break;
        seen.push(...contents(reply));
        before = page.at(-1)!.id as string;
      }
      // 25 sent, 20 kept: m24 back to m5, each once.
      expect(seen).toStrictEqual(Array.from({ length: 20 }, (_, i) => `m${24 - i}`));
      const time = new Date(Date.parse(delivered[24]!.createTime) + 1).toISOString();
      const byTime = await ask(a, { type: 'get_recent_messages', room, payload: { before: time } });
      expect(contents(byTime)[0]).toBe('m24');
    });

    it('refuses the history of a room the sender is not in with not_in_room', async () => {
      const room = uid('h');
      const a = await connect({ room });
      await chat(a, room, 2);
      const outsider = await connect();
      outsider.send({ type: 'get_recent_messages', room, messageId: 'peek' });
      const reply = await outsider.next((m) => m.type === 'error' || m.type === 'recent_messages');
      expect(reply).toMatchObject({
        type: 'error',
        messageId: 'peek',
        payload: { code: 'not_in_room' },
      });
    });

    it('gives each participant its conversation oldest first and nobody else any of it', async () => {
      const [a, b, c] = [await connect(), await connect(), await connect()];
      a.send({ type: 'chat_message', toUser: b.userId, payload: { content: 'hi b' } });
      await b.nextOfType('chat_message');
      b.send({ type: 'chat_message', toUser: a.userId, payload: { content: 'hi a' } });
      await a.next((m) => m.type === 'chat_message' && m.incoming === true);

      const forA = await ask(a, { type: 'get_direct_messages', payload: { withUser: b.userId } });
      expect(forA.payload).toMatchObject({ withUser: b.userId });
      expect(contents(forA)).toStrictEqual(['hi b', 'hi a']);
      const flags = (reply: Received) =>
        (reply.payload as { messages: Received[] }).messages.map((m) => m.incoming);
      expect(flags(forA)).toStrictEqual([false, true]);
      const forB = await ask(b, { type: 'get_direct_messages', payload: { withUser: a.userId } });
      expect(flags(forB)).toStrictEqual([true, false]);
      const forC = await ask(c, { type: 'get_direct_messages', payload: { withUser: b.userId } });
      expect(contents(forC)).toStrictEqual([]);
    });
  });
}
