/**
 * Chat history shared by every node: a `HistoryStore` (src/core/history.ts) on Redis Streams, one
 * stream per conversation, `<prefix>history:<conversation>`, one entry per message, its stream id
 * the message id split as `ms-n` (id = ms * 1000 + n) and its one field `t` the text. A page is one
 * XREVRANGE below `before`; the stream is trimmed exactly to `limit` entries and to the TTL on
 * each append, and the key expires a TTL after its last append.
 *
 * Ids come from Redis's clock, not the caller's (nodes' clocks differ): `nextId` is one Lua script
 * that reads `TIME` and the conversation's last id (`<prefix>history-id:<conversation>`) and
 * stores max(ms * 1000, last + 1), as `createIdClock` does in one process. The script is atomic,
 * so ids of one conversation are unique and increase in the order Redis runs the scripts,
 * whichever node asks. The counter expires a TTL after the millisecond of its last id, when the
 * clock alone is past it; a Redis restarted empty starts from its clock, past every id it gave.
 *
 * Appends can arrive out of order: node A takes an id, node B a larger one, and B's append reaches
 * Redis first. A stream refuses an id at or below its last one, so the append script then lifts
 * the entries from that id on (XDEL), lowers the stream's last id to the entry below (XSETID),
 * adds the late message and puts the lifted entries back, all with their own ids. Stream ids thus
 * always are the message ids, in order, and reads stay one exact range; the entries moved are
 * those appended during the late one's delay, and never more than `limit`. (Nobody reads these
 * streams with XREAD or consumer groups, which would see the moved entries again.)
 *
 * Lua numbers are doubles: ids (below 10^16) and milliseconds are exact below 2^53, and are
 * formatted with `%.0f`, never `tostring` (which switches to an exponent). Redis's answers come
 * through the link: when Redis is down or silent, every method rejects with
 * `RedisUnavailableError` within the link's command timeout.
 */
import type { HistoryConfig } from '../core/config.ts';
import { ID_DIGITS, type HistoryStore, type StoredMessage } from '../core/history.ts';
import { defineScript, type RedisLink, type RedisReply } from './redis.ts';

/**
 * `next_id(key, ttl, now)` in Lua: the conversation's last id, the TTL (ms), Redis's clock (ms).
 * Returns the new id, max(now * 1000, last + 1), as a number and as its 16 digits. The counter
 * lives a TTL (at least 1 ms) past the millisecond its id names, which a burst of over a thousand
 * ids in a millisecond puts ahead of the clock: until then the clock alone could give that id
 * again. Shared with the cluster's routing script, which names a direct message as it keeps it.
 */
export const NEXT_ID_FUNCTION = `
local function next_id(key, ttl, now)
local last = tonumber(redis.call('GET', key) or '-1')
local id = math.max(now * 1000, last + 1)
local until_ms = math.floor(id / 1000) + math.max(ttl, 1)
local text = string.format('%.0f', id)
redis.call('SET', key, text, 'PXAT', string.format('%.0f', until_ms))
return id, text
end
`;

/** KEYS[1] the conversation's last id. ARGV[1] the TTL (ms). Returns the new id. */
const NEXT_ID = defineScript(`${NEXT_ID_FUNCTION}
local t = redis.call('TIME')
local id, text = next_id(KEYS[1], tonumber(ARGV[1]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return text
`);

/**
 * `append(key, at, ms, text, limit, ttl)` in Lua, for the scripts that keep a message: the
 * stream, the message's stream id (ms-n), its ms, its text, the limit, the TTL (ms). Returns 1 when
 * kept, 0 when the message was older than the TTL already (nothing written). Shared with the
 * cluster's routing script, which keeps a direct message in the same step that delivers it.
 */
