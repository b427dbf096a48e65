#pragma once
// Virtual keys and teams: who may call what, with which limits and budgets. A key comes from the
// config (`keys:`) or the admin API (stored in a state::key_store, as a hash only); both are read
// by one parser (parse_key_fields) from JSON, so the admin API takes the config's fields.
//
// The key_directory answers "which key is this bearer token?" for every request: config keys from
// a hash map, stored keys through the store with a short cache (so a key created, rotated or
// disabled on another replica takes effect within `cache_ttl`, and at once on this one).
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "state/key_store.hpp"

namespace toolgate::gateway::policy {

namespace asio = boost::asio;
namespace json = boost::json;

// The limits a key, a team or a `rate_limits:` rule may set: one descriptor per field.
enum class limit_unit { requests, tokens, concurrent };
struct limit_field {
    std::string_view name;
    limit_unit unit;
    std::int64_t span_ms;  // 0 for concurrency
};
inline constexpr std::array<limit_field, 7> limit_fields{{
    {"requests_per_minute", limit_unit::requests, 60'000},
    {"requests_per_hour", limit_unit::requests, 3'600'000},
    {"requests_per_day", limit_unit::requests, 86'400'000},
    {"tokens_per_minute", limit_unit::tokens, 60'000},
    {"tokens_per_hour", limit_unit::tokens, 3'600'000},
    {"tokens_per_day", limit_unit::tokens, 86'400'000},
    {"max_concurrent", limit_unit::concurrent, 0},
}};
// 0: not limited.
using limit_set = std::array<std::int64_t, limit_fields.size()>;
bool any_limit(limit_set const& l);

struct budget_set {
    double daily_usd = 0;    // 0: none
    double monthly_usd = 0;
    bool any() const { return daily_usd > 0 || monthly_usd > 0; }
};

struct virtual_key {
    std::string id;      // "key_..."; the ledger and counters use it, so it survives a rename
    std::string name;
    std::string prefix;  // the key's first characters, for display
    std::string hash;    // hex SHA-256
    std::string team;
    std::optional<std::vector<std::string>> models;     // names, aliases, pools; nullopt: all
    std::optional<std::vector<std::string>> mcp_tools;  // exposed names or "prefix*"; nullopt: all
    limit_set limits{};
    budget_set budget;
    // Agent-loop limits (0: the gateway's); never looser than the gateway's.
    unsigned max_iterations = 0;
    unsigned max_tool_calls = 0;
    json::object metadata;
    bool disabled = false;
    bool from_config = false;
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;

    bool allows_model(std::string_view model) const;
    bool allows_tool(std::string_view exposed_name) const;
    // The fields as the admin API shows them (never the key or its hash).
    json::object to_json() const;
};

struct team {
    std::string name;
    limit_set limits{};
    budget_set budget;
};

// Reads the fields a key may carry from `o` into `k` (name, team, models, mcp_tools, limits,
// budget, agent_loop, metadata, disabled; plus `extra` names the caller handles itself). `partial`:
// an update, absent fields stay as they are. Returns the error ("limits.requests_per_minute: must
// be a whole number >= 0") or an empty string.
std::string parse_key_fields(json::object const& o, virtual_key& k, bool partial,
                             std::vector<std::string_view> const& extra = {});
std::string parse_limits(json::value const& v, limit_set& out, std::string const& path, bool allow_concurrent = true);
std::string parse_budget(json::value const& v, budget_set& out, std::string const& path);

// A new key's text: "tg-" and 40 random base62 characters (238 bits).
std::string new_key_text();
std::string new_key_id();
std::string display_prefix(std::string_view key_text);

// A stored key to and from the store's record.
state::stored_key to_stored(virtual_key const& k);
std::optional<virtual_key> from_stored(state::stored_key const& s);

class key_directory {
public:
    // `config_keys`: from the config, immutable. `store`: where admin keys live (may be null: no
    // admin keys).
    key_directory(std::vector<virtual_key> config_keys, std::shared_ptr<state::key_store> store,
                  std::chrono::milliseconds cache_ttl = std::chrono::seconds(2));

    bool empty() const { return config_.empty() && !store_; }

    // The key whose text is `token`: nullptr when unknown (or disabled: `disabled` tells). A store
    // error is passed on (the caller answers 503).
    asio::awaitable<state::result<std::shared_ptr<virtual_key const>>> find(std::string_view token);
    // Forget a cached stored key (after an admin change here).
    void invalidate(std::string const& hash);

    std::vector<std::shared_ptr<virtual_key const>> const& config_keys() const { return config_list_; }
    std::shared_ptr<virtual_key const> config_key_by_id(std::string_view id) const;

private:
    struct cached {
        std::shared_ptr<virtual_key const> key;  // null: known not to exist
        std::chrono::steady_clock::time_point until;
    };
    std::unordered_map<std::string, std::shared_ptr<virtual_key const>> config_;  // by hash
    std::vector<std::shared_ptr<virtual_key const>> config_list_;
    std::shared_ptr<state::key_store> store_;
    std::chrono::milliseconds ttl_;
    std::mutex mu_;
    std::unordered_map<std::string, cached> cache_;
};

}  // namespace toolgate::gateway::policy
