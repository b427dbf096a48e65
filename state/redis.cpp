// The Redis stores (redis.hpp): counters, the spend ledger and virtual keys. Each method builds
// its script call in a plain function, awaits the pool once and reads the reply in another plain
// function; coroutine bodies follow the GCC 12 rules in CONTRIBUTING.md.
#include "state/redis.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/system/system_error.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <utility>

#include "state/redis_pool.hpp"
#include "state/redis_scripts.hpp"

namespace toolgate::state {

namespace {

using detail::redis_reply;

struct script_call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
};

std::string str(std::int64_t v) { return std::to_string(v); }

std::optional<std::int64_t> to_int(std::string_view s) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// A reply that is not what the script returns: an error reply is Redis refusing (a script error,
// OOM, a key of the wrong type); anything else is unreadable.
boost::system::error_code unexpected(redis_reply const& r, std::string_view what) {
    if (r.is_error()) {
        spdlog::warn("redis: {} refused: {}", what, r.str);
        return make_error_code(errc::storage);
    }
    spdlog::warn("redis: {}: unexpected reply", what);
    return make_error_code(errc::protocol);
}

// The integers of an array reply of exactly `n` integers.
std::optional<std::vector<std::int64_t>> integers(redis_reply const& r, std::size_t n) {
    if (r.type != redis_reply::kind::array || r.elements.size() != n) return std::nullopt;
    std::vector<std::int64_t> out;
    out.reserve(n);
    for (auto const& e : r.elements) {
        if (e.type != redis_reply::kind::integer) return std::nullopt;
        out.push_back(e.integer);
    }
    return out;
}

// ---- counters ----

script_call admit_call(std::string const& prefix, std::vector<limit_check> const& checks, std::int64_t now_ms) {
    script_call c;
    c.keys.reserve(checks.size());
    c.args.reserve(1 + 4 * checks.size());
    c.args.push_back(str(now_ms));
    for (auto const& k : checks) {
        c.keys.push_back(prefix + k.key);
        c.args.push_back(str(k.spec.bucket_ms()));
        c.args.push_back(str(k.spec.span_ms));
        c.args.push_back(str(k.spec.limit));
        c.args.push_back(str(k.amount));
    }
    return c;
}

// The admit script's reply (also the head of the open-turn script's): allowed, rejected, then
// five integers per check.
admit_result admission_of(std::int64_t const* v, std::size_t checks) {
    admit_result out;
    out.allowed = v[0] == 1;
    out.rejected = out.allowed ? 0 : static_cast<std::size_t>(v[1]);
    out.verdicts.resize(checks);
    for (std::size_t i = 0; i < checks; ++i) {
        auto const* f = v + 2 + 5 * i;
        auto& w = out.verdicts[i];
        w.allowed = f[0] == 1;
        w.used = f[1];
        w.remaining = f[2];
        w.reset_ms = f[3];
        w.retry_after_ms = f[4];
    }
    return out;
}

result<admit_result> read_admit(result<redis_reply> const& r, std::size_t checks) {
    if (!r) return r.error();
    auto v = integers(*r, 2 + 5 * checks);
    if (!v) return unexpected(*r, "admit");
    return admission_of(v->data(), checks);
}

script_call adjust_call(std::string const& prefix, limit_check const& check, std::int64_t at_ms, std::int64_t delta,
                        std::int64_t now_ms) {
    script_call c;
    c.keys.push_back(prefix + check.key);
    c.args.push_back(str(now_ms));
    c.args.push_back(str(check.spec.bucket_ms()));
    c.args.push_back(str(at_ms));
    c.args.push_back(str(delta));
    return c;
}

script_call acquire_call(std::string const& prefix, std::string const& key, std::int64_t limit, std::string const& lease,
                         std::int64_t now_ms, std::int64_t lease_ms) {
    script_call c;
    c.keys.push_back(prefix + key);
    c.args.push_back(str(now_ms));
    c.args.push_back(str(limit));
    c.args.push_back(lease);
    c.args.push_back(str(lease_ms));
    return c;
}

std::vector<std::string> release_command(std::string const& prefix, std::string const& key, std::string const& lease) {
    std::vector<std::string> cmd;
    cmd.emplace_back("ZREM");
    cmd.push_back(prefix + key);
    cmd.push_back(lease);
    return cmd;
}

result<bool> read_flag(result<redis_reply> const& r, std::string_view what) {
    // (result<bool> takes an error_code only explicitly: bool would take it too.)
    if (!r) return result<bool>(boost::system::in_place_error, r.error());
    if (r->type != redis_reply::kind::integer) return result<bool>(boost::system::in_place_error, unexpected(*r, what));
    return r->integer == 1;
}

result<void> read_done(result<redis_reply> const& r, std::string_view what) {
    if (!r) return r.error();
    if (r->is_error()) return unexpected(*r, what);
    return {};
}

class redis_counters final : public counter_store {
public:
    explicit redis_counters(std::shared_ptr<redis_pool> pool) : pool_(std::move(pool)) {}
    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<admit_result>> admit(std::vector<limit_check> const& checks, std::int64_t now_ms) override {
        if (checks.empty()) co_return admit_nothing();
        auto call = admit_call(pool_->prefix(), checks, now_ms);
        auto r = co_await pool_->eval(detail::admit_script(), std::move(call.keys), std::move(call.args));
        co_return read_admit(r, checks.size());
    }