export const APPEND_FUNCTION = `
local function append(key, at, ms, text, limit, ttl)
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - ttl
if ms < oldest then return 0 end
local added = redis.pcall('XADD', key, at, 't', text)
if type(added) == 'table' and added.err then
  if not string.find(added.err, 'equal or smaller', 1, true) then
    return redis.error_reply(added.err)
  end
  -- A later message is in already: lift it and every one after, add this one, put them back.
  local lifted = redis.call('XRANGE', key, at, '+')
  for _, entry in ipairs(lifted) do redis.call('XDEL', key, entry[1]) end
  local below = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
  redis.call('XSETID', key, below and below[1] or '0-0')
  redis.call('XADD', key, at, 't', text)
  for _, entry in ipairs(lifted) do
    -- The same id again (a retried append) is replaced, as the SQLite store does.
    if entry[1] ~= at then redis.call('XADD', key, entry[1], unpack(entry[2])) end
  end
end
redis.call('XTRIM', key, 'MAXLEN', limit)
redis.call('XTRIM', key, 'MINID', string.format('%.0f', math.max(oldest, 0)) .. '-0')
redis.call('PEXPIRE', key, ttl)
return 1
end
`;

/** KEYS[1] the stream. ARGV the message's stream id, ms, text, then the limit and the TTL. */
const APPEND = defineScript(`${APPEND_FUNCTION}
return append(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5]))
`);

/** The key of `conversation`'s last id (`NEXT_ID_FUNCTION`). */
export const idCounterKey = (prefix: string, conversation: string) =>
  `${prefix}history-id:${conversation}`;

/**
 * Where and how `message` of `conversation` is kept: the stream's key and the arguments of the
 * Lua `append` after the key (stream id, ms, text, limit, TTL).
 */
export function appendArguments(
  prefix: string,
  config: HistoryConfig,
  conversation: string,
  message: StoredMessage,
): { key: string; args: [string, number, string, number, number] } {
  const { at, ms } = streamId(message.id);
  return {
    key: `${prefix}history:${conversation}`,
    args: [at, ms, message.text, config.limit, config.ttlMs],
  };
}

/**
 * KEYS[1] the stream. ARGV[1] the upper bound ('+' or an exclusive '(ms-n'), ARGV[2] the count,
 * ARGV[3] the TTL (ms).
 * Returns up to ARGV[2] entries, newest first, none older than the TTL on Redis's clock.
 */
const READ = defineScript(`
local t = redis.call('TIME')
local oldest = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local from = string.format('%.0f', math.max(oldest, 0)) .. '-0'
return redis.call('XREVRANGE', KEYS[1], ARGV[1], from, 'COUNT', ARGV[2])
`);

/** Every id is below this (16 digits): a larger `before` bounds nothing. */
const ID_END = 10n ** BigInt(ID_DIGITS);

/** A message id as its stream id `ms-n`, and its ms. */
function streamId(id: string): { at: string; ms: number } {
  const value = Number(id);
  const ms = Math.floor(value / 1000);
  return { at: `${ms}-${value % 1000}`, ms };
}

/** A stream id `ms-n` as the message id it stands for. */
function messageId(at: string): string {
  const dash = at.indexOf('-');
  const id = Number(at.slice(0, dash)) * 1000 + Number(at.slice(dash + 1));
  return String(id).padStart(ID_DIGITS, '0');
}

export function createRedisHistory(
  link: RedisLink,
  config: HistoryConfig,
  options: { prefix?: string } = {},
): HistoryStore {
  const prefix = options.prefix ?? 'aleatoria:';
  const { ttlMs } = config;
  const streamKey = (conversation: string) => `${prefix}history:${conversation}`;
  const counterKey = (conversation: string) => idCounterKey(prefix, conversation);

  return {
    async nextId(conversation) {
      return String(await link.run(NEXT_ID, [counterKey(conversation)], [ttlMs]));
    },
    async append(conversation, message) {
      const { key, args } = appendArguments(prefix, config, conversation, message);
      await link.run(APPEND, [key], args);
    },
    async read(conversation, before, limit) {
      // Ids are digits (chat.ts's cursor), possibly longer than any id: BigInt keeps them exact.
      const bound = before === undefined ? ID_END : BigInt(before);
      if (limit <= 0 || bound === 0n) return [];
      const end = bound >= ID_END ? '+' : `(${bound / 1000n}-${bound % 1000n}`;
      const entries = (await link.run(READ, [streamKey(conversation)], [end, limit, ttlMs])) as [
        string,
        RedisReply[],
      ][];
      return entries.map(
        ([at, fields]): StoredMessage => ({
          id: messageId(at),
          text: String(fields[1]),
        }),
      );
    },
  };
}
