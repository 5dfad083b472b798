/**
 * The Lua scripts of a cluster node (`cluster.ts`): each one atomic step on the keys that
 * `docs/cluster.md` lists. Every key name is built by the caller from `REDIS_PREFIX`, except in
 * `SWEEP`, which reaches a dead node's own keys by their prefix.
 */
import { APPEND_FUNCTION } from './redis-history.ts';
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
 * KEYS users, and a history stream when the message is to be kept. ARGV userId, the op's header,
 * inbox channel prefix, deadline (ms, Redis's clock), the frame, then (to keep it) the message's
 * stream id, ms, limit and TTL. Publishes header .. frame to the inbox of the node holding
 * `userId` and, if a node heard it, keeps the frame in the stream in the same step (whoever
 * received it finds it in history). Returns how many nodes heard it (0: nobody holds the user),
 * or -1 past the deadline: the sender was told `unavailable` already, so a message Redis gets to
 * late (a stall) is not delivered behind its back.
 */
export const ROUTE = defineScript(`${APPEND_FUNCTION}
local t = redis.call('TIME')
if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[4]) then return -1 end
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then return 0 end
local heard = redis.call('PUBLISH', ARGV[3] .. string.match(owner, '^[^/]*'), ARGV[2] .. ARGV[5])
if heard > 0 and KEYS[2] then
  append(KEYS[2], ARGV[6], tonumber(ARGV[7]), ARGV[5], ARGV[8], tonumber(ARGV[9]))
end
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