    asio::awaitable<result<void>> adjust(limit_check const& check, std::int64_t at_ms, std::int64_t delta,
                                         std::int64_t now_ms) override {
        auto call = adjust_call(pool_->prefix(), check, at_ms, delta, now_ms);
        auto r = co_await pool_->eval(detail::adjust_script(), std::move(call.keys), std::move(call.args));
        auto counted = read_flag(r, "adjust");
        if (!counted) co_return counted.error();
        co_return result<void>();
    }

    asio::awaitable<result<bool>> acquire(std::string const& key, std::int64_t limit, std::string const& lease,
                                          std::int64_t now_ms, std::int64_t lease_ms) override {
        auto call = acquire_call(pool_->prefix(), key, limit, lease, now_ms, lease_ms);
        auto r = co_await pool_->eval(detail::acquire_script(), std::move(call.keys), std::move(call.args));
        co_return read_flag(r, "acquire");
    }

    asio::awaitable<result<void>> release(std::string const& key, std::string const& lease) override {
        auto r = co_await pool_->command(release_command(pool_->prefix(), key, lease));
        co_return read_done(r, "release");
    }

private:
    static result<admit_result> admit_nothing() {
        admit_result out;
        out.allowed = true;
        return out;
    }

    std::shared_ptr<redis_pool> pool_;
};

// ---- ledger ----

// Settled spend is kept well past its period (a month line is read for ~31 days; /admin/spend
// looks back further).
constexpr std::int64_t line_ttl_ms = 400LL * 24 * 3600 * 1000;
constexpr std::int64_t journal_last_index = 100'000 - 1;

std::string line_key(std::string const& prefix, budget_line const& l) {
    return prefix + "budget:" + l.scope + ":" + l.period;
}

script_call reserve_call(std::string const& prefix, std::vector<budget_line> const& lines, std::string const& reservation,
                         std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) {
    script_call c;
    c.keys.reserve(2 * lines.size());
    for (auto const& l : lines) {
        auto k = line_key(prefix, l);
        c.keys.push_back(k);
        c.keys.push_back(std::move(k) + ":res");
    }
    c.args.push_back(str(now_ms));
    c.args.push_back(reservation);
    c.args.push_back(str(micros));
    c.args.push_back(str(lease_ms));
    for (auto const& l : lines) c.args.push_back(str(l.limit_micros));
    return c;
}

result<reserve_result> read_reserve(result<redis_reply> const& r, std::size_t lines) {
    if (!r) return r.error();
    auto v = integers(*r, 2 + lines);
    if (!v) return unexpected(*r, "reserve");
    reserve_result out;
    out.allowed = (*v)[0] == 1;
    out.rejected = out.allowed ? 0 : static_cast<std::size_t>((*v)[1]);
    out.spent_micros.assign(v->begin() + 2, v->end());
    return out;
}

std::string journal_entry(spend_entry const& who, std::int64_t micros, std::vector<budget_line> const& lines) {
    boost::json::object o;
    o.emplace("request_id", who.request_id);
    o.emplace("key", who.key);
    o.emplace("team", who.team);
    o.emplace("model", who.model);
    o.emplace("provider", who.provider);
    o.emplace("ts_ms", who.ts_ms);
    o.emplace("micros", micros);
    boost::json::array scopes;
    for (auto const& l : lines) {
        boost::json::object line;
        line.emplace("scope", l.scope);
        line.emplace("period", l.period);
        scopes.push_back(std::move(line));
    }
    o.emplace("lines", std::move(scopes));
    return boost::json::serialize(o);
}

script_call settle_call(std::string const& prefix, std::vector<budget_line> const& lines, std::string const& reservation,
                        std::int64_t actual_micros, spend_entry const& who) {
    script_call c;
    c.keys.reserve(2 * lines.size() + 1);
    for (auto const& l : lines) {
        auto k = line_key(prefix, l);
        c.keys.push_back(k);
        c.keys.push_back(std::move(k) + ":res");
    }
    c.keys.push_back(prefix + "spend:journal");
    c.args.push_back(reservation);
    c.args.push_back(str(actual_micros));
    c.args.push_back(str(line_ttl_ms));
    c.args.push_back(journal_entry(who, actual_micros, lines));
    c.args.push_back(str(journal_last_index));
    return c;
}

std::vector<std::string> spent_command(std::string const& prefix, std::string const& scope, std::string const& period) {
    budget_line l;
    l.scope = scope;
    l.period = period;
    std::vector<std::string> cmd;
    cmd.emplace_back("HGET");
    cmd.push_back(line_key(prefix, l));
    cmd.emplace_back("spent");
    return cmd;
}

result<std::int64_t> read_spent(result<redis_reply> const& r) {
    if (!r) return r.error();
    if (r->is_nil()) return std::int64_t{0};
    if (r->type != redis_reply::kind::string) return unexpected(*r, "spent");
    auto v = to_int(r->str);
    if (!v) return unexpected(*r, "spent");
    return *v;
}

class redis_ledger final : public ledger {
public:
    explicit redis_ledger(std::shared_ptr<redis_pool> pool) : pool_(std::move(pool)) {}
    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<reserve_result>> reserve(std::vector<budget_line> const& lines, std::string const& reservation,
                                                    std::int64_t micros, std::int64_t now_ms, std::int64_t lease_ms) override {
        if (lines.empty()) co_return reserve_nothing();
        auto call = reserve_call(pool_->prefix(), lines, reservation, micros, now_ms, lease_ms);
        auto r = co_await pool_->eval(detail::reserve_script(), std::move(call.keys), std::move(call.args));
        co_return read_reserve(r, lines.size());
    }

