#include "gateway/policy/keys.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <openssl/rand.h>

#include <chrono>
#include <cmath>
#include <set>

namespace toolgate::gateway::policy {

namespace {

bool matches_pattern(std::string_view pattern, std::string_view name) {
    if (!pattern.empty() && pattern.back() == '*') return name.starts_with(pattern.substr(0, pattern.size() - 1));
    return pattern == name;
}

std::string string_list(json::value const& v, std::string const& path, std::vector<std::string>& out) {
    auto const* a = v.if_array();
    if (!a) return path + ": must be a list of strings";
    if (a->size() > 1000) return path + ": at most 1000 entries";
    out.clear();
    for (auto const& item : *a) {
        if (!item.is_string() || item.get_string().empty() || item.get_string().size() > 256)
            return path + ": must be a list of non-empty strings";
        out.emplace_back(item.get_string());
    }
    return {};
}

std::string whole(json::value const& v, std::string const& path, std::int64_t& out, std::int64_t max) {
    if (v.is_int64() && v.get_int64() >= 0 && v.get_int64() <= max) {
        out = v.get_int64();
        return {};
    }
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(max)) {
        out = static_cast<std::int64_t>(v.get_uint64());
        return {};
    }
    if (v.is_double() && v.get_double() >= 0 && v.get_double() <= double(max) && std::floor(v.get_double()) == v.get_double()) {
        out = static_cast<std::int64_t>(v.get_double());
        return {};
    }
    return path + ": must be a whole number between 0 and " + std::to_string(max);
}

std::string usd(json::value const& v, std::string const& path, double& out) {
    double d = -1;
    if (v.is_int64()) d = double(v.get_int64());
    else if (v.is_uint64()) d = double(v.get_uint64());
    else if (v.is_double()) d = v.get_double();
    if (!(d >= 0 && d <= 1e9)) return path + ": must be an amount in USD between 0 and 1e9";
    out = d;
    return {};
}

bool valid_name(std::string_view n) {
    if (n.empty() || n.size() > 64) return false;
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    return true;
}

json::value list_json(std::optional<std::vector<std::string>> const& l) {
    if (!l) return nullptr;
    json::array a;
    for (auto const& s : *l) a.emplace_back(s);
    return a;
}

}  // namespace

bool any_limit(limit_set const& l) {
    for (auto v : l)
        if (v > 0) return true;
    return false;
}

bool virtual_key::allows_model(std::string_view model) const {
    if (!models) return true;
    for (auto const& m : *models)
        if (matches_pattern(m, model)) return true;
    return false;
}

bool virtual_key::allows_tool(std::string_view exposed) const {
    if (!mcp_tools) return true;
    for (auto const& p : *mcp_tools)
        if (matches_pattern(p, exposed)) return true;
    return false;
}

json::object virtual_key::to_json() const {
    json::object o;
    o["id"] = id;
    o["object"] = "key";
    o["name"] = name;
    o["key_prefix"] = prefix;
    if (team.empty()) o["team"] = nullptr;
    else o["team"] = team;
    o["models"] = list_json(models);
    o["mcp_tools"] = list_json(mcp_tools);
    json::object lim;
    for (std::size_t i = 0; i < limit_fields.size(); ++i)
        if (limits[i] > 0) lim[limit_fields[i].name] = limits[i];
    o["limits"] = std::move(lim);
    json::object b;
    if (budget.daily_usd > 0) b["daily_usd"] = budget.daily_usd;
    if (budget.monthly_usd > 0) b["monthly_usd"] = budget.monthly_usd;
    o["budget"] = std::move(b);
    json::object loop;
    if (max_iterations) loop["max_iterations"] = max_iterations;
    if (max_tool_calls) loop["max_tool_calls"] = max_tool_calls;
    o["agent_loop"] = std::move(loop);
    o["metadata"] = metadata;
    o["disabled"] = disabled;
    o["source"] = from_config ? "config" : "admin";
    o["created_at"] = created_ms / 1000;
    o["updated_at"] = updated_ms / 1000;
    return o;
}

