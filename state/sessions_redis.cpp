// Sessions in Redis, shared by replicas. Key layout under the pool's prefix:
//   sess:s:<id>        HASH  owner, member, created, updated, expires, version, gone, meta, msgs
//                            (lives until its tombstone lapses: expires + tombstone, or gone)
//   sess:o:<owner>     ZSET  "<created, 16 digits>:<id>", all at score 0 (read newest first by lex)
//   sess:l:<id>        STRING the holder of the session's lease (SET NX PX)
// Creating, saving and deleting are one script each (checked and written atomically, with the
// caller's time); reads are plain HMGETs. Commands are built in plain functions (GCC 12 rules in
// CONTRIBUTING.md).
#include <charconv>
#include <cstdio>

#include "state/redis.hpp"
#include "state/redis_pool.hpp"
#include "state/session_store.hpp"

namespace toolgate::state {

namespace {

using detail::redis_reply;
using detail::redis_script;

// Extends a key's expiry to at least ARGV's time (a sorted set has none at first).
#define TG_EXTEND(key, at) \
    "local cur = redis.call('PEXPIRETIME', " key ")\n" \
    "if cur < 0 or cur < " at " then redis.call('PEXPIREAT', " key ", " at ") end\n"

// KEYS: hash, owner index. ARGV: owner, member, created, updated, expires, meta, msgs, tombstone.
redis_script const& create_script() {
    static redis_script const s(R"lua(
local now = tonumber(ARGV[3])
local tomb = tonumber(ARGV[8])
local f = redis.call('HMGET', KEYS[1], 'gone', 'expires')
if f[2] then
  local gone = tonumber(f[1]) or 0
  local exp = tonumber(f[2]) or 0
  if (gone > 0 and now < gone) or (gone == 0 and now < exp + tomb) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'member', ARGV[2], 'created', ARGV[3], 'updated', ARGV[4],
  'expires', ARGV[5], 'version', '1', 'gone', '0', 'meta', ARGV[6], 'msgs', ARGV[7])
local keep = tonumber(ARGV[5]) + tomb
redis.call('PEXPIREAT', KEYS[1], keep)
redis.call('ZADD', KEYS[2], 0, ARGV[2])
)lua" TG_EXTEND("KEYS[2]", "keep") "return 1\n");
    return s;
}

// KEYS: hash, owner index. ARGV: owner, version, updated, expires, meta, msgs, now, tombstone.
redis_script const& save_script() {
    static redis_script const s(R"lua(
local f = redis.call('HMGET', KEYS[1], 'owner', 'version', 'gone', 'expires')
if not f[1] or f[1] ~= ARGV[1] then return 0 end
if tonumber(f[2]) ~= tonumber(ARGV[2]) - 1 then return 0 end
if tonumber(f[3]) ~= 0 or tonumber(f[4]) <= tonumber(ARGV[7]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'updated', ARGV[3], 'expires', ARGV[4], 'meta', ARGV[5], 'msgs', ARGV[6])
local keep = tonumber(ARGV[4]) + tonumber(ARGV[8])
redis.call('PEXPIREAT', KEYS[1], keep)
)lua" TG_EXTEND("KEYS[2]", "keep") "return 1\n");
    return s;
}

// KEYS: hash, owner index. ARGV: owner, now, tombstone.
redis_script const& erase_script() {
    static redis_script const s(R"lua(
local f = redis.call('HMGET', KEYS[1], 'owner', 'gone', 'expires', 'member')
if not f[1] or f[1] ~= ARGV[1] then return 0 end
local now = tonumber(ARGV[2])
if tonumber(f[2]) ~= 0 or tonumber(f[3]) <= now then return 0 end
local until_ms = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'gone', tostring(until_ms))
redis.call('HDEL', KEYS[1], 'meta', 'msgs')
redis.call('PEXPIREAT', KEYS[1], until_ms)
if f[4] then redis.call('ZREM', KEYS[2], f[4]) end
return 1
)lua");
    return s;
}

// A request's start. KEYS: hash, lease. ARGV: owner, holder, lease_ms, now, tombstone. Reply:
// {1 when the lease was taken, the HMGET of hmget_command's fields}. The lease is taken only for a
// missing session or a live one of `owner`.
redis_script const& open_script() {
    static redis_script const s(R"lua(
local f = redis.call('HMGET', KEYS[1], 'owner', 'created', 'updated', 'expires', 'version', 'gone', 'meta', 'msgs', 'member')
local now = tonumber(ARGV[4])
local state = 'missing'
if f[1] and f[4] then
  local gone = tonumber(f[6]) or 0
  local exp = tonumber(f[4]) or 0
  if gone > 0 then
    if now < gone then state = 'gone' end
  elseif now < exp then state = 'live'
  elseif now < exp + tonumber(ARGV[5]) then state = 'gone' end
end
local locked = 0
if state == 'missing' or (state == 'live' and f[1] == ARGV[1]) then
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then locked = 1 end
end
return {locked, f}
)lua");
    return s;
}

