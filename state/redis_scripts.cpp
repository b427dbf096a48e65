// The Lua scripts of the Redis stores (redis_scripts.hpp). Redis runs Lua 5.1: numbers are
// doubles, exact for integers below 2^53 (times in ms, bucket indexes, micro-USD). Numbers that
// go back to Redis as field names or scores are formatted with %d, never left to Redis's own
// number formatting.
#include "state/redis_scripts.hpp"

namespace toolgate::state::detail {

// Mirrors window_check and window_add (state/window.cpp) exactly: a check at `now` counts the
// bucket floor(now / width) and the 60 before it; a bucket b leaves the window at (b + 61) * width.
// The TTL only collects idle counters; it runs on Redis's clock, hence the margin for replicas
// whose clocks (which pass `now`) are a few seconds off.
redis_script const& admit_script() {
    static redis_script const s(R"lua(
local now = tonumber(ARGV[1])
local out = {1, 0}
local current = {}
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local w, limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local cur = math.floor(now / w)
  local oldest = cur - 60
  current[i] = cur
  local flat = redis.call('HGETALL', KEYS[i])
  local live, stale, used, newest = {}, {}, 0, oldest - 1
  for j = 1, #flat, 2 do
    local b, c = tonumber(flat[j]), tonumber(flat[j + 1])
    if b == nil or b < oldest then
      stale[#stale + 1] = flat[j]
    elseif b <= cur and c ~= nil and c > 0 then
      used = used + c
      live[b] = c
      if b > newest then newest = b end
    end
  end
  if #stale > 0 then redis.call('HDEL', KEYS[i], unpack(stale)) end
  local reset = 0
  if newest >= oldest then reset = math.max(0, (newest + 61) * w - now) end
  local fits = amount <= limit - used
  local remaining, retry = 0, 0
  if fits then
    remaining = limit - used - amount
  else
    remaining = math.max(0, limit - used)
    if amount > limit then
      retry = -1
    else
      local need, freed = used + amount - limit, 0
      for b = oldest, cur do
        local c = live[b]
        if c ~= nil then
          freed = freed + c
          if freed >= need then
            retry = math.max(1, (b + 61) * w - now)
            break
          end
        end
      end
    end
    if out[1] == 1 then
      out[1] = 0
      out[2] = i - 1
    end
  end
  local k = #out
  out[k + 1] = fits and 1 or 0
  out[k + 2] = used
  out[k + 3] = remaining
  out[k + 4] = reset
  out[k + 5] = retry
end
if out[1] == 1 then
  for i = 1, #KEYS do
    local a = 2 + (i - 1) * 4
    local field = string.format('%d', current[i])
    if redis.call('HINCRBY', KEYS[i], field, ARGV[a + 3]) < 0 then redis.call('HSET', KEYS[i], field, '0') end
    local ttl = math.max(2 * tonumber(ARGV[a + 1]), 62 * tonumber(ARGV[a])) + 10000
    redis.call('PEXPIRE', KEYS[i], string.format('%d', ttl))
  end
end
return out
)lua");
    return s;
}

// Like window_add: only a counter that exists, only a bucket still in the window, never below 0.
redis_script const& adjust_script() {
    static redis_script const s(R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local now, w, at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cur, b = math.floor(now / w), math.floor(at / w)
if b < cur - 60 or b > cur then return 0 end
local field = string.format('%d', b)
if redis.call('HINCRBY', KEYS[1], field, ARGV[4]) < 0 then redis.call('HSET', KEYS[1], field, '0') end
return 1
)lua");
    return s;
}

// A lease lapses at its expiry (score <= now); the set itself expires when no lease is left.
redis_script const& acquire_script() {
    static redis_script const s(R"lua(
local now, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], string.format('%d', now + lease_ms), ARGV[3])
local keep = 2 * lease_ms + 1000
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], string.format('%d', keep)) end
return 1
)lua");
    return s;
}

// All or nothing over the lines; a reservation made again under the same id replaces the first
// (as in ledger_book). A member is "<reservation>:<micros>"; the id is everything before the
// last colon.
redis_script const& reserve_script() {
    static redis_script const s(R"lua(
local now, id, micros, lease_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 2
local out = {1, 0}
for i = 1, n do
  local h, r = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZREMRANGEBYSCORE', r, '-inf', ARGV[1])
  local used = tonumber(redis.call('HGET', h, 'spent') or '0') or 0
  for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do
    local held = tonumber(string.match(m, ':(%-?%d+)$'))
    if held ~= nil then used = used + held end
  end
  out[#out + 1] = used
  if out[1] == 1 and used + micros > tonumber(ARGV[4 + i]) then
    out[1] = 0
    out[2] = i - 1
  end
end
if out[1] == 1 then
  local member = id .. ':' .. ARGV[3]
  local score = string.format('%d', now + lease_ms)
  local keep = lease_ms + 60000
  for i = 1, n do
    local r = KEYS[2 * i]
    for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do
      if string.match(m, '^(.*):%-?%d+$') == id then redis.call('ZREM', r, m) end
    end
    redis.call('ZADD', r, score, member)
    if redis.call('PTTL', r) < keep then redis.call('PEXPIRE', r, string.format('%d', keep)) end
  end
end
return out
)lua");
    return s;
}

redis_script const& settle_script() {
    static redis_script const s(R"lua(
local id = ARGV[1]
local n = (#KEYS - 1) / 2
for i = 1, n do
  local h, r = KEYS[2 * i - 1], KEYS[2 * i]
  for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do
    if string.match(m, '^(.*):%-?%d+$') == id then redis.call('ZREM', r, m) end
  end
  redis.call('HINCRBY', h, 'spent', ARGV[2])
  redis.call('PEXPIRE', h, ARGV[3])
end
local j = KEYS[#KEYS]
redis.call('LPUSH', j, ARGV[4])
redis.call('LTRIM', j, '0', ARGV[5])
return 1
)lua");
    return s;
}

// A rotation changes the hash: the old hash must stop finding the key, in the same step.
redis_script const& put_key_script() {
    static redis_script const s(R"lua(
local old = redis.call('HGET', KEYS[1], 'hash')
if old and old ~= ARGV[2] and redis.call('HGET', KEYS[2], old) == ARGV[1] then redis.call('HDEL', KEYS[2], old) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'hash', ARGV[2], 'prefix', ARGV[3], 'attrs', ARGV[4], 'created_ms', ARGV[5], 'updated_ms', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
)lua");
    return s;
}

// The record's key is built from the id found (a single Redis, not a cluster: keys need not be
// declared up front).
redis_script const& find_key_script() {
    static redis_script const s(R"lua(
local id = redis.call('HGET', KEYS[1], ARGV[1])
if not id then return false end
return {id, redis.call('HGETALL', ARGV[2] .. id)}
)lua");
    return s;
}

redis_script const& remove_key_script() {
    static redis_script const s(R"lua(
local h = redis.call('HGET', KEYS[1], 'hash')
local existed = redis.call('DEL', KEYS[1])
if h and redis.call('HGET', KEYS[2], h) == ARGV[1] then redis.call('HDEL', KEYS[2], h) end
redis.call('SREM', KEYS[3], ARGV[1])
return existed
)lua");
    return s;
}

}  // namespace toolgate::state::detail
