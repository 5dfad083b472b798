/**
 * The Lua scripts of a cluster node (`cluster.ts`): each one atomic step on the keys that
 * `docs/cluster.md` lists. Every key name is built by the caller from `REDIS_PREFIX`, except in
 * `SWEEP`, which reaches a dead node's own keys by their prefix.
 */
import { ID_DIGITS } from '../core/history.ts';
import { APPEND_FUNCTION, NEXT_ID_FUNCTION } from './redis-history.ts';
import { defineScript } from './redis.ts';

/**
 * KEYS users, nodes, this node's users. ARGV userId, the claim ("{node}/{n}"), the claim it may
 * replace, deadAfterMs, this node. Claims `userId` unless a live other node holds it by a claim
 * other than the one to replace; returns nothing when claimed, else the holder's claim.
 */
export const CLAIM = defineScript(`
local owner = redis.call('HGET', KEYS[1], ARGV[1])
local node = owner and string.match(owner, '^[^/]*')
if owner and owner ~= ARGV[3] and node ~= ARGV[5] then
  local beat = redis.call('ZSCORE', KEYS[2], node)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if beat and tonumber(beat) >= now - tonumber(ARGV[4]) then return owner end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return false
`);

/** KEYS users, this node's users. ARGV userId, me. Frees `userId` if this node holds it. */
export const RELEASE = defineScript(`
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and string.match(owner, '^[^/]*') == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
`);

/**
 * KEYS the user's ended call (`ended-calls.ts`). ARGV the token's digest. Takes the call's partner
 * if the digest is the one kept (deleting it: told once); else nothing, and it stays.
 */
export const TAKE_ENDED = defineScript(`
local call = redis.call('GET', KEYS[1])
if not call then return false end
local cut = string.find(call, '\\n', 1, true)
if not cut or string.sub(call, 1, cut - 1) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return string.sub(call, cut + 1)
`);

/** Separates the messages of one batch published to an inbox (`ROUTE`); never in JSON or a userId. */
export const BATCH_SEPARATOR = '\x1e';

/** Fields of a message in `ROUTE`'s ARGV that is only routed (not kept in history)... */
export const ROUTED_FIELDS = 4;
/** ...and of one that is kept too. */
export const KEPT_FIELDS = 10;

/**
 * Routes a batch of messages, each to the node holding its user: the frames a node had for users
 * elsewhere within one turn of its event loop (`inbox.ts`).
 *
 * KEYS users, then the history keys the messages need. ARGV inbox channel prefix, deadline (ms,
 * Redis's clock), then per message: userId, the op's header, the frame, the index in KEYS of its
 * stream (0: not kept, and the message's fields end there: ROUTED_FIELDS); for a message kept
 * (KEPT_FIELDS), its stream id, ms, limit, TTL, then, for a direct message still to be named
 * (`UNNAMED` in its frame), the index in KEYS of its conversation's last id and the length of the
 * frame after the placeholder (else 0, 0). A relay, the bulk of what crosses nodes, so costs
 * four arguments to encode and to parse, not ten.
 *
 * A message to be named is named first (as `NEXT_ID` would), the placeholder replaced in its
 * frame. The messages for one node go out as one PUBLISH on its inbox, in their order: a lone
 * message as header .. frame, several as "b\n" and each header .. frame joined by
 * BATCH_SEPARATOR. A message a node heard is kept in its stream in the same step (whoever received
 * it finds it in history). Returns per message how many nodes heard it (0: nobody holds the
 * user), then per message its new id ('' when not named); all -1 past the deadline: their
 * senders were told `unavailable` already, so messages Redis gets to late (a stall) are not
 * delivered behind their backs.
 */