    asio::awaitable<result<void>> settle(std::vector<budget_line> const& lines, std::string const& reservation,
                                         std::int64_t actual_micros, spend_entry const& who) override {
        auto call = settle_call(pool_->prefix(), lines, reservation, actual_micros, who);
        auto r = co_await pool_->eval(detail::settle_script(), std::move(call.keys), std::move(call.args));
        co_return read_done(r, "settle");
    }

    asio::awaitable<result<std::int64_t>> spent(std::string const& scope, std::string const& period) override {
        auto r = co_await pool_->command(spent_command(pool_->prefix(), scope, period));
        co_return read_spent(r);
    }

private:
    static result<reserve_result> reserve_nothing() {
        reserve_result out;
        out.allowed = true;
        return out;
    }

    std::shared_ptr<redis_pool> pool_;
};

// ---- turns: admit + reserve in one script, adjust + settle in another ----

std::vector<limit_check> const no_checks;
std::vector<budget_line> const no_lines;

script_call open_turn_call(std::string const& prefix, turn_open const& t) {
    auto const& checks = *t.checks;
    auto const& lines = t.lines ? *t.lines : no_lines;
    script_call c;
    c.keys.reserve(checks.size() + 2 * lines.size());
    c.args.reserve(6 + 4 * checks.size() + lines.size());
    for (auto const& k : checks) c.keys.push_back(prefix + k.key);
    for (auto const& l : lines) {
        auto k = line_key(prefix, l);
        c.keys.push_back(k);
        c.keys.push_back(std::move(k) + ":res");
    }
    c.args.push_back(str(t.now_ms));
    c.args.push_back(str(static_cast<std::int64_t>(checks.size())));
    c.args.push_back(str(static_cast<std::int64_t>(lines.size())));
    for (auto const& k : checks) {
        c.args.push_back(str(k.spec.bucket_ms()));
        c.args.push_back(str(k.spec.span_ms));
        c.args.push_back(str(k.spec.limit));
        c.args.push_back(str(k.amount));
    }
    c.args.push_back(t.reservation ? *t.reservation : std::string());
    c.args.push_back(str(t.micros));
    c.args.push_back(str(t.lease_ms));
    for (auto const& l : lines) c.args.push_back(str(l.limit_micros));
    return c;
}

// Built, never assigned: GCC 12 sees the result's vectors as maybe uninitialized in an assignment.
turn_admission failed_turn(boost::system::error_code e, std::size_t lines) {
    return turn_admission{result<admit_result>(e),
                          lines ? std::optional<result<reserve_result>>(std::in_place, e) : std::nullopt};
}

turn_admission read_open_turn(result<redis_reply> const& r, std::size_t checks, std::size_t lines) {
    if (!r) return failed_turn(r.error(), lines);
    auto v = integers(*r, 2 + 5 * checks + 2 + lines);
    if (!v) return failed_turn(unexpected(*r, "open turn"), lines);
    turn_admission out{result<admit_result>(admission_of(v->data(), checks)), std::nullopt};
    auto const* res = v->data() + 2 + 5 * checks;
    if (res[0] != -1) {
        reserve_result b;
        b.allowed = res[0] == 1;
        b.rejected = b.allowed ? 0 : static_cast<std::size_t>(res[1]);
        b.spent_micros.assign(res + 2, res + 2 + lines);
        out.reserved.emplace(std::move(b));
    }
    return out;
}

script_call close_turn_call(std::string const& prefix, turn_close const& t) {
    auto const& adjust = t.adjust && t.delta != 0 ? *t.adjust : no_checks;
    auto const& lines = t.lines ? *t.lines : no_lines;
    script_call c;
    c.keys.push_back(prefix + "closed:" + *t.id);
    for (auto const& k : adjust) c.keys.push_back(prefix + k.key);
    for (auto const& l : lines) {
        auto k = line_key(prefix, l);
        c.keys.push_back(k);
        c.keys.push_back(std::move(k) + ":res");
    }
    if (!lines.empty()) c.keys.push_back(prefix + "spend:journal");
    c.args.push_back(str(t.now_ms));
    c.args.push_back(str(static_cast<std::int64_t>(adjust.size())));
    c.args.push_back(str(static_cast<std::int64_t>(lines.size())));
    c.args.push_back(str(t.at_ms));
    c.args.push_back(str(t.delta));
    for (auto const& k : adjust) c.args.push_back(str(k.spec.bucket_ms()));
    if (!lines.empty()) {
        c.args.push_back(*t.reservation);
        c.args.push_back(str(t.micros));
        c.args.push_back(str(line_ttl_ms));
        c.args.push_back(journal_entry(*t.who, t.micros, lines));
        c.args.push_back(str(journal_last_index));
        c.args.push_back(t.reservation && !t.reservation->empty() ? str(t.reserved_micros) : std::string("-2"));
    }
    return c;
}

class redis_gate final : public turn_gate {
public:
    explicit redis_gate(std::shared_ptr<redis_pool> pool) : pool_(std::move(pool)) {}

