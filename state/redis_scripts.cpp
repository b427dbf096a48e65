// The Lua scripts of the Redis stores (redis_scripts.hpp). Redis runs Lua 5.1: numbers are
// doubles, exact for integers below 2^53 (times in ms, bucket indexes, micro-USD). Numbers that
// go back to Redis as field names or scores are formatted with %d, never left to Redis's own
// number formatting.
#include "state/redis_scripts.hpp"

#include <string>

namespace toolgate::state::detail {

namespace {

// Mirrors window_check and window_add (state/window.cpp) exactly: a check at `now` counts the
// bucket floor(now / width) and the 60 before it; a bucket b leaves the window at (b + 61) * width.
// The TTL only collects idle counters; it runs on Redis's clock, hence the margin for replicas
// whose clocks (which pass `now`) are a few seconds off. The checks are keys[k0 + 1 .. k0 + n],
// their arguments args[a0 + 1 ..], four each: bucket width, span, limit, amount.
constexpr char const* window_lib = R"lua(
local function admit_check(keys, k0, n, args, a0, now)
  local out, current = {1, 0}, {}
  for i = 1, n do
    local key = keys[k0 + i]
    local a = a0 + 1 + (i - 1) * 4
    local w, limit, amount = tonumber(args[a]), tonumber(args[a + 2]), tonumber(args[a + 3])
    local cur = math.floor(now / w)
    local oldest = cur - 60
    current[i] = cur
    local flat = redis.call('HGETALL', key)
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
    if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
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
  return out, current
end

local function admit_count(keys, k0, n, args, a0, current)
  for i = 1, n do
    local key = keys[k0 + i]
    local a = a0 + 1 + (i - 1) * 4
    local field = string.format('%d', current[i])
    if redis.call('HINCRBY', key, field, args[a + 3]) < 0 then redis.call('HSET', key, field, '0') end
    local ttl = math.max(2 * tonumber(args[a + 1]), 62 * tonumber(args[a])) + 10000
    redis.call('PEXPIRE', key, string.format('%d', ttl))
  end
end

-- Like window_add: only a counter that exists, only a bucket still in the window, never below 0.
local function adjust_one(key, now, w, at, delta)
  if redis.call('EXISTS', key) == 0 then return 0 end
  local cur, b = math.floor(now / w), math.floor(at / w)
  if b < cur - 60 or b > cur then return 0 end
  local field = string.format('%d', b)
  if redis.call('HINCRBY', key, field, delta) < 0 then redis.call('HSET', key, field, '0') end
  return 1
end
)lua";

// A line is two keys (its hash, its reservations): keys[k0 + 2i - 1], keys[k0 + 2i]. A
// reservation made again under the same id replaces the first (as in ledger_book). A member is
// "<reservation>:<micros>"; the id is everything before the last colon. The hash keeps the sum
// of the live members in 'held' and their number in 'held_n' (as ledger_book keeps its sum), so a
// check reads the hash and the set's size instead of every turn in flight: a member's amount
// leaves the sum when it is removed (settled, replaced, or lapsed at its score). When the size and
// 'held_n' disagree (a set or hash that expired, members written by a gateway of an older version,
// which knew no sum), the sum is counted again from the members.
constexpr char const* ledger_lib = R"lua(
local function micros_of(m) return tonumber(string.match(m, ':(%-?%d+)$')) or 0 end

local function take_held(h, amount)
  redis.call('HINCRBY', h, 'held', string.format('%d', -amount))
  redis.call('HINCRBY', h, 'held_n', '-1')
end

-- What the line has spent and holds at now, after the lapsed reservations are let go.
local function line_state(h, r, now_text)
  local gone = redis.call('ZRANGEBYSCORE', r, '-inf', now_text)
  local drop = 0
  if #gone > 0 then
    for _, m in ipairs(gone) do drop = drop + micros_of(m) end
    redis.call('ZREMRANGEBYSCORE', r, '-inf', now_text)
  end
  local v = redis.call('HMGET', h, 'spent', 'held', 'held_n')
  local spent = tonumber(v[1] or '0') or 0
  local held, n = (tonumber(v[2] or '0') or 0) - drop, (tonumber(v[3] or '0') or 0) - #gone
  local card = redis.call('ZCARD', r)
  if card ~= n or held < 0 then
    held = 0
    if card > 0 then
      for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do held = held + micros_of(m) end
    end
    n = card
  elseif #gone == 0 then
    return spent, held
  end
  if n == 0 then
    if v[2] or v[3] then redis.call('HDEL', h, 'held', 'held_n') end
  else
    redis.call('HSET', h, 'held', string.format('%d', held), 'held_n', string.format('%d', n))
  end
  return spent, held
end

local function reserve_check(keys, k0, n, now_text, micros, limits, l0)
  local out = {1, 0}
  for i = 1, n do
    local spent, held = line_state(keys[k0 + 2 * i - 1], keys[k0 + 2 * i], now_text)
    local used = spent + held
    out[#out + 1] = used
    if out[1] == 1 and used + micros > tonumber(limits[l0 + i]) then
      out[1] = 0
      out[2] = i - 1
    end
  end
  return out
end

local function drop_reservation(h, r, id)
  for _, m in ipairs(redis.call('ZRANGE', r, 0, -1)) do
    if string.match(m, '^(.*):%-?%d+$') == id and redis.call('ZREM', r, m) == 1 then take_held(h, micros_of(m)) end
  end
end

-- fresh: the id is new (a turn's own), so no earlier reservation under it needs dropping.
local function reserve_hold(keys, k0, n, id, micros_text, now, lease_ms, fresh)
  local member = id .. ':' .. micros_text
  local score = string.format('%d', now + lease_ms)
  local keep = lease_ms + 60000
  for i = 1, n do
    local h, r = keys[k0 + 2 * i - 1], keys[k0 + 2 * i]
    if not fresh then drop_reservation(h, r, id) end
    if redis.call('ZADD', r, score, member) == 1 then
      redis.call('HINCRBY', h, 'held', micros_text)
      redis.call('HINCRBY', h, 'held_n', '1')
    end
    if redis.call('PTTL', r) < keep then redis.call('PEXPIRE', r, string.format('%d', keep)) end
    -- A hash only reservations made lives as long as its set (a settle gives it the period's TTL).
    if redis.call('PTTL', h) < keep then redis.call('PEXPIRE', h, string.format('%d', keep)) end
  end
end

-- held: '-1' when not known (the id's members are found and removed), '-2' when nothing was
-- reserved, else the amount reserved under the id (its member is removed at once).
local function settle_lines(keys, k0, n, id, held, actual, ttl, journal, entry, last)
  for i = 1, n do
    local h, r = keys[k0 + 2 * i - 1], keys[k0 + 2 * i]
    if held == '-1' then drop_reservation(h, r, id)
    elseif held ~= '-2' and redis.call('ZREM', r, id .. ':' .. held) == 1 then take_held(h, tonumber(held)) end
    redis.call('HINCRBY', h, 'spent', actual)
    redis.call('PEXPIRE', h, ttl)
  end
  redis.call('LPUSH', journal, entry)
  redis.call('LTRIM', journal, '0', last)
end
)lua";

std::string with(char const* lib, char const* body) { return std::string(lib) + body; }

}  // namespace

redis_script const& admit_script() {
    static redis_script const s(with(window_lib, R"lua(
local now = tonumber(ARGV[1])
local out, current = admit_check(KEYS, 0, #KEYS, ARGV, 1, now)
if out[1] == 1 then admit_count(KEYS, 0, #KEYS, ARGV, 1, current) end
return out
)lua"));
    return s;
}

redis_script const& adjust_script() {
    static redis_script const s(with(window_lib, R"lua(
return adjust_one(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])
)lua"));
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

redis_script const& reserve_script() {
    static redis_script const s(with(ledger_lib, R"lua(
local now, micros, lease_ms = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 2
local out = reserve_check(KEYS, 0, n, ARGV[1], micros, ARGV, 4)
if out[1] == 1 then reserve_hold(KEYS, 0, n, ARGV[2], ARGV[3], now, lease_ms, false) end
return out
)lua"));
    return s;
}

redis_script const& settle_script() {
    static redis_script const s(with(ledger_lib, R"lua(
local n = (#KEYS - 1) / 2
settle_lines(KEYS, 0, n, ARGV[1], '-1', ARGV[2], ARGV[3], KEYS[#KEYS], ARGV[4], ARGV[5])
return 1
)lua"));
    return s;
}

// Nothing is counted unless the reservation fits too: a turn the budget refuses does not use up
// its rate limits.
redis_script const& open_turn_script() {
    static redis_script const s(std::string(window_lib) + ledger_lib + R"lua(
local now, n, m = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out, current = admit_check(KEYS, 0, n, ARGV, 3, now)
local r0 = 3 + 4 * n
local res
if out[1] == 1 and m > 0 then
  res = reserve_check(KEYS, n, m, ARGV[1], tonumber(ARGV[r0 + 2]), ARGV, r0 + 3)
else
  res = {-1, 0}
  for i = 1, m do res[#res + 1] = 0 end
end
if out[1] == 1 and res[1] ~= 0 then
  admit_count(KEYS, 0, n, ARGV, 3, current)
  if m > 0 then reserve_hold(KEYS, n, m, ARGV[r0 + 1], ARGV[r0 + 2], now, tonumber(ARGV[r0 + 3]), true) end
end
for i = 1, #res do out[#out + 1] = res[i] end
return out
)lua");
    return s;
}

// KEYS[1] marks the turn closed for a minute: a close tried again after a reply that never came
// (the first may have run) changes nothing twice.
redis_script const& close_turn_script() {
    static redis_script const s(std::string(window_lib) + ledger_lib + R"lua(
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', '60000') then return 0 end
local now, n, m = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local at, delta = tonumber(ARGV[4]), ARGV[5]
if delta ~= '0' then
  for i = 1, n do adjust_one(KEYS[1 + i], now, tonumber(ARGV[5 + i]), at, delta) end
end
if m > 0 then
  local s = 5 + n
  settle_lines(KEYS, 1 + n, m, ARGV[s + 1], ARGV[s + 6], ARGV[s + 2], ARGV[s + 3], KEYS[1 + n + 2 * m + 1], ARGV[s + 4], ARGV[s + 5])
end
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