export const ROUTE = defineScript(`${APPEND_FUNCTION}${NEXT_ID_FUNCTION}
local starts = {}
local cursor = 2
while cursor < #ARGV do
  starts[#starts + 1] = cursor
  cursor = cursor + (tonumber(ARGV[cursor + 4]) > 0 and ${KEPT_FIELDS} or ${ROUTED_FIELDS})
end
local count = #starts
local heard, ids, frames = {}, {}, {}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[2]) then
  for i = 1, count do heard[i] = -1 end
  return heard
end
local nodes, batches, nodeOf = {}, {}, {}
for i = 1, count do
  local at = starts[i]
  local owner = redis.call('HGET', KEYS[1], ARGV[at + 1])
  local frame = ARGV[at + 3]
  heard[i] = 0
  ids[i] = ''
  if owner then
    local counter = tonumber(ARGV[at + 4]) > 0 and tonumber(ARGV[at + 9]) or 0
    if counter > 0 then
      local id, text = next_id(KEYS[counter], tonumber(ARGV[at + 8]), now)
      local cut = #frame - tonumber(ARGV[at + 10])
      frame = string.sub(frame, 1, cut - ${ID_DIGITS}) .. text .. string.sub(frame, cut + 1)
      ids[i] = text
    end
    local node = string.match(owner, '^[^/]*')
    local batch = batches[node]
    if not batch then
      batch = {}
      batches[node] = batch
      nodes[#nodes + 1] = node
    end
    batch[#batch + 1] = ARGV[at + 2] .. frame
    nodeOf[i] = node
  end
  frames[i] = frame
end
local heardBy = {}
for _, node in ipairs(nodes) do
  local batch = batches[node]
  -- '\\30' is BATCH_SEPARATOR.
  local text = #batch == 1 and batch[1] or ('b\\n' .. table.concat(batch, '\\30'))
  heardBy[node] = redis.call('PUBLISH', ARGV[1] .. node, text)
end
for i = 1, count do
  local node = nodeOf[i]
  if node then
    local at = starts[i]
    heard[i] = heardBy[node]
    local stream = tonumber(ARGV[at + 4])
    if heard[i] > 0 and stream > 0 then
      local sid, ms = ARGV[at + 5], tonumber(ARGV[at + 6])
      if ids[i] ~= '' then
        local id = tonumber(ids[i])
        ms = math.floor(id / 1000)
        sid = string.format('%.0f-%.0f', ms, id % 1000)
      end
      append(KEYS[stream], sid, ms, frames[i], ARGV[at + 7], tonumber(ARGV[at + 8]))
    end
  end
end
for i = 1, count do heard[count + i] = ids[i] end
return heard
`);

/**
 * KEYS room, this node's memberships, rooms (room -> members). ARGV userId, membership, joined
 * at, room; ARGV[5] '1' join, else leave.
 */
export const MEMBERSHIP = defineScript(`
if ARGV[5] == '1' then
  if redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
  end
  redis.call('SADD', KEYS[2], ARGV[2])
else
  if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 and redis.call('HINCRBY', KEYS[3], ARGV[4], -1) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[4])
  end
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
`);

/** KEYS nodes. ARGV me. Returns 1 when this node was not listed (first beat, swept, Redis empty). */
export const HEARTBEAT = defineScript(`
local t = redis.call('TIME')
return redis.call('ZADD', KEYS[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), ARGV[1])
`);

/**
 * KEYS nodes. ARGV deadAfterMs, key prefix. Frees every node silent for deadAfterMs: its users
 * (unless another node holds them since), their pool entries and room memberships; then tells
 * every node on channel `cluster`: "dead\n{node}\n{user}\n{user}...". Returns the nodes swept.
 */
export const SWEEP = defineScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[2]
-- No sweep for ARGV[3] ms (Redis stalled, or restarted empty, or every node was cut off): nobody
-- could beat meanwhile either, so old heartbeats prove nothing. Every node then gets a whole
-- deadAfterMs to beat again before anyone is judged.
local marks = prefix .. 'sweeps'
local last = tonumber(redis.call('HGET', marks, 'last'))
redis.call('HSET', marks, 'last', now)
if not last or now - last > tonumber(ARGV[3]) then
  redis.call('HSET', marks, 'resumed', now)
  return {}
end
local resumed = tonumber(redis.call('HGET', marks, 'resumed'))
if resumed and now - resumed < tonumber(ARGV[1]) then return {} end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
for _, node in ipairs(dead) do
  local usersKey = prefix .. 'node:' .. node .. ':users'
  local membersKey = prefix .. 'node:' .. node .. ':members'
  local gone = {}
  local isGone = {}
  local left = {}
  for _, user in ipairs(redis.call('SMEMBERS', usersKey)) do
    local owner = redis.call('HGET', prefix .. 'users', user)
    if not owner or string.match(owner, '^[^/]*') == node then
      if owner then redis.call('HDEL', prefix .. 'users', user) end
      redis.call('ZREM', prefix .. 'pool', user)
      gone[#gone + 1] = user
      isGone[user] = true
    end
  end
  for _, membership in ipairs(redis.call('SMEMBERS', membersKey)) do
    local cut = string.find(membership, '\\n', 1, true)
    local user = string.sub(membership, cut + 1)
    local room = string.sub(membership, 1, cut - 1)
    if isGone[user] and redis.call('ZREM', prefix .. 'room:' .. room, user) == 1 then
      left[#left + 1] = membership
      if redis.call('HINCRBY', prefix .. 'rooms', room, -1) <= 0 then
        redis.call('HDEL', prefix .. 'rooms', room)
      end
    end
  end
  redis.call('DEL', usersKey, membersKey)
  redis.call('ZREM', KEYS[1], node)
  local news = 'dead\\n' .. node .. '\\n' .. table.concat(gone, '\\n') .. '\\n'
  redis.call('PUBLISH', prefix .. 'cluster', news .. '\\n' .. table.concat(left, '\\n'))
end
return dead
`);