    std::optional<turn_admission> open_now(turn_open const& t) override {
        if (!t.checks->empty() || (t.lines && !t.lines->empty())) return std::nullopt;
        turn_admission out;  // nothing to ask
        out.admitted = admit_nothing();
        return out;
    }

    asio::awaitable<turn_admission> open(turn_open const& t) override {
        if (auto none = open_now(t)) co_return std::move(*none);
        auto call = open_turn_call(pool_->prefix(), t);
        auto r = co_await pool_->eval(detail::open_turn_script(), std::move(call.keys), std::move(call.args));
        co_return read_open_turn(r, t.checks->size(), t.lines ? t.lines->size() : 0);
    }

    bool close_now(turn_close const& t) override {
        return (!t.adjust || t.adjust->empty() || t.delta == 0) && (!t.lines || t.lines->empty());
    }

    // Tried once more on failure (a connection that failed reconnects); a reservation left behind
    // lapses with its lease.
    asio::awaitable<result<void>> close(turn_close const& t) override {
        if (close_now(t)) co_return result<void>();
        auto call = close_turn_call(pool_->prefix(), t);
        auto r = co_await pool_->eval(detail::close_turn_script(), call.keys, call.args);
        auto done = read_done(r, "close turn");
        if (!done) {  // the marker keeps a first try that did run from counting twice
            r = co_await pool_->eval(detail::close_turn_script(), std::move(call.keys), std::move(call.args));
            done = read_done(r, "close turn");
        }
        co_return done;
    }

