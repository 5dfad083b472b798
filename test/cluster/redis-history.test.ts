/**
 * Chat history on Redis Streams against a real redis-server: ids from Redis's clock across nodes
 * and restarts, pages, exact trimming by count and age, late appends from another node, exact
 * texts, and outages.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisHistory } from '../../src/cluster/redis-history.ts';
import { type RedisLink, type RedisReply, RedisUnavailableError } from '../../src/cluster/redis.ts';
import type { HistoryConfig } from '../../src/core/config.ts';
import {
  type HistoryStore,
  pairConversation,
  roomConversation,
  type StoredMessage,
} from '../../src/core/history.ts';
import { startRedis, type TestRedis, testLinks, until } from './redis-server.ts';

const CONFIG: HistoryConfig = { enabled: true, limit: 100, ttlMs: 3_600_000, maxBytes: 1 << 20 };
const ROOM = roomConversation('lobby');

let redis: TestRedis;
let admin: RedisLink;
let prefixes = 0;

const links = testLinks(() => redis.url);
const openLink = links.open;

/** A fresh key prefix, so every test has conversations of its own in the shared Redis. */
const freshPrefix = () => `h${++prefixes}:`;

/** Redis's clock, in ms. */
async function redisTime(link = admin): Promise<number> {
  const [seconds, micros] = (await link.send('TIME')) as [string, string];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** The id of the first message of millisecond `ms`. */
const idOf = (ms: number) => String(ms * 1000);

/** Stream ids and fields of a conversation's stream, oldest first. */
async function entries(prefix: string, conversation: string) {
  const reply = (await admin.send('XRANGE', `${prefix}history:${conversation}`, '-', '+')) as [
    string,
    RedisReply[],
  ][];
  return reply.map(([at, fields]) => ({ at, fields }));
}

const asStreamId = (id: string) => `${Math.floor(Number(id) / 1000)}-${Number(id) % 1000}`;

beforeAll(async () => {
  redis = await startRedis();
  admin = await openLink();
});

afterAll(async () => {
  await links.closeAll();
  await redis?.stop();
});

describe('ids', () => {
  it('gives 16-digit ids from Redis clock (not the caller now), rising within a ms', async () => {
    const history = createRedisHistory(admin, CONFIG, { prefix: freshPrefix() });
    const before = await redisTime();
    // Pipelined on one connection: many land in the same millisecond.
    const ids = await Promise.all(Array.from({ length: 50 }, () => history.nextId(ROOM, 0)));
    const after = await redisTime();
    for (const id of ids) expect(id).toMatch(/^\d{16}$/);
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(Number(ids[0]!)).toBeGreaterThanOrEqual(before * 1000);
    expect(Number(ids.at(-1)!)).toBeLessThan((after + 1) * 1000);
  });

  it('keeps ids of one conversation unique and in order across two nodes', async () => {
    const prefix = freshPrefix();
    const nodes = [await openLink(), await openLink()].map((link) =>
      createRedisHistory(link, CONFIG, { prefix }),
    );
    const batches = await Promise.all(
      nodes.map((node) => Promise.all(Array.from({ length: 300 }, () => node.nextId(ROOM, 0)))),
    );
    // Each node's commands run in the order it sent them (one connection each).
    for (const ids of batches)
      for (let i = 1; i < ids.length; i++)
        expect(Number(ids[i]!)).toBeGreaterThan(Number(ids[i - 1]!));
    const all = batches.flat();
    expect(new Set(all).size).toBe(all.length);
    const largest = [...all].sort().at(-1)!;
    expect(await admin.send('GET', `${prefix}history-id:${ROOM}`)).toBe(largest);
    // Taking turns, each waiting for the other's answer: every id above the one before.
    let last = largest;
    for (let turn = 0; turn < 20; turn++) {
      const id = await nodes[turn % 2]!.nextId(ROOM, 0);
      expect(id > last).toBe(true);
      last = id;
    }
  });

  it('goes on rising after Redis restarts empty', async () => {
    const own = await startRedis();
    try {
      const link = await openLink(own.url);
      const history = createRedisHistory(link, CONFIG, { prefix: freshPrefix() });
      // A burst borrows ids from the next milliseconds: the restarted Redis must pass them too.
      const ids = await Promise.all(Array.from({ length: 3000 }, () => history.nextId(ROOM, 0)));
      const largest = ids.at(-1)!;
      const restarted = new Promise<void>((resolve) =>
        link.on('ready', (info) => info.restarted && resolve()),
      );
      await own.restart();
      await restarted;
      expect(await link.send('DBSIZE')).toBe(0);
      const next = await history.nextId(ROOM, 0);
      expect(next).toMatch(/^\d{16}$/);
      expect(next > largest).toBe(true);
    } finally {
      await own.stop();
    }
  }, 15_000);
});

describe('append and read', () => {
  /** Appends `count` messages to `conversation`, each with an id from the store; returns them. */
  async function chat(history: HistoryStore, conversation: string, count: number) {
    const sent: StoredMessage[] = [];
    for (let i = 0; i < count; i++) {
      const message = { id: await history.nextId(conversation, 0), text: `m${i}` };
      await history.append(conversation, message, 0);
      sent.push(message);
    }
    return sent;
  }

  it('reads newest first, pages back with before, and honours limit', async () => {
    const history = createRedisHistory(admin, CONFIG, { prefix: freshPrefix() });
    const sent = await chat(history, ROOM, 10);
    const newestFirst = [...sent].reverse();
    expect(await history.read(ROOM, undefined, 100, 0)).toStrictEqual(newestFirst);
    expect(await history.read(ROOM, undefined, 3, 0)).toStrictEqual(newestFirst.slice(0, 3));

    const paged: StoredMessage[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await history.read(ROOM, before, 3, 0);
      if (page.length === 0) break;
      expect(page.length).toBeLessThanOrEqual(3);
      paged.push(...page);
      before = page.at(-1)!.id;
    }
    expect(paged).toStrictEqual(newestFirst);

    // Strictly below `before`: an id, a number between two ids, below or above every id.
    expect(await history.read(ROOM, sent[4]!.id, 100, 0)).toStrictEqual(newestFirst.slice(6, 10));
    expect(await history.read(ROOM, String(Number(sent[4]!.id) + 1), 1, 0)).toStrictEqual([
      sent[4],
    ]);
    expect(await history.read(ROOM, sent[0]!.id, 100, 0)).toStrictEqual([]);
    expect(await history.read(ROOM, '0000000000000000', 100, 0)).toStrictEqual([]);
    expect(await history.read(ROOM, '9999999999999999', 2, 0)).toStrictEqual(
      newestFirst.slice(0, 2),
    );
    expect(await history.read(ROOM, '10000000000000000000', 2, 0)).toStrictEqual(
      newestFirst.slice(0, 2),
    );
    expect(await history.read(roomConversation('empty'), undefined, 10, 0)).toStrictEqual([]);
  });

  it('trims each conversation exactly to the configured limit', async () => {
    const prefix = freshPrefix();
    const history = createRedisHistory(admin, { ...CONFIG, limit: 5 }, { prefix });
    const sent = await chat(history, ROOM, 12);
    expect(await admin.send('XLEN', `${prefix}history:${ROOM}`)).toBe(5);
    expect(await history.read(ROOM, undefined, 100, 0)).toStrictEqual(sent.slice(7).reverse());
  });

  it('keeps late appends from other nodes in id order, and replaces a retried one', async () => {
    const prefix = freshPrefix();
    const config = { ...CONFIG, limit: 4 };
    const [a, b] = [await openLink(), await openLink()].map((link) =>
      createRedisHistory(link, config, { prefix }),
    );
    // Node a names messages 1, 2 and 5, node b 3, 4 and 6 (in Redis's order); the appends
    // arrive out of that order.
    const named: StoredMessage[] = [];
    for (const node of [a, a, b, b, a, b]) {
      const id = await node!.nextId(ROOM, 0);
      named.push({ id, text: `message ${named.length + 1}` });
    }
    const [m1, m2, m3, m4, m5, m6] = named;
    await b!.append(ROOM, m6!, 0);
    await a!.append(ROOM, m5!, 0);
    await b!.append(ROOM, m3!, 0);
    expect(await a!.read(ROOM, undefined, 10, 0)).toStrictEqual([m6, m5, m3]);
    await a!.append(ROOM, m2!, 0);
    await b!.append(ROOM, m4!, 0);
    // The limit keeps the 4 largest ids, not the last 4 appended.
    expect(await a!.read(ROOM, undefined, 10, 0)).toStrictEqual([m6, m5, m4, m3]);
    // Older than the 4 kept: read back nowhere, and the kept ones stay.
    await a!.append(ROOM, m1!, 0);
    expect(await b!.read(ROOM, undefined, 10, 0)).toStrictEqual([m6, m5, m4, m3]);
    expect(await b!.read(ROOM, m5!.id, 10, 0)).toStrictEqual([m4, m3]);
    // Every stream id is its message's id, and the stream takes later appends as usual.
    const m7 = { id: await a!.nextId(ROOM, 0), text: 'message 7' };
    await b!.append(ROOM, m7, 0);
    expect(await entries(prefix, ROOM)).toStrictEqual(
      [m4, m5, m6, m7].map((m) => ({ at: asStreamId(m!.id), fields: ['t', m!.text] })),
    );
    // The same id again (a retry) replaces the message, in its place.
    const retried = { id: m5!.id, text: 'message 5, again' };
    await a!.append(ROOM, retried, 0);
    expect(await a!.read(ROOM, undefined, 10, 0)).toStrictEqual([m7, m6, retried, m4]);
  });

  it('round-trips any text exactly, in conversations whose names hold newlines', async () => {
    const prefix = freshPrefix();
    const history = createRedisHistory(admin, CONFIG, { prefix });
    const texts = [
      '{"type":"chat_message","payload":{"content":"say \\"hi\\"\\n"}}',
      'line one\nline two\r\n\ttabbed',
      'emoji 👋🏽 and 汉字, é, \u0000 NUL, %s %d %.0f, \\ backslash, \'single\' "double"',
      '',
      '  spaces around, and a newline at the end\n',
      'x'.repeat(100_000),
    ];
    const pair = pairConversation('alice', 'bob');
    expect(pair).toContain('\n');
    const neighbour = pairConversation('alice', 'bobby');
    const sent: StoredMessage[] = [];
    for (const text of texts) {
      const message = { id: await history.nextId(pair, 0), text };
      await history.append(pair, message, 0);
      sent.push(message);
    }
    await history.append(neighbour, { id: await history.nextId(neighbour, 0), text: 'other' }, 0);
    expect(await history.read(pair, undefined, 10, 0)).toStrictEqual(sent.reverse());
    expect((await history.read(neighbour, undefined, 10, 0)).map((m) => m.text)).toStrictEqual([
      'other',
    ]);
    expect(await admin.send('EXISTS', `${prefix}history:d:alice\nbob`)).toBe(1);
    expect(await admin.send('EXISTS', `${prefix}history-id:d:alice\nbob`)).toBe(1);
  });

  it('forgets messages older than the TTL on Redis clock, then the keys expire', async () => {
    const prefix = freshPrefix();
    const ttlMs = 1000;
    const history = createRedisHistory(admin, { ...CONFIG, ttlMs }, { prefix });
    const stream = `${prefix}history:${ROOM}`;
    const now = await redisTime();
    // The caller's clock is a day off: only Redis's counts.
    const skew = 86_400_000;
    const expired = { id: idOf(now - 1100), text: 'expired' };
    const old = { id: idOf(now - 700), text: 'old' };
    const fresh = { id: idOf(now), text: 'fresh' };
    for (const message of [expired, old, fresh]) await history.append(ROOM, message, now + skew);
    expect(await admin.send('XLEN', stream)).toBe(2);
    const pttl = (await admin.send('PTTL', stream)) as number;
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(ttlMs);
    expect(await history.read(ROOM, undefined, 10, now - skew)).toStrictEqual([fresh, old]);

    // About 300 ms later `old` is past the TTL: reads skip it, the next append trims it.
    await until(
      async () => (await history.read(ROOM, undefined, 10, 0)).length < 2,
      2000,
      'old expired',
    );
    expect(await history.read(ROOM, undefined, 10, 0)).toStrictEqual([fresh]);
    expect(await admin.send('XLEN', stream)).toBe(2);
    const newer = { id: await history.nextId(ROOM, 0), text: 'newer' };
    await history.append(ROOM, newer, 0);
    expect(await entries(prefix, ROOM)).toStrictEqual(
      [fresh, newer].map((m) => ({ at: asStreamId(m.id), fields: ['t', m.text] })),
    );

    // A TTL after the last append and the last id, the conversation leaves nothing behind.
    await until(
      async () => ((await admin.send('KEYS', `${prefix}*`)) as string[]).length === 0,
      3000,
      'the keys expired',
    );
    expect(await history.read(ROOM, undefined, 10, 0)).toStrictEqual([]);
  });
});

describe('outages', () => {
  it('rejects every method with unavailable within 1.5 s while Redis is stopped', async () => {
    const own = await startRedis();
    try {
      const link = await openLink(own.url);
      const history = createRedisHistory(link, CONFIG, { prefix: freshPrefix() });
      // A node that has used history before: its scripts are cached, EVALSHA runs as sent.
      const message = { id: await history.nextId(ROOM, 0), text: 'before' };
      await history.append(ROOM, message, 0);
      expect(await history.read(ROOM, undefined, 10, 0)).toStrictEqual([message]);
      own.pause();
      const started = Date.now();
      const outcomes = await Promise.all(
        [
          history.nextId(ROOM, 0),
          history.append(ROOM, { id: String(Number(message.id) + 1), text: 'during' }, 0),
          history.read(ROOM, undefined, 10, 0),
        ].map((attempt) => Promise.resolve(attempt).catch((error: unknown) => error)),
      );
      const elapsed = Date.now() - started;
      for (const outcome of outcomes) {
        expect(outcome).toBeInstanceOf(RedisUnavailableError);
        expect((outcome as RedisUnavailableError).code).toBe('unavailable');
      }
      expect(elapsed).toBeLessThan(1500);
      own.resume();
    } finally {
      await own.stop();
    }
  }, 15_000);
});