std::string parse_limits(json::value const& v, limit_set& out, std::string const& path, bool allow_concurrent) {
    auto const* o = v.if_object();
    if (!o) return path + ": must be a mapping of limits";
    for (auto const& kv : *o) {
        std::size_t i = 0;
        while (i < limit_fields.size() && limit_fields[i].name != kv.key()) ++i;
        if (i == limit_fields.size() || (!allow_concurrent && limit_fields[i].unit == limit_unit::concurrent)) {
            std::string known;
            for (auto const& f : limit_fields)
                if (allow_concurrent || f.unit != limit_unit::concurrent) known += (known.empty() ? "" : ", ") + std::string(f.name);
            return path + "." + std::string(kv.key()) + ": unknown limit (known: " + known + ")";
        }
        if (auto e = whole(kv.value(), path + "." + std::string(kv.key()), out[i], 1'000'000'000'000); !e.empty()) return e;
    }
    return {};
}

std::string parse_budget(json::value const& v, budget_set& out, std::string const& path) {
    auto const* o = v.if_object();
    if (!o) return path + ": must be a mapping (daily_usd, monthly_usd)";
    for (auto const& kv : *o) {
        if (kv.key() == "daily_usd") {
            if (auto e = usd(kv.value(), path + ".daily_usd", out.daily_usd); !e.empty()) return e;
        } else if (kv.key() == "monthly_usd") {
            if (auto e = usd(kv.value(), path + ".monthly_usd", out.monthly_usd); !e.empty()) return e;
        } else {
            return path + "." + std::string(kv.key()) + ": unknown key (known: daily_usd, monthly_usd)";
        }
    }
    return {};
}

std::string parse_key_fields(json::object const& o, virtual_key& k, bool partial, std::vector<std::string_view> const& extra) {
    static std::set<std::string_view> const known{"name", "team", "models", "mcp_tools", "limits",
                                                  "budget", "agent_loop", "metadata", "disabled"};
    for (auto const& kv : o) {
        if (known.count(kv.key())) continue;
        bool is_extra = false;
        for (auto e : extra) is_extra = is_extra || e == kv.key();
        if (!is_extra) {
            std::string list;
            for (auto n : known) list += (list.empty() ? "" : ", ") + std::string(n);
            return std::string(kv.key()) + ": unknown field (known: " + list + ")";
        }
    }
    if (auto const* v = o.if_contains("name")) {
        if (!v->is_string() || !valid_name(v->get_string()))
            return "name: must be 1 to 64 letters, digits, '-', '_' or '.'";
        k.name = v->get_string();
    } else if (!partial) {
        return "name: required";
    }
    if (auto const* v = o.if_contains("team")) {
        if (v->is_null()) k.team.clear();
        else if (!v->is_string() || !valid_name(v->get_string())) return "team: must be a team name";
        else k.team = v->get_string();
    }
    for (auto field : {"models", "mcp_tools"}) {
        auto const* v = o.if_contains(field);
        if (!v) continue;
        auto& target = std::string_view(field) == "models" ? k.models : k.mcp_tools;
        if (v->is_null()) {
            target.reset();
            continue;
        }
        std::vector<std::string> list;
        if (auto e = string_list(*v, field, list); !e.empty()) return e;
        target = std::move(list);
    }
    if (auto const* v = o.if_contains("limits")) {
        limit_set l{};
        if (!v->is_null())
            if (auto e = parse_limits(*v, l, "limits"); !e.empty()) return e;
        k.limits = l;
    }
    if (auto const* v = o.if_contains("budget")) {
        budget_set b;
        if (!v->is_null())
            if (auto e = parse_budget(*v, b, "budget"); !e.empty()) return e;
        k.budget = b;
    }
    if (auto const* v = o.if_contains("agent_loop")) {
        auto const* lo = v->if_object();
        if (!lo && !v->is_null()) return "agent_loop: must be a mapping (max_iterations, max_tool_calls)";
        k.max_iterations = k.max_tool_calls = 0;
        if (lo)
            for (auto const& kv : *lo) {
                std::int64_t n = 0;
                if (kv.key() != "max_iterations" && kv.key() != "max_tool_calls")
                    return "agent_loop." + std::string(kv.key()) + ": unknown key (known: max_iterations, max_tool_calls)";
                if (auto e = whole(kv.value(), "agent_loop." + std::string(kv.key()), n, 10'000); !e.empty()) return e;
                (kv.key() == "max_iterations" ? k.max_iterations : k.max_tool_calls) = static_cast<unsigned>(n);
            }
    }
    if (auto const* v = o.if_contains("metadata")) {
        if (v->is_null()) k.metadata = {};
        else if (!v->is_object()) return "metadata: must be an object";
        else if (json::serialize(*v).size() > 4096) return "metadata: at most 4 KiB";
        else k.metadata = v->get_object();
    }
    if (auto const* v = o.if_contains("disabled")) {
        if (!v->is_bool()) return "disabled: must be true or false";
        k.disabled = v->get_bool();
    }
    return {};
}

std::string new_key_text() {
    static constexpr char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string out = "tg-";
    unsigned char buf[64];
    while (out.size() < 43) {
        RAND_bytes(buf, sizeof buf);
        for (unsigned char c : buf)
            if (c < 248 && out.size() < 43) out.push_back(alphabet[c % 62]);  // 248 = 4 * 62: unbiased
    }
    return out;
}

std::string new_key_id() {
    static constexpr char hex[] = "0123456789abcdef";
    unsigned char buf[8];
    RAND_bytes(buf, sizeof buf);
    std::string out = "key_";
    for (unsigned char c : buf) {
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 15]);
    }
    return out;
}