    bool close_after_answer() const override { return true; }

private:
    static admit_result admit_nothing() {
        admit_result out;
        out.allowed = true;
        return out;
    }

    std::shared_ptr<redis_pool> pool_;
};

// ---- keys ----

struct key_names {
    std::string record;  // key:<id>
    std::string by_hash;
    std::string ids;
};

key_names names(std::string const& prefix, std::string const& id) {
    return key_names{prefix + "key:" + id, prefix + "keyhash", prefix + "keys"};
}

script_call put_key_call(std::string const& prefix, stored_key const& k) {
    auto n = names(prefix, k.id);
    script_call c;
    c.keys.push_back(std::move(n.record));
    c.keys.push_back(std::move(n.by_hash));
    c.keys.push_back(std::move(n.ids));
    c.args.push_back(k.id);
    c.args.push_back(k.hash);
    c.args.push_back(k.prefix);
    c.args.push_back(boost::json::serialize(k.attrs));
    c.args.push_back(str(k.created_ms));
    c.args.push_back(str(k.updated_ms));
    return c;
}

script_call find_key_call(std::string const& prefix, std::string const& hash) {
    script_call c;
    c.keys.push_back(prefix + "keyhash");
    c.args.push_back(hash);
    c.args.push_back(prefix + "key:");
    return c;
}

script_call remove_key_call(std::string const& prefix, std::string const& id) {
    auto n = names(prefix, id);
    script_call c;
    c.keys.push_back(std::move(n.record));
    c.keys.push_back(std::move(n.by_hash));
    c.keys.push_back(std::move(n.ids));
    c.args.push_back(id);
    return c;
}

std::vector<std::string> get_key_command(std::string const& prefix, std::string const& id) {
    std::vector<std::string> cmd;
    cmd.emplace_back("HGETALL");
    cmd.push_back(prefix + "key:" + id);
    return cmd;
}

std::vector<std::string> list_ids_command(std::string const& prefix) {
    std::vector<std::string> cmd;
    cmd.emplace_back("SMEMBERS");
    cmd.push_back(prefix + "keys");
    return cmd;
}

// A key record from HGETALL's field/value list; nullopt when there is none.
result<std::optional<stored_key>> read_record(std::string id, redis_reply const& flat) {
    if (flat.type != redis_reply::kind::array || flat.elements.size() % 2 != 0) return unexpected(flat, "key");
    if (flat.elements.empty()) return std::optional<stored_key>();
    stored_key k;
    k.id = std::move(id);
    bool have_hash = false;
    for (std::size_t i = 0; i < flat.elements.size(); i += 2) {
        auto const& name = flat.elements[i].str;
        auto const& value = flat.elements[i + 1].str;
        if (name == "hash") {
            k.hash = value;
            have_hash = true;
        } else if (name == "prefix") {
            k.prefix = value;
        } else if (name == "attrs") {
            boost::system::error_code ec;
            auto v = boost::json::parse(value, ec);
            if (ec || !v.is_object()) return unexpected(flat, "key attrs");
            k.attrs = std::move(v.as_object());
        } else if (name == "created_ms" || name == "updated_ms") {
            auto t = to_int(value);
            if (!t) return unexpected(flat, "key times");
            (name == "created_ms" ? k.created_ms : k.updated_ms) = *t;
        }
    }
    if (!have_hash) return unexpected(flat, "key without hash");
    return std::optional<stored_key>(std::move(k));
}

result<std::optional<stored_key>> read_get(result<redis_reply> const& r, std::string const& id) {
    if (!r) return r.error();
    return read_record(id, *r);
}

result<std::optional<stored_key>> read_find(result<redis_reply> const& r, std::string const& hash) {
    if (!r) return r.error();
    if (r->is_nil()) return std::optional<stored_key>();
    if (r->type != redis_reply::kind::array || r->elements.size() != 2 ||
        r->elements[0].type != redis_reply::kind::string)
        return unexpected(*r, "find key");
    auto k = read_record(r->elements[0].str, r->elements[1]);
    // An index entry left behind by a concurrent rotation finds nothing.
    if (k && *k && (*k)->hash != hash) return std::optional<stored_key>();
    return k;
}

result<std::vector<std::string>> read_ids(result<redis_reply> const& r) {
    if (!r) return r.error();
    if (r->type != redis_reply::kind::array) return unexpected(*r, "list keys");
    std::vector<std::string> ids;
    ids.reserve(r->elements.size());
    for (auto const& e : r->elements) ids.push_back(e.str);
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::vector<std::vector<std::string>> get_keys_commands(std::string const& prefix, std::vector<std::string> const& ids) {
    std::vector<std::vector<std::string>> cmds;
    cmds.reserve(ids.size());
    for (auto const& id : ids) cmds.push_back(get_key_command(prefix, id));
    return cmds;
}

result<std::vector<stored_key>> read_list(result<std::vector<redis_reply>> const& r, std::vector<std::string> const& ids) {
    if (!r) return r.error();
    std::vector<stored_key> out;
    out.reserve(ids.size());
    for (std::size_t i = 0; i < ids.size() && i < r->size(); ++i) {
        auto k = read_record(ids[i], (*r)[i]);
        if (!k) return k.error();
        if (*k) out.push_back(std::move(**k));  // removed between the two reads
    }
    return out;
}

class redis_keys final : public key_store {
public:
    explicit redis_keys(std::shared_ptr<redis_pool> pool) : pool_(std::move(pool)) {}
    std::string_view kind() const override { return "redis"; }

    asio::awaitable<result<std::optional<stored_key>>> find_hash(std::string const& hash) override {
        auto call = find_key_call(pool_->prefix(), hash);
        auto r = co_await pool_->eval(detail::find_key_script(), std::move(call.keys), std::move(call.args));
        co_return read_find(r, hash);
    }

    asio::awaitable<result<std::optional<stored_key>>> get(std::string const& id) override {
        auto r = co_await pool_->command(get_key_command(pool_->prefix(), id));
        co_return read_get(r, id);
    }

    asio::awaitable<result<std::vector<stored_key>>> list() override {
        auto r = co_await pool_->command(list_ids_command(pool_->prefix()));
        auto ids = read_ids(r);
        if (!ids) co_return ids.error();
        if (ids->empty()) co_return std::vector<stored_key>();
        try {
            auto records = co_await pool_->pipeline(get_keys_commands(pool_->prefix(), *ids));
            co_return read_list(records, *ids);
        } catch (boost::system::system_error const&) {
            co_return make_error_code(errc::timeout);  // cancelled between the two reads (Asio throws)
        }
    }

    asio::awaitable<result<void>> put(stored_key const& key) override {
        auto call = put_key_call(pool_->prefix(), key);
        auto r = co_await pool_->eval(detail::put_key_script(), std::move(call.keys), std::move(call.args));
        co_return read_done(r, "put key");
    }

    asio::awaitable<result<bool>> remove(std::string const& id) override {
        auto call = remove_key_call(pool_->prefix(), id);
        auto r = co_await pool_->eval(detail::remove_key_script(), std::move(call.keys), std::move(call.args));
        co_return read_flag(r, "remove key");
    }

private:
    std::shared_ptr<redis_pool> pool_;
};

}  // namespace

std::shared_ptr<counter_store> make_redis_counters(std::shared_ptr<redis_pool> pool) {
    return std::make_shared<redis_counters>(std::move(pool));
}
std::shared_ptr<ledger> make_redis_ledger(std::shared_ptr<redis_pool> pool) {
    return std::make_shared<redis_ledger>(std::move(pool));
}
std::shared_ptr<turn_gate> make_redis_gate(std::shared_ptr<redis_pool> pool) {
    return std::make_shared<redis_gate>(std::move(pool));
}
std::shared_ptr<key_store> make_redis_keys(std::shared_ptr<redis_pool> pool) {
    return std::make_shared<redis_keys>(std::move(pool));
}

}  // namespace toolgate::state
