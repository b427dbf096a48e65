#include "gateway/policy/access.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/prometheus.hpp"

namespace toolgate::gateway::policy {

namespace {

std::shared_ptr<state::sqlite_db> open_db(access_settings const& s) {
    if (!s.sqlite) return nullptr;
    return state::open_sqlite(*s.sqlite);
}

std::shared_ptr<state::redis_pool> open_redis(access_settings const& s) {
    if (!s.redis) return nullptr;
    return state::make_redis_pool(*s.redis);
}

}  // namespace

std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

namespace {

void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

}  // namespace

std::string format_reset(std::int64_t ms) {
    if (ms <= 0) return "0s";
    std::string out;
    if (ms < 1000) {
        append_int(out, ms);
        return out += "ms";
    }
    auto total_s = ms / 1000;
    if (total_s < 60) {
        append_int(out, total_s);
        if (auto frac = ms % 1000) {  // "59.5s": no trailing zeros
            char digits[3] = {char('0' + frac / 100), char('0' + frac / 10 % 10), char('0' + frac % 10)};
            std::size_t n = 3;
            while (digits[n - 1] == '0') --n;
            out += '.';
            out.append(digits, n);
        }
        return out += 's';
    }
    auto h = total_s / 3600, m = (total_s % 3600) / 60, sec = total_s % 60;
    if (h) {
        append_int(out, h);
        out += 'h';
    }
    append_int(out, m);
    out += 'm';
    append_int(out, sec);
    return out += 's';
}

access_runtime::access_runtime(access_settings s)
    : s_(std::move(s)),
      sqlite_(open_db(s_)),
      redis_(open_redis(s_)),
      counters_(redis_ ? state::make_redis_counters(redis_) : state::make_memory_counters(s_.memory)),
      ledger_(redis_ ? state::make_redis_ledger(redis_)
                     : sqlite_ ? state::make_sqlite_ledger(sqlite_) : state::make_memory_ledger()),
      gate_(redis_ ? state::make_redis_gate(redis_) : state::make_store_gate(counters_, ledger_)),
      key_store_(s_.admin_token.empty() ? nullptr
                 : redis_               ? state::make_redis_keys(redis_)
                 : sqlite_              ? state::make_sqlite_keys(sqlite_)
                                        : state::make_memory_keys()),
      log_((!s_.log_enabled || s_.log_postgres) && s_.admin_token.empty() ? nullptr
           : (sqlite_ && !s_.log_in_memory) ? state::make_sqlite_log(sqlite_)
                                             : state::make_memory_log(s_.memory)),
      request_log_(s_.log_enabled && s_.log_postgres ? state::make_postgres_log(*s_.log_postgres) : nullptr),
      dir_(s_.keys, key_store_) {
    for (auto const& t : s_.teams) teams_.emplace(t.name, t);
    // A key's team without an entry of its own still groups its spend.
    for (auto const& k : s_.keys)
        if (!k.team.empty() && !teams_.count(k.team)) teams_.emplace(k.team, team{k.team, {}, {}});
    if (sqlite_ || redis_)
        spdlog::info("state: {}{}{}", sqlite_ ? "sqlite " + s_.sqlite->path : "", sqlite_ && redis_ ? ", " : "",
                     redis_ ? "redis (counters, ledger, keys)" : "");
}

access_runtime::~access_runtime() = default;

bool access_runtime::auth_required() const { return s_.auth_required.value_or(keys_configured()); }

team const* access_runtime::find_team(std::string_view name) const {
    if (name.empty()) return nullptr;
    auto it = teams_.find(name);
    return it == teams_.end() ? nullptr : &it->second;
}

asio::awaitable<std::optional<api_error>> access_runtime::authenticate(std::string_view authorization,
                                                                       std::string_view x_api_key, request_scope& scope) {
    std::string_view token;
    if (authorization.size() > 7 && (authorization.substr(0, 7) == "Bearer " || authorization.substr(0, 7) == "bearer "))
        token = authorization.substr(7);
    else if (!x_api_key.empty())
        token = x_api_key;
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token.empty()) {
        if (!auth_required()) co_return std::nullopt;
        stats_.auth_missing.fetch_add(1, std::memory_order_relaxed);
        co_return api_error{401, "invalid_request_error", "missing_api_key",
                            "No API key provided: send it as 'Authorization: Bearer <key>'"};
    }
    if (!keys_configured()) {
        // No keys at all: a client's token (often a placeholder its SDK requires) is not checked.
        co_return std::nullopt;
    }
    if (token.size() > 512) {
        stats_.auth_invalid.fetch_add(1, std::memory_order_relaxed);
        co_return api_error{401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided"};
    }
    auto found = co_await dir_.find(token);
    if (!found) {
        stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
        co_return api_error{503, "server_error", "state_unavailable", "the key store is unavailable; retry later"};
    }
    auto key = std::move(*found);
    if (!key || key->disabled) {
        stats_.auth_invalid.fetch_add(1, std::memory_order_relaxed);
        co_return api_error{401, "invalid_request_error", "invalid_api_key",
                            key ? "This API key is disabled" : "Incorrect API key provided"};
    }
    scope.key = std::move(key);
    scope.key_team = find_team(scope.key->team);
    co_return std::nullopt;
}

asio::awaitable<void> access_runtime::finish(request_scope& scope) {
    for (auto const& [counter, lease] : scope.leases) {
        auto r = co_await counters_->release(counter, lease);
        if (!r) stats_.store_errors.fetch_add(1, std::memory_order_relaxed);  // the lease lapses on its own
    }
    scope.leases.clear();
}

namespace {

// What a background close needs, owned (the turn that asked has answered and gone).
struct owned_close {
    std::vector<state::limit_check> adjust;
    std::vector<state::budget_line> lines;
    std::string reservation;
    state::spend_entry who;
    std::string id;
    state::turn_close view;
};

std::shared_ptr<owned_close> own(state::turn_close const& t) {
    auto o = std::make_shared<owned_close>();
    if (t.adjust) o->adjust = *t.adjust;
    if (t.lines) o->lines = *t.lines;
    if (t.reservation) o->reservation = *t.reservation;
    if (t.who) o->who = *t.who;
    if (t.id) o->id = *t.id;
    o->view = t;
    o->view.adjust = t.adjust ? &o->adjust : nullptr;
    o->view.lines = t.lines ? &o->lines : nullptr;
    o->view.reservation = t.reservation ? &o->reservation : nullptr;
    o->view.who = t.who ? &o->who : nullptr;
    o->view.id = t.id ? &o->id : nullptr;
    return o;
}

// Counts a close from before it is spawned until its frame is gone (run, failed, or destroyed
// unrun with its io_context).
struct closing_guard {
    explicit closing_guard(std::shared_ptr<std::atomic<std::size_t>> c) : count(std::move(c)) {
        count->fetch_add(1, std::memory_order_acq_rel);
    }
    closing_guard(closing_guard const&) = delete;
    closing_guard& operator=(closing_guard const&) = delete;
    ~closing_guard() { count->fetch_sub(1, std::memory_order_acq_rel); }
    std::shared_ptr<std::atomic<std::size_t>> count;
};

asio::awaitable<void> close_in_background(std::shared_ptr<state::turn_gate> gate, std::shared_ptr<owned_close> o,
                                          std::shared_ptr<closing_guard> guard,
                                          std::shared_ptr<std::atomic<std::uint64_t>> errors) {
    bool ok = false;
    try {
        auto r = co_await gate->close(o->view);
        ok = r.has_value();
    } catch (std::exception const& e) {
        spdlog::warn("a turn's settle failed: {}", e.what());
    } catch (...) {
        spdlog::warn("a turn's settle failed");
    }
    if (!ok) errors->fetch_add(1, std::memory_order_relaxed);
    guard.reset();
}

}  // namespace

void access_runtime::close_later(asio::any_io_executor const& ex, state::turn_close const& t) {
    auto guard = std::make_shared<closing_guard>(closing_);
    asio::co_spawn(ex, close_in_background(gate_, own(t), std::move(guard), close_errors_), asio::detached);
}

std::string access_runtime::metrics_text() const {
    prometheus::writer w;
    auto load = [](std::atomic<std::uint64_t> const& v) { return v.load(std::memory_order_relaxed); };
    w.family("toolgate_policy_rejections_total", "counter", "Requests refused by keys, rate limits and budgets, by reason.");
    w.sample("toolgate_policy_rejections_total", {{"reason", "missing_api_key"}}, load(stats_.auth_missing));
    w.sample("toolgate_policy_rejections_total", {{"reason", "invalid_api_key"}}, load(stats_.auth_invalid));
    w.sample("toolgate_policy_rejections_total", {{"reason", "forbidden"}}, load(stats_.forbidden));
    w.sample("toolgate_policy_rejections_total", {{"reason", "rate_limited"}}, load(stats_.rate_limited));
    w.sample("toolgate_policy_rejections_total", {{"reason", "budget_exceeded"}}, load(stats_.budget_exceeded));
    w.sample("toolgate_policy_rejections_total", {{"reason", "model_unpriced"}}, load(stats_.unpriced));
    w.sample("toolgate_policy_rejections_total", {{"reason", "state_unavailable"}},
             load(stats_.store_errors) + close_errors_->load(std::memory_order_relaxed));
    w.family("toolgate_policy_open_passes_total", "counter",
             "Requests admitted while the state store was unavailable (on_unavailable: open).");
    w.sample("toolgate_policy_open_passes_total", {}, load(stats_.store_open_passes));
    w.family("toolgate_limiter_seconds", "summary", "Time spent admitting turns (rate-limit checks and budget reservations, one store call).");
    w.sample("toolgate_limiter_seconds_sum", {}, double(load(stats_.limiter_us)) / 1e6);
    w.sample("toolgate_limiter_seconds_count", {}, load(stats_.limiter_calls));
    w.family("toolgate_ledger_seconds", "summary", "Time spent closing turns (token corrections and settlements, one store call).");
    w.sample("toolgate_ledger_seconds_sum", {}, double(load(stats_.ledger_us)) / 1e6);
    w.sample("toolgate_ledger_seconds_count", {}, load(stats_.ledger_calls));
    {
        std::lock_guard lock(spend_mu_);
        w.family("toolgate_spend_usd_total", "counter", "USD charged, by key and team.");
        for (auto const& [who, usd] : spend_) w.sample("toolgate_spend_usd_total", {{"key", who.first}, {"team", who.second}}, usd);
    }
    if (redis_) {
        auto const& rs = state::stats(*redis_);
        w.family("toolgate_redis_up", "gauge", "Whether the last Redis command got an answer.");
        w.sample("toolgate_redis_up", {}, std::uint64_t(rs.up.load() ? 1 : 0));
        w.family("toolgate_redis_commands_total", "counter", "Redis commands sent.");
        w.sample("toolgate_redis_commands_total", {}, std::uint64_t(rs.commands.load()));
        w.family("toolgate_redis_failures_total", "counter", "Redis commands without an answer.");
        w.sample("toolgate_redis_failures_total", {}, std::uint64_t(rs.failures.load()));
        w.family("toolgate_redis_recoveries_total", "counter", "Times Redis came back after being unavailable.");
        w.sample("toolgate_redis_recoveries_total", {}, std::uint64_t(rs.recoveries.load()));
    }
    if (log_ || request_log_) {
        std::uint64_t written = 0, dropped = 0, failed = 0;
        for (auto const* l : {log_.get(), request_log_.get()}) {
            if (!l) continue;
            written += l->stats().written.load();
            dropped += l->stats().dropped.load();
            failed += l->stats().failed.load();
        }
        w.family("toolgate_request_log_records_total", "counter", "Request- and audit-log records, by outcome.");
        w.sample("toolgate_request_log_records_total", {{"outcome", "written"}}, written);
        w.sample("toolgate_request_log_records_total", {{"outcome", "dropped"}}, dropped);
        w.sample("toolgate_request_log_records_total", {{"outcome", "failed"}}, failed);
    }
    return w.take();
}

void access_runtime::note_spend(virtual_key const& k, double usd) {
    if (usd <= 0) return;
    std::lock_guard lock(spend_mu_);
    auto it = spend_.find({k.name, k.team});
    if (it == spend_.end()) {
        if (spend_.size() >= 1000) {  // bounded: the rest is folded into one series
            spend_[{"other", "other"}] += usd;
            return;
        }
        it = spend_.emplace(std::make_pair(k.name, k.team), 0.0).first;
    }
    it->second += usd;
}

}  // namespace toolgate::gateway::policy