std::string display_prefix(std::string_view key_text) { return std::string(key_text.substr(0, 7)) + "..."; }

state::stored_key to_stored(virtual_key const& k) {
    state::stored_key s;
    s.id = k.id;
    s.hash = k.hash;
    s.prefix = k.prefix;
    s.attrs = k.to_json();
    s.attrs.erase("id");
    s.attrs.erase("object");
    s.attrs.erase("key_prefix");
    s.attrs.erase("source");
    s.attrs.erase("created_at");
    s.attrs.erase("updated_at");
    s.created_ms = k.created_ms;
    s.updated_ms = k.updated_ms;
    return s;
}

std::optional<virtual_key> from_stored(state::stored_key const& s) {
    virtual_key k;
    // Stored attributes were written by to_stored: nulls mean "all" for the lists.
    if (!parse_key_fields(s.attrs, k, false).empty()) return std::nullopt;
    k.id = s.id;
    k.hash = s.hash;
    k.prefix = s.prefix;
    k.created_ms = s.created_ms;
    k.updated_ms = s.updated_ms;
    return k;
}

key_directory::key_directory(std::vector<virtual_key> config_keys, std::shared_ptr<state::key_store> store,
                             std::chrono::milliseconds cache_ttl)
    : store_(std::move(store)), ttl_(cache_ttl) {
    for (auto& k : config_keys) {
        auto p = std::make_shared<virtual_key const>(std::move(k));
        config_[p->hash] = p;
        config_list_.push_back(p);
    }
}

std::shared_ptr<virtual_key const> key_directory::config_key_by_id(std::string_view id) const {
    for (auto const& k : config_list_)
        if (k->id == id) return k;
    return nullptr;
}

void key_directory::invalidate(std::string const& hash) {
    std::lock_guard lock(mu_);
    cache_.erase(hash);
}

asio::awaitable<state::result<std::shared_ptr<virtual_key const>>> key_directory::find(std::string_view token) {
    using out_t = state::result<std::shared_ptr<virtual_key const>>;
    auto hash = state::sha256_hex(token);
    if (auto it = config_.find(hash); it != config_.end()) co_return out_t(it->second);
    if (!store_) co_return out_t(std::shared_ptr<virtual_key const>());
    auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(mu_);
        if (auto it = cache_.find(hash); it != cache_.end() && it->second.until > now) co_return out_t(it->second.key);
    }
    auto found = co_await store_->find_hash(hash);
    if (!found) co_return out_t(found.error());
    std::shared_ptr<virtual_key const> key;
    if (*found)
        if (auto k = from_stored(**found)) key = std::make_shared<virtual_key const>(std::move(*k));
    std::lock_guard lock(mu_);
    if (cache_.size() > 100'000) cache_.clear();  // a flood of unknown tokens cannot grow it without bound
    // Unknown tokens are remembered briefly too, so guessing does not hit the store each time.
    cache_[hash] = cached{key, now + (key ? ttl_ : std::min<std::chrono::milliseconds>(ttl_, std::chrono::seconds(1)))};
    co_return out_t(key);
}

}  // namespace toolgate::gateway::policy