// A request's end: save's check and write, then the lease given back either way. KEYS: hash,
// owner index, lease. ARGV: save's eight, then the holder.
redis_script const& save_unlock_script() {
    static redis_script const s(R"lua(
local ok = 0
local f = redis.call('HMGET', KEYS[1], 'owner', 'version', 'gone', 'expires')
if f[1] and f[1] == ARGV[1] and tonumber(f[2]) == tonumber(ARGV[2]) - 1 and tonumber(f[3]) == 0
   and tonumber(f[4]) > tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'updated', ARGV[3], 'expires', ARGV[4], 'meta', ARGV[5], 'msgs', ARGV[6])
  local keep = tonumber(ARGV[4]) + tonumber(ARGV[8])
  redis.call('PEXPIREAT', KEYS[1], keep)
)lua" TG_EXTEND("KEYS[2]", "keep") R"lua(
  ok = 1
end
if redis.call('GET', KEYS[3]) == ARGV[9] then redis.call('DEL', KEYS[3]) end
return ok
)lua");
    return s;
}

// KEYS: the lease. ARGV: holder.
redis_script const& unlock_script() {
    static redis_script const s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua");
    return s;
}

#undef TG_EXTEND

std::string member_of(std::int64_t created_ms, std::string const& id) {
    char digits[24];
    std::snprintf(digits, sizeof digits, "%016lld:", static_cast<long long>(created_ms));
    return digits + id;
}

