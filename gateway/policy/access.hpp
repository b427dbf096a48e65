#pragma once
// Keys, teams, rate limits, budgets and the request log: their settings (parsed from the config's
// state, auth, admin, keys, teams, rate_limits, budgets and request_log sections) and the runtime
// they share (the stores, the key directory), built once at start-up and used by every worker.
//
// Per request, a request_scope carries the caller's key and what must be undone when the request
// ends (concurrency leases); it lives in api_request and the turn filters reach it through the
// turn context.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/api_error.hpp"
#include "gateway/policy/keys.hpp"
#include "state/counter_store.hpp"
#include "state/ledger.hpp"
#include "state/log_store.hpp"
#include "state/memory.hpp"
#include "state/postgres.hpp"
#include "state/redis.hpp"
#include "state/sqlite.hpp"
#include "state/turn_gate.hpp"

namespace YAML {
class Node;
}
namespace toolgate {
class reader;
}

namespace toolgate::gateway::policy {

enum class fail_mode { closed, open };

struct rate_rule {
    enum class scope { global, user, model } applies = scope::global;
    std::string model;  // scope model
    limit_set limits{};
};

// An AI endpoint's own limits and budget (endpoints: in config), counted beside the key's.
struct endpoint_policy {
    std::string slug;
    limit_set limits{};
    budget_set budget;
    std::int64_t max_tokens_per_request = 0;  // 0: none
};

struct access_settings {
    std::optional<state::sqlite_options> sqlite;  // state.sqlite (or implied by a feature that needs it)
    std::optional<state::redis_options> redis;
    // state.redis.on_unavailable: what the rate limits and the budgets do while their store cannot
    // answer (keys always fail closed: an unknown key is never let in).
    fail_mode limits_unavailable = fail_mode::closed;
    fail_mode budgets_unavailable = fail_mode::closed;
    // state.persist: false keeps keys, spend and the log in memory (nothing survives a restart).
    bool persist = true;
    state::memory_options memory;
    std::optional<bool> auth_required;  // auth.required; default: when keys exist
    std::string admin_token;
    std::vector<virtual_key> keys;
    std::vector<team> teams;
    std::vector<rate_rule> rules;
    bool unpriced_allow = false;
    std::int64_t default_max_tokens = 4096;  // a turn's output reservation when the request sets none
    bool log_enabled = false;
    bool log_payloads = false;
    bool log_in_memory = false;  // request_log.store: memory
    std::optional<state::postgres_options> log_postgres;  // request_log.store: postgres (request records only)
    // AI endpoints with limits or budgets of their own (set by the endpoints section's parser).
    bool endpoint_limits = false;
    bool endpoint_budgets = false;
    bool any_limits() const;
    bool any_budgets() const;
    // Anything configured that needs the runtime (keys, limits, budgets, the request log, state).
    bool active() const;
};

// Parses the sections named above from the config root into `out` (absent sections keep their
// defaults). Errors name the key and line.
void parse_access(reader const& r, YAML::Node const& root, access_settings& out);

// The per-request state of the policies.
struct request_scope {
    std::shared_ptr<virtual_key const> key;  // null: no key (auth not required)
    team const* key_team = nullptr;
    std::string user;  // the body's `user`
    endpoint_policy const* endpoint = nullptr;  // an AI endpoint's call: its limits and budget too
    std::vector<std::pair<std::string, std::string>> leases;  // (counter, lease) to release
    double cost_usd = 0;  // over all turns
    unsigned turns = 0;
};

// Counts for /metrics (any thread).
struct access_metrics {
    std::atomic<std::uint64_t> auth_missing{0}, auth_invalid{0}, forbidden{0}, rate_limited{0}, budget_exceeded{0},
        unpriced{0}, store_errors{0}, store_open_passes{0};
    std::atomic<std::uint64_t> limiter_calls{0}, limiter_us{0}, ledger_calls{0}, ledger_us{0};
};

class access_runtime {
public:
    explicit access_runtime(access_settings s);
    ~access_runtime();

    access_settings const& settings() const { return s_; }
    bool auth_required() const;
    bool keys_configured() const { return !dir_.empty(); }
    key_directory& keys() { return dir_; }
    state::counter_store& counters() { return *counters_; }
    state::ledger& ledger() { return *ledger_; }
    // The counters and the ledger as one model turn asks them (one script each way on Redis).
    state::turn_gate& gate() { return *gate_; }
    // Runs a turn's close in the background on `ex` (copies what it needs): for a gate whose
    // close may follow the answer. Counted until done; the server waits for it at shutdown.
    void close_later(asio::any_io_executor const& ex, state::turn_close const& t);
    std::size_t closing() const { return closing_->load(std::memory_order_acquire); }
    state::key_store* key_store() { return key_store_.get(); }
    // The request log (null unless request_log is on) and the audit log (with the admin API).
    state::log_store* log() { return s_.log_enabled ? (request_log_ ? request_log_.get() : log_.get()) : nullptr; }
    state::log_store* audit() { return log_.get(); }
    team const* find_team(std::string_view name) const;
    // Keys made through the admin API may carry limits and budgets of their own.
    bool may_limit() const { return key_store_ || s_.any_limits(); }
    // Every keyed turn is priced and recorded (spend per key and team), budget or not.
    bool may_budget() const { return key_store_ || !s_.keys.empty() || s_.endpoint_budgets; }
    access_metrics& stats() { return stats_; }

    // Who is calling: the bearer token (or x-api-key) of the request. Fills `scope.key`; returns
    // the 401/503 to answer, or nullopt.
    asio::awaitable<std::optional<api_error>> authenticate(std::string_view authorization, std::string_view x_api_key,
                                                           request_scope& scope);
    // Ends the request: releases its concurrency leases.
    asio::awaitable<void> finish(request_scope& scope);

    // Prometheus text for the policies.
    std::string metrics_text() const;
    // Counts a charge for /metrics (bounded series).
    void note_spend(virtual_key const& k, double usd);
    // The SQLite file of the state, when there is one (other features keep their rows in it too).
    std::shared_ptr<state::sqlite_db> sqlite() const { return sqlite_; }
    // The Redis pool of the state, when there is one (the response cache may share it).
    std::shared_ptr<state::redis_pool> redis() const { return redis_; }

private:
    access_settings s_;
    std::shared_ptr<state::sqlite_db> sqlite_;
    std::shared_ptr<state::redis_pool> redis_;
    std::shared_ptr<state::counter_store> counters_;
    std::shared_ptr<state::ledger> ledger_;
    std::shared_ptr<state::turn_gate> gate_;
    // Shared with the background closes, which may outlive a runtime stopped past its grace.
    std::shared_ptr<std::atomic<std::size_t>> closing_ = std::make_shared<std::atomic<std::size_t>>(0);
    std::shared_ptr<std::atomic<std::uint64_t>> close_errors_ = std::make_shared<std::atomic<std::uint64_t>>(0);
    std::shared_ptr<state::key_store> key_store_;
    std::shared_ptr<state::log_store> log_;
    std::shared_ptr<state::log_store> request_log_;  // request_log.store: postgres; null: log_ holds both
    key_directory dir_;
    std::map<std::string, team, std::less<>> teams_;
    access_metrics stats_;
    mutable std::mutex spend_mu_;
    std::map<std::pair<std::string, std::string>, double> spend_;
};

// Milliseconds since the Unix epoch (the clock of the limits and budgets).
std::int64_t unix_now_ms();
// "1s", "6m0s", "59.5s": OpenAI's x-ratelimit-reset-* format.
std::string format_reset(std::int64_t ms);

}  // namespace toolgate::gateway::policy
