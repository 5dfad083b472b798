/**
 * Run by Deno (test/cluster/deno-link.test.ts): the cluster's Redis link, imported unchanged,
 * against the redis-server at REDIS_URL. Prints one JSON line of what it saw and exits 0, or
 * prints the error and exits 1.
 *
 *   node_modules/.bin/deno run --allow-net --allow-env --allow-read --allow-sys \
 *     test/cluster/deno-link-check.ts
 */
import process from 'node:process';
import { createRedisLink, defineScript, RedisUnavailableError } from '../../src/cluster/redis.ts';

const url = process.env.REDIS_URL;
if (!url) throw new Error('REDIS_URL is not set');

const link = createRedisLink(url);
try {
  await link.whenReady(10_000);
  const ping = await link.send('PING');
  const set = await link.send('SET', 'deno:key', 'from deno');
  const get = await link.send('GET', 'deno:key');
  const script = await link.run(
    defineScript('return redis.call("INCRBY", KEYS[1], ARGV[1])'),
    ['deno:n'],
    [5],
  );
  const got: string[] = [];
  link.onMessage((channel, message) => got.push(`${channel}=${message}`));
  await link.subscribe('deno:channel');
  await link.send('PUBLISH', 'deno:channel', 'hello');
  for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const closed = createRedisLink('redis://127.0.0.1:1');
  const refused = await closed
    .send('PING')
    .catch((error: unknown) => error instanceof RedisUnavailableError);
  await closed.close();
  console.log(
    JSON.stringify({
      runtime: 'Deno' in globalThis ? 'deno' : 'node',
      ping,
      set,
      get,
      script,
      got,
      refused,
    }),
  );
  await link.close();
  process.exit(0);
} catch (error) {
  console.error(error);
  await link.close();
  process.exit(1);
}
