#pragma once
// The Lua scripts behind the Redis stores (internal to state/). Each check-and-count is one
// script, atomic on the server, that takes the caller's time as an argument. Key layout (all
// under the pool's prefix):
//   <key>                        HASH  bucket index (time / bucket width) -> count   (windows)
//   <key>                        ZSET  lease -> expiry ms                            (concurrency)
//   budget:<scope>:<period>      HASH  spent -> micro-USD
//   budget:<scope>:<period>:res  ZSET  "<reservation>:<micros>" -> expiry ms
//   spend:journal                LIST  JSON spend entries, newest first, capped
//   key:<id>                     HASH  hash, prefix, attrs (JSON), created_ms, updated_ms
//   keyhash                      HASH  hash -> id
//   keys                         SET   ids
#include "state/redis_proto.hpp"

namespace toolgate::state::detail {

// KEYS: one counter per check. ARGV: now, then per check: bucket width, span, limit, amount.
// Reply: {allowed, rejected, then per check: allowed, used, remaining, reset_ms, retry_after_ms}.
redis_script const& admit_script();
// KEYS: the counter. ARGV: now, bucket width, at, delta. Reply: 1 when counted.
redis_script const& adjust_script();
// KEYS: the lease set. ARGV: now, limit, lease, lease_ms. Reply: 1 when acquired.
redis_script const& acquire_script();
// KEYS: per line its hash and its reservations. ARGV: now, reservation, micros, lease_ms, then
// per line its limit. Reply: {allowed, rejected, then per line spent + reserved before the call}.
redis_script const& reserve_script();
// KEYS: per line its hash and its reservations, then the journal. ARGV: reservation, actual
// micros, the lines' TTL (ms), the journal entry, the journal's last index kept.
redis_script const& settle_script();
// A model turn's admission and reservation together. KEYS: the n counters, then per line its
// hash and its reservations (m lines). ARGV: now, n, m, four per check as in admit, then
// reservation, micros, lease_ms, then per line its limit. Reply: admit's reply, then reserve's,
// whose first element is -1 when it was not asked (a check refused, or no lines). Nothing is
// counted or held unless everything fits. The reservation id must be new (a turn's own).
redis_script const& open_turn_script();
// Its token corrections and its settle, once per turn. KEYS: the turn's close marker, the n
// counters to correct, then per line its hash and its reservations, then the journal (when m > 0).
// ARGV: now, n, m, at, delta, per counter its bucket width, then settle's ARGV and what was held
// under the id ('-1' not known, '-2' nothing, else the micros; when m > 0). Reply: 1, or 0 when
// the turn was closed already.
redis_script const& close_turn_script();
// KEYS: key:<id>, keyhash, keys. ARGV: id, hash, prefix, attrs, created_ms, updated_ms.
redis_script const& put_key_script();
// KEYS: keyhash. ARGV: hash, the prefix of key records. Reply: nil or {id, {field, value, ...}}.
redis_script const& find_key_script();
// KEYS: key:<id>, keyhash, keys. ARGV: id. Reply: 1 when there was such a key.
redis_script const& remove_key_script();

}  // namespace toolgate::state::detail