std::int64_t to_int(std::string const& s) {
    std::int64_t v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

// The fields get() reads, in this order.
std::vector<std::string> hmget_command(std::string key) {
    std::vector<std::string> c;
    c.reserve(11);
    c.emplace_back("HMGET");
    c.push_back(std::move(key));
    for (char const* f : {"owner", "created", "updated", "expires", "version", "gone", "meta", "msgs", "member"})
        c.emplace_back(f);
    return c;
}

// An HMGET reply as a lookup at `now`; false when the reply is not one.
bool read_lookup(redis_reply const& r, std::string const& id, std::int64_t now, std::int64_t tomb, session_lookup& out,
                 std::string* member = nullptr) {
    out = session_lookup{};
    if (r.type != redis_reply::kind::array || r.elements.size() != 9) return false;
    auto const& e = r.elements;
    if (e[0].type != redis_reply::kind::string || e[3].type != redis_reply::kind::string) return true;  // missing
    auto gone = e[5].type == redis_reply::kind::string ? to_int(e[5].str) : 0;
    auto expires = to_int(e[3].str);
    if (gone > 0) out.state = now < gone ? session_state::gone : session_state::missing;
    else if (now < expires) out.state = session_state::live;
    else out.state = now < expires + tomb ? session_state::gone : session_state::missing;
    if (out.state == session_state::missing) return true;
    out.row.id = id;
    out.row.owner = e[0].str;
    if (member && e[8].type == redis_reply::kind::string) *member = e[8].str;
    if (out.state != session_state::live) return true;
    out.row.created_ms = to_int(e[1].str);
    out.row.updated_ms = to_int(e[2].str);
    out.row.expires_ms = expires;
    out.row.version = to_int(e[4].str);
    out.row.meta = e[6].str;
    out.row.messages = e[7].str;
    return true;
}

// Script arguments, built outside the coroutines (no initializer lists there).
std::vector<std::string> strings(std::string a) {
    std::vector<std::string> v;
    v.push_back(std::move(a));
    return v;
}
std::vector<std::string> strings(std::string a, std::string b) {
    auto v = strings(std::move(a));
    v.push_back(std::move(b));
    return v;
}
std::vector<std::string> strings(std::string a, std::string b, std::string c) {
    auto v = strings(std::move(a), std::move(b));
    v.push_back(std::move(c));
    return v;
}

class redis_sessions final : public session_store {
public:
    redis_sessions(std::shared_ptr<redis_pool> pool, std::int64_t tombstone_ms)
        : pool_(std::move(pool)), prefix_(pool_->prefix() + "sess:"), tomb_(tombstone_ms) {}

    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<bool>> create(session_row row) override {
        auto keys = strings(hash_key(row.id), index_key(row.owner));
        auto args = create_args(row);
        auto r = co_await pool_->eval(create_script(), std::move(keys), std::move(args));
        co_return flag(r);
    }

    asio::awaitable<result<session_lookup>> get(std::string id, std::int64_t now_ms) override {
        auto r = co_await pool_->command(hmget_command(hash_key(id)));
        if (!r) co_return r.error();
        session_lookup out;
        if (!read_lookup(*r, id, now_ms, tomb_, out)) co_return make_error_code(errc::protocol);
        co_return out;
    }

    asio::awaitable<result<bool>> save(session_row row, std::int64_t now_ms) override {
        auto keys = strings(hash_key(row.id), index_key(row.owner));
        auto args = save_args(row, now_ms);
        auto r = co_await pool_->eval(save_script(), std::move(keys), std::move(args));
        co_return flag(r);
    }

    asio::awaitable<result<bool>> erase(std::string id, std::string owner, std::int64_t now_ms) override {
        auto keys = strings(hash_key(id), index_key(owner));
        auto args = strings(owner, std::to_string(now_ms), std::to_string(tomb_));
        auto r = co_await pool_->eval(erase_script(), std::move(keys), std::move(args));
        co_return flag(r);
    }

    asio::awaitable<result<session_page>> list(std::string owner, std::string after_id, std::size_t limit,
                                               std::int64_t now_ms) override {
        session_page page;
        std::string bound = "+";
        if (!after_id.empty()) {
            auto r = co_await pool_->command(hmget_command(hash_key(after_id)));
            if (!r) co_return r.error();
            session_lookup at;
            std::string member;
            if (!read_lookup(*r, after_id, now_ms, tomb_, at, &member)) co_return make_error_code(errc::protocol);
            if (at.state != session_state::live || at.row.owner != owner || member.empty()) co_return page;
            bound = "(" + member;
        }
        // Members whose session is gone are skipped (and dropped from the index); a few rounds at
        // most, so that an index full of stale members cannot hold the request.
        // A full page looks on for one more live session, to tell whether there is more.
        for (int round = 0; round < 4; ++round) {
            auto want = limit - page.rows.size() + 1;
            auto r = co_await pool_->command(range_command(index_key(owner), bound, want));
            if (!r) co_return r.error();
            if (r->type != redis_reply::kind::array) co_return make_error_code(errc::protocol);
            auto members = member_list(*r);
            if (members.empty()) break;
            auto rows = co_await pool_->pipeline(row_commands(members));
            if (!rows) co_return rows.error();
            std::vector<std::string> stale;
            for (std::size_t i = 0; i < members.size(); ++i) {
                session_lookup l;
                std::string member;
                auto id = id_of(members[i]);
                if (!read_lookup((*rows)[i], id, now_ms, tomb_, l, &member)) co_return make_error_code(errc::protocol);
                // A member of an earlier session under the same id (or of another owner's) is stale.
                bool ours = l.row.owner == owner && member == members[i];
                if (l.state != session_state::live || !ours) {
                    stale.push_back(members[i]);  // a gone session never comes back
                    continue;
                }
                if (page.rows.size() == limit) {
                    page.more = true;
                    break;
                }
                l.row.messages.clear();
                page.rows.push_back(std::move(l.row));
            }
            if (!stale.empty()) co_await pool_->command(zrem_command(index_key(owner), std::move(stale)));
            if (page.more || members.size() < want) break;
            bound = "(" + members.back();
            if (round == 3) page.more = true;  // not looked further: the client asks for the next page
        }
        co_return page;
    }

    asio::awaitable<result<bool>> lock(std::string id, std::string holder, std::int64_t lease_ms, std::int64_t) override {
        auto r = co_await pool_->command(lock_command(prefix_ + "l:" + id, std::move(holder), lease_ms));
        if (!r) co_return failed(r.error());
        if (r->is_error()) co_return failed(make_error_code(errc::storage));
        co_return r->type == redis_reply::kind::status;
    }

    asio::awaitable<result<session_open>> open(std::string id, std::string owner, std::string holder,
                                               std::int64_t lease_ms, std::int64_t now_ms) override {
        auto keys = strings(hash_key(id), prefix_ + "l:" + id);
        auto args = open_args(std::move(owner), std::move(holder), lease_ms, now_ms);
        auto r = co_await pool_->eval(open_script(), std::move(keys), std::move(args));
        if (!r) co_return r.error();
        session_open out;
        if (r->is_error() || r->type != redis_reply::kind::array || r->elements.size() != 2 ||
            r->elements[0].type != redis_reply::kind::integer)
            co_return make_error_code(errc::protocol);
        out.locked = r->elements[0].integer == 1;
        if (!read_lookup(r->elements[1], id, now_ms, tomb_, out.found)) co_return make_error_code(errc::protocol);
        co_return out;
    }

    asio::awaitable<result<bool>> save_and_unlock(session_row row, std::string holder, std::int64_t now_ms) override {
        auto keys = strings(hash_key(row.id), index_key(row.owner), prefix_ + "l:" + row.id);
        auto args = save_args(row, now_ms);
        args.push_back(std::move(holder));
        auto r = co_await pool_->eval(save_unlock_script(), std::move(keys), std::move(args));
        co_return flag(r);
    }

    asio::awaitable<result<void>> unlock(std::string id, std::string holder) override {
        auto keys = strings(prefix_ + "l:" + id);
        auto args = strings(std::move(holder));
        auto r = co_await pool_->eval(unlock_script(), std::move(keys), std::move(args));
        if (!r) co_return r.error();
        co_return result<void>();
    }

private:
    // Three key kinds, three prefixes: no session id can name another kind's key.
    std::string hash_key(std::string const& id) const { return prefix_ + "s:" + id; }
    std::string index_key(std::string const& owner) const { return prefix_ + "o:" + owner; }

    std::vector<std::string> create_args(session_row const& row) const {
        std::vector<std::string> a;
        a.reserve(8);
        a.push_back(row.owner);
        a.push_back(member_of(row.created_ms, row.id));
        a.push_back(std::to_string(row.created_ms));
        a.push_back(std::to_string(row.updated_ms));
        a.push_back(std::to_string(row.expires_ms));
        a.push_back(row.meta);
        a.push_back(row.messages);
        a.push_back(std::to_string(tomb_));
        return a;
    }

    std::vector<std::string> open_args(std::string owner, std::string holder, std::int64_t lease_ms,
                                       std::int64_t now) const {
        std::vector<std::string> a;
        a.reserve(5);
        a.push_back(std::move(owner));
        a.push_back(std::move(holder));
        a.push_back(std::to_string(lease_ms < 1 ? 1 : lease_ms));
        a.push_back(std::to_string(now));
        a.push_back(std::to_string(tomb_));
        return a;
    }

    std::vector<std::string> save_args(session_row& row, std::int64_t now) const {
        std::vector<std::string> a;
        a.reserve(8);
        a.push_back(row.owner);
        a.push_back(std::to_string(row.version));
        a.push_back(std::to_string(row.updated_ms));
        a.push_back(std::to_string(row.expires_ms));
        a.push_back(std::move(row.meta));
        a.push_back(std::move(row.messages));
        a.push_back(std::to_string(now));
        a.push_back(std::to_string(tomb_));
        return a;
    }

    // (An error_code converts to bool too: errors go in place.)
    static result<bool> failed(boost::system::error_code ec) { return result<bool>(boost::system::in_place_error, ec); }
    static result<bool> flag(result<redis_reply> const& r) {
        if (!r) return failed(r.error());
        if (r->is_error()) return failed(make_error_code(errc::storage));
        if (r->type != redis_reply::kind::integer) return failed(make_error_code(errc::protocol));
        return r->integer == 1;
    }

    static std::vector<std::string> range_command(std::string key, std::string const& bound, std::size_t count) {
        std::vector<std::string> c;
        c.reserve(7);
        c.emplace_back("ZREVRANGEBYLEX");
        c.push_back(std::move(key));
        c.push_back(bound);
        c.emplace_back("-");
        c.emplace_back("LIMIT");
        c.emplace_back("0");
        c.push_back(std::to_string(count));
        return c;
    }

    static std::vector<std::string> member_list(redis_reply const& r) {
        std::vector<std::string> out;
        for (auto const& e : r.elements)
            if (e.type == redis_reply::kind::string) out.push_back(e.str);
        return out;
    }

    static std::string id_of(std::string const& member) {
        auto colon = member.find(':');
        return colon == std::string::npos ? member : member.substr(colon + 1);
    }

    std::vector<std::vector<std::string>> row_commands(std::vector<std::string> const& members) const {
        std::vector<std::vector<std::string>> out;
        out.reserve(members.size());
        for (auto const& m : members) out.push_back(hmget_command(hash_key(id_of(m))));
        return out;
    }

    static std::vector<std::string> zrem_command(std::string key, std::vector<std::string> members) {
        std::vector<std::string> c;
        c.reserve(members.size() + 2);
        c.emplace_back("ZREM");
        c.push_back(std::move(key));
        for (auto& m : members) c.push_back(std::move(m));
        return c;
    }

    static std::vector<std::string> lock_command(std::string key, std::string holder, std::int64_t lease_ms) {
        std::vector<std::string> c;
        c.reserve(6);
        c.emplace_back("SET");
        c.push_back(std::move(key));
        c.push_back(std::move(holder));
        c.emplace_back("NX");
        c.emplace_back("PX");
        c.push_back(std::to_string(lease_ms < 1 ? 1 : lease_ms));
        return c;
    }

    std::shared_ptr<redis_pool> pool_;
    std::string prefix_;
    std::int64_t tomb_;
};

}  // namespace

std::shared_ptr<session_store> make_redis_sessions(std::shared_ptr<redis_pool> pool, std::int64_t tombstone_ms) {
    return std::make_shared<redis_sessions>(std::move(pool), tombstone_ms);
}

}  // namespace toolgate::state
