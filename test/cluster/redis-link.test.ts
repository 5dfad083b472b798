/** The Redis link against a real redis-server: URLs, auth, scripts, pub/sub, outages. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRedisLink,
  defineScript,
  type RedisLink,
  RedisUnavailableError,
  redisOptionsFromUrl,
} from '../../src/cluster/redis.ts';
import { startRedis, type TestRedis } from './redis-server.ts';

let redis: TestRedis;
const links: RedisLink[] = [];

function open(url = redis.url, options?: Parameters<typeof createRedisLink>[1]): RedisLink {
  const link = createRedisLink(url, options);
  links.push(link);
  return link;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(links.map((link) => link.close()));
  await redis?.stop();
});

describe('REDIS_URL', () => {
  it('reads host, port, user, password and db from redis:// and rediss:// URLs', () => {
    expect(redisOptionsFromUrl('redis://127.0.0.1:6380')).toEqual({
      host: '127.0.0.1',
      port: 6380,
    });
    expect(redisOptionsFromUrl('redis://default:p%40ss%3Aword@cache.internal/3')).toEqual({
      host: 'cache.internal',
      port: 6379,
      username: 'default',
      password: 'p@ss:word',
      db: 3,
    });
    expect(redisOptionsFromUrl('rediss://:token@eu1.example.upstash.io:6379')).toEqual({
      host: 'eu1.example.upstash.io',
      port: 6379,
      password: 'token',
      tls: { servername: 'eu1.example.upstash.io' },
    });
    expect(redisOptionsFromUrl('redis://[::1]:7000')).toMatchObject({ host: '::1', port: 7000 });
    // An address is checked against the certificate's IP entries, never sent as the server name.
    expect(redisOptionsFromUrl('rediss://127.0.0.1:6380')).toEqual({
      host: '127.0.0.1',
      port: 6380,
      tls: {},
    });
    expect(redisOptionsFromUrl('rediss://[::1]:6380')).toMatchObject({ host: '::1', tls: {} });
    expect(() => redisOptionsFromUrl('http://127.0.0.1:6379')).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => redisOptionsFromUrl('redis://127.0.0.1/x')).toThrow(/database/);
  });

  it('logs in with the user and password of the URL, and stays unavailable with a wrong one', async () => {
    const admin = open();
    await admin.whenReady(5000);
    await admin.send('ACL', 'SETUSER', 'alice', 'on', '>s3cr:t@', '~*', '&*', '+@all');
    const alice = open(`redis://alice:${encodeURIComponent('s3cr:t@')}@127.0.0.1:${redis.port}`);
    await alice.whenReady(5000);
    expect(await alice.send('ACL', 'WHOAMI')).toBe('alice');
    const errors: Error[] = [];
    const wrong = open(`redis://alice:nope@127.0.0.1:${redis.port}`, {
      onError: (error) => errors.push(error),
    });
    await expect(wrong.whenReady(800)).rejects.toBeInstanceOf(RedisUnavailableError);
    await expect(wrong.send('PING')).rejects.toMatchObject({ code: 'unavailable' });
    expect(errors.some((error) => /WRONGPASS/.test(error.message))).toBe(true);
  });
});

describe('commands and scripts', () => {
  it('sends commands and returns strings, numbers, arrays and null', async () => {
    const link = open();
    await link.whenReady(5000);
    expect(link.ready).toBe(true);
    expect(await link.send('SET', 'link:k', 'v')).toBe('OK');
    expect(await link.send('GET', 'link:k')).toBe('v');
    expect(await link.send('GET', 'link:missing')).toBeNull();
    expect(await link.send('RPUSH', 'link:l', 'a', 1)).toBe(2);
    expect(await link.send('LRANGE', 'link:l', 0, -1)).toEqual(['a', '1']);
    // An error Redis answers is not an outage: it comes back as Redis said it.
    const wrongType = await link.send('INCR', 'link:l').catch((error: unknown) => error);
    expect(wrongType).not.toBeInstanceOf(RedisUnavailableError);
    expect(String(wrongType)).toMatch(/WRONGTYPE/);
  });

  it('runs a script by SHA, and by EVAL after the script cache was flushed', async () => {
    const link = open();
    await link.whenReady(5000);
    const script = defineScript(`return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}`);
    expect(await link.run(script, ['link:n'], ['x'])).toEqual(['link:n', 'x', 1]);
    expect(await link.send('SCRIPT', 'EXISTS', script.sha)).toEqual([1]);
    await link.send('SCRIPT', 'FLUSH');
    expect(await link.run(script, ['link:n'], ['y'])).toEqual(['link:n', 'y', 2]);
    expect(await link.send('SCRIPT', 'EXISTS', script.sha)).toEqual([1]);
  });

  it('estimates Redis clock within a few milliseconds on loopback', async () => {
    const link = open();
    await link.whenReady(5000);
    const [seconds, micros] = (await link.send('TIME')) as [string, string];
    const redisMs = Number(seconds) * 1000 + Number(micros) / 1000;
    expect(Math.abs(link.redisNow() - redisMs)).toBeLessThan(50);
  });
});

describe('pub/sub', () => {
  it('delivers messages on subscribed channels only, to every handler, until unsubscribed', async () => {
    const publisher = open();
    const subscriber = open();
    await Promise.all([publisher.whenReady(5000), subscriber.whenReady(5000)]);
    const got: string[] = [];
    const off = subscriber.onMessage((channel, message) => got.push(`${channel}=${message}`));
    // The subscriber connection opens on first use: subscribe waits for it.
    await subscriber.subscribe('ch:a');
    await subscriber.subscribe('ch:b');
    await publisher.send('PUBLISH', 'ch:a', 'one');
    await publisher.send('PUBLISH', 'ch:c', 'never');
    await publisher.send('PUBLISH', 'ch:b', 'two');
    await until(() => got.length >= 2, 2000, 'two messages');
    await subscriber.unsubscribe('ch:a');
    await publisher.send('PUBLISH', 'ch:a', 'late');
    await publisher.send('PUBLISH', 'ch:b', 'three');
    await until(() => got.length >= 3, 2000, 'the third message');
    off();
    await publisher.send('PUBLISH', 'ch:b', 'unheard');
    await sleep(50);
    expect(got).toEqual(['ch:a=one', 'ch:b=two', 'ch:b=three']);
  });
});

describe('outages', () => {
  it('answers unavailable at once while Redis is unreachable, and connects once it is there', async () => {
    const spare = await startRedis();
    const port = spare.port;
    await spare.kill();
    const link = open(`redis://127.0.0.1:${port}`);
    const started = Date.now();
    await expect(link.send('PING')).rejects.toBeInstanceOf(RedisUnavailableError);
    expect(Date.now() - started).toBeLessThan(100);
    expect(link.ready).toBe(false);
    await link.close();
  });

  it('times a stalled command out in about a second and never hangs (SIGSTOP)', async () => {
    const own = await startRedis();
    try {
      const link = open(own.url);
      await link.whenReady(5000);
      await link.send('SET', 'k', 'before');
      own.pause();
      const started = Date.now();
      const results = await Promise.allSettled([
        link.send('GET', 'k'),
        link.send('SET', 'k', 'during'),
        link.send('PING'),
      ]);
      const elapsed = Date.now() - started;
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      for (const r of results)
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RedisUnavailableError);
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(1500);
      own.resume();
      // The connection survives a stall: the late replies are dropped, new commands work.
      await until(
        () =>
          link.send('PING').then(
            (reply) => reply === 'PONG',
            () => false,
          ),
        3000,
        'PONG after SIGCONT',
      );
      // Written before the stall, so Redis ran it when it woke: a timeout is no proof of nothing done.
      expect(await link.send('GET', 'k')).toBe('during');
    } finally {
      await own.stop();
    }
  });

  it('reports down and ready (restarted, empty) around a restart, and never replays onto it', async () => {
    const own = await startRedis();
    try {
      const link = open(own.url);
      const events: string[] = [];
      link.on('connect', () => events.push('connect'));
      // A command sent the moment the link is down: asked later, the link may be back already.
      let whileDown: Promise<unknown> | undefined;
      link.on('down', () => {
        events.push('down');
        whileDown ??= link.send('PING').catch((error: unknown) => error);
      });
      link.on('ready', (info) =>
        events.push(`ready first=${info.first} restarted=${info.restarted}`),
      );
      await link.whenReady(5000);
      await until(() => events.includes('ready first=true restarted=false'), 2000, 'first ready');
      await link.send('SET', 'k', 'v');
      own.pause();
      // Written to the old Redis, never answered: must not reach the new one.
      const stuck = link.send('SET', 'replayed', 'yes').catch((error: unknown) => error);
      await sleep(100);
      const started = Date.now();
      await own.restart();
      expect(await stuck).toBeInstanceOf(RedisUnavailableError);
      await until(() => events.includes('down'), 3000, 'down');
      expect(await whileDown).toBeInstanceOf(RedisUnavailableError);
      await until(
        () => events.includes('ready first=false restarted=true'),
        5000,
        'ready after the restart',
      );
      const back = Date.now() - started;
      expect(back).toBeLessThan(5000);
      expect(await link.send('GET', 'k')).toBeNull();
      await sleep(200);
      expect(await link.send('EXISTS', 'replayed')).toBe(0);
      expect(events).toEqual([
        'connect',
        'ready first=true restarted=false',
        'down',
        'connect',
        'ready first=false restarted=true',
      ]);
    } finally {
      await own.stop();
    }
  });

  it('subscribes again to its channels after Redis comes back', async () => {
    const own = await startRedis();
    try {
      const publisher = open(own.url);
      const subscriber = open(own.url);
      const got: string[] = [];
      subscriber.onMessage((_channel, message) => got.push(message));
      await publisher.whenReady(5000);
      const subscribed = () =>
        subscriber.subscribe('room').then(
          () => true,
          () => false,
        );
      await until(subscribed, 5000, 'subscribe');
      await own.restart();
      const reach = async () => {
        await publisher.send('PUBLISH', 'room', 'after').catch(() => 0);
        return got.includes('after');
      };
      await until(reach, 8000, 'a message after the restart');
    } finally {
      await own.stop();
    }
  });
});
