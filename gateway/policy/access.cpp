#include "gateway/policy/access.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

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

std::string format_reset(std::int64_t ms) {
    if (ms <= 0) return "0s";
    if (ms < 1000) return fmt::format("{}ms", ms);
    auto total_s = ms / 1000;
    if (total_s < 60) {
        auto text = fmt::format("{}.{:03}", total_s, ms % 1000);
        while (text.back() == '0') text.pop_back();
        if (text.back() == '.') text.pop_back();
        return text + "s";
    }
    auto h = total_s / 3600, m = (total_s % 3600) / 60, sec = total_s % 60;
    if (h) return fmt::format("{}h{}m{}s", h, m, sec);
    return fmt::format("{}m{}s", m, sec);
}

access_runtime::access_runtime(access_settings s)
    : s_(std::move(s)),
      sqlite_(open_db(s_)),
      redis_(open_redis(s_)),
      counters_(redis_ ? state::make_redis_counters(redis_) : state::make_memory_counters(s_.memory)),
      ledger_(redis_ ? state::make_redis_ledger(redis_)
                     : sqlite_ ? state::make_sqlite_ledger(sqlite_) : state::make_memory_ledger()),
      key_store_(s_.admin_token.empty() ? nullptr
                 : redis_               ? state::make_redis_keys(redis_)
                 : sqlite_              ? state::make_sqlite_keys(sqlite_)
                                        : state::make_memory_keys()),
      log_(!s_.log_enabled && s_.admin_token.empty() ? nullptr
           : (sqlite_ && !s_.log_in_memory) ? state::make_sqlite_log(sqlite_)
                                             : state::make_memory_log(s_.memory)),
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

std::string access_runtime::metrics_text() const {
    fmt::memory_buffer b;
    auto out = std::back_inserter(b);
    fmt::format_to(out, "# HELP toolgate_policy_rejections_total Requests refused by keys, rate limits and budgets.\n"
                        "# TYPE toolgate_policy_rejections_total counter\n");
    auto row = [&](std::string_view reason, std::atomic<std::uint64_t> const& v) {
        fmt::format_to(out, "toolgate_policy_rejections_total{{reason=\"{}\"}} {}\n", reason, v.load(std::memory_order_relaxed));
    };
    row("missing_api_key", stats_.auth_missing);
    row("invalid_api_key", stats_.auth_invalid);
    row("forbidden", stats_.forbidden);
    row("rate_limited", stats_.rate_limited);
    row("budget_exceeded", stats_.budget_exceeded);
    row("model_unpriced", stats_.unpriced);
    row("state_unavailable", stats_.store_errors);
    fmt::format_to(out, "# HELP toolgate_policy_store_open_passes_total Requests admitted while the state store was unavailable (on_unavailable: open).\n"
                        "# TYPE toolgate_policy_store_open_passes_total counter\n"
                        "toolgate_policy_store_open_passes_total {}\n", stats_.store_open_passes.load());
    fmt::format_to(out, "# HELP toolgate_limiter_seconds Time spent in rate-limit checks.\n# TYPE toolgate_limiter_seconds summary\n"
                        "toolgate_limiter_seconds_sum {:.6f}\ntoolgate_limiter_seconds_count {}\n",
                   stats_.limiter_us.load() / 1e6, stats_.limiter_calls.load());
    fmt::format_to(out, "# HELP toolgate_ledger_seconds Time spent in budget reservations and settlements.\n# TYPE toolgate_ledger_seconds summary\n"
                        "toolgate_ledger_seconds_sum {:.6f}\ntoolgate_ledger_seconds_count {}\n",
                   stats_.ledger_us.load() / 1e6, stats_.ledger_calls.load());
    if (redis_) {
        auto const& rs = state::stats(*redis_);
        fmt::format_to(out, "# HELP toolgate_redis_up Whether the last Redis command got an answer.\n# TYPE toolgate_redis_up gauge\n"
                            "toolgate_redis_up {}\n", rs.up.load() ? 1 : 0);
        fmt::format_to(out, "# HELP toolgate_redis_commands_total Redis commands sent.\n# TYPE toolgate_redis_commands_total counter\n"
                            "toolgate_redis_commands_total {}\n", rs.commands.load());
        fmt::format_to(out, "# HELP toolgate_redis_failures_total Redis commands without an answer.\n# TYPE toolgate_redis_failures_total counter\n"
                            "toolgate_redis_failures_total {}\n", rs.failures.load());
        fmt::format_to(out, "# HELP toolgate_redis_recoveries_total Times Redis came back after being unavailable.\n# TYPE toolgate_redis_recoveries_total counter\n"
                            "toolgate_redis_recoveries_total {}\n", rs.recoveries.load());
    }
    if (log_) {
        auto const& ls = log_->stats();
        fmt::format_to(out, "# HELP toolgate_request_log_records_total Request-log records by outcome.\n# TYPE toolgate_request_log_records_total counter\n"
                            "toolgate_request_log_records_total{{outcome=\"written\"}} {}\n"
                            "toolgate_request_log_records_total{{outcome=\"dropped\"}} {}\n"
                            "toolgate_request_log_records_total{{outcome=\"failed\"}} {}\n",
                       ls.written.load(), ls.dropped.load(), ls.failed.load());
    }
    return std::string(b.data(), b.size());
}

}  // namespace toolgate::gateway::policy
