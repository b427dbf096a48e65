// The config sections of keys, limits, budgets and state: state, auth, admin, keys, teams,
// rate_limits, budgets, request_log. Keys and teams are read as JSON by the same parser as the
// admin API, so both take the same fields and say the same things about mistakes.
#include <boost/json/value.hpp>
#include <yaml-cpp/yaml.h>

#include <set>

#include "common/config_reader.hpp"
#include "gateway/policy/access.hpp"

namespace toolgate::gateway::policy {

namespace {

void parse_state(reader const& r, YAML::Node const& n, access_settings& out) {
    r.check_keys(n, "state", {"sqlite", "redis", "memory", "persist"});
    if (auto p = n["persist"]) {
        out.persist = r.boolean(p, "state.persist");
        if (!out.persist && n["sqlite"])
            r.fail(p, "state.persist", "false keeps everything in memory; it cannot go with state.sqlite");
    }
    if (auto s = n["sqlite"]) {
        r.check_keys(s, "state.sqlite", {"path", "queue", "busy_timeout"});
        state::sqlite_options o;
        if (auto p = s["path"]) o.path = r.str(p, "state.sqlite.path");
        if (o.path.empty()) r.fail(s, "state.sqlite.path", "must not be empty");
        if (auto q = s["queue"]) o.queue = r.integer(q, "state.sqlite.queue", 16, 10'000'000);
        if (auto b = s["busy_timeout"]) o.busy_timeout = r.duration(b, "state.sqlite.busy_timeout");
        out.sqlite = o;
    }
    if (auto s = n["redis"]) {
        r.check_keys(s, "state.redis", {"url", "prefix", "timeout", "on_unavailable"});
        state::redis_options o;
        if (auto u = s["url"]) o.url = r.str(u, "state.redis.url");
        if (auto p = s["prefix"]) o.prefix = r.str(p, "state.redis.prefix");
        if (auto t = s["timeout"]) {
            o.timeout = r.duration(t, "state.redis.timeout");
            if (o.timeout.count() < 1 || o.timeout.count() > 60'000) r.fail(t, "state.redis.timeout", "must be between 1ms and 60s");
        }
        if (auto m = s["on_unavailable"]) {
            auto mode = [&r](YAML::Node const& v, std::string const& path) {
                auto t = r.str(v, path);
                if (t == "open") return fail_mode::open;
                if (t != "closed") r.fail(v, path, "must be open (admit while Redis is down) or closed (refuse with 503)");
                return fail_mode::closed;
            };
            if (m.IsMap()) {  // per feature
                r.check_keys(m, "state.redis.on_unavailable", {"rate_limits", "budgets"});
                if (auto f = m["rate_limits"]) out.limits_unavailable = mode(f, "state.redis.on_unavailable.rate_limits");
                if (auto f = m["budgets"]) out.budgets_unavailable = mode(f, "state.redis.on_unavailable.budgets");
            } else {
                out.limits_unavailable = out.budgets_unavailable = mode(m, "state.redis.on_unavailable");
            }
        }
        try {
            (void)make_redis_pool(o);  // validates the URL now
        } catch (std::invalid_argument const& e) {
            r.fail(s["url"] ? s["url"] : s, "state.redis.url", e.what());
        }
        out.redis = o;
    }
    if (auto m = n["memory"]) {
        r.check_keys(m, "state.memory", {"max_counters", "log_rows"});
        if (auto c = m["max_counters"]) out.memory.max_counters = r.integer(c, "state.memory.max_counters", 256, 100'000'000);
        if (auto c = m["log_rows"]) out.memory.log_rows = r.integer(c, "state.memory.log_rows", 1, 10'000'000);
    }
}

json::object as_object(reader const& r, YAML::Node const& n, std::string const& path) {
    if (!n.IsMap()) r.fail(n, path, "must be a mapping");
    auto v = r.to_json(n, path);
    return v.as_object();
}

std::string key_text(json::value const* v) {
    if (!v) return {};
    if (v->is_string()) return std::string(v->get_string());
    if (v->is_int64()) return std::to_string(v->get_int64());
    return {};
}

void parse_keys(reader const& r, YAML::Node const& n, access_settings& out) {
    if (!n.IsSequence()) r.fail(n, "keys", "must be a list of keys");
    std::set<std::string> names, hashes;
    std::size_t i = 0;
    for (auto const& item : n) {
        auto path = "keys[" + std::to_string(i++) + "]";
        auto o = as_object(r, item, path);
        virtual_key k;
        if (auto e = parse_key_fields(o, k, false, {"key", "key_sha256"}); !e.empty()) r.fail(item, path + "." + e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
        auto text = key_text(o.if_contains("key"));
        auto const* sha = o.if_contains("key_sha256");
        if (text.empty() == (sha == nullptr))
            r.fail(item, path, "needs exactly one of key (the key itself, e.g. ${APP_KEY}) or key_sha256 (its hex SHA-256)");
        if (!text.empty()) {
            if (text.size() < 8) r.fail(item["key"], path + ".key", "must be at least 8 characters (is the variable set?)");
            k.hash = state::sha256_hex(text);
            k.prefix = display_prefix(text);
        } else {
            if (!sha->is_string() || sha->get_string().size() != 64 ||
                std::string_view(sha->get_string()).find_first_not_of("0123456789abcdefABCDEF") != std::string_view::npos)
                r.fail(item["key_sha256"], path + ".key_sha256", "must be 64 hex digits");
            k.hash = std::string(sha->get_string());
            for (auto& c : k.hash) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            k.prefix = "sha256:" + k.hash.substr(0, 8);
        }
        if (!names.insert(k.name).second) r.fail(item["name"], path + ".name", "duplicate key name '" + k.name + "'");
        if (!hashes.insert(k.hash).second) r.fail(item, path, "the same key as an earlier entry");
        // Config keys keep their id across restarts: it is derived from the name.
        k.id = "key_cfg_" + state::sha256_hex("config:" + k.name).substr(0, 16);
        k.from_config = true;
        out.keys.push_back(std::move(k));
    }
}

void parse_teams(reader const& r, YAML::Node const& n, access_settings& out) {
    if (!n.IsSequence()) r.fail(n, "teams", "must be a list of teams");
    std::size_t i = 0;
    for (auto const& item : n) {
        auto path = "teams[" + std::to_string(i++) + "]";
        r.check_keys(item, path, {"name", "limits", "budget"});
        team t;
        if (!item["name"]) r.fail(item, path + ".name", "required");
        t.name = r.str(item["name"], path + ".name");
        for (auto const& other : out.teams)
            if (other.name == t.name) r.fail(item["name"], path + ".name", "duplicate team '" + t.name + "'");
        if (auto l = item["limits"])
            if (auto e = parse_limits(r.to_json(l, path + ".limits"), t.limits, path + ".limits"); !e.empty()) r.fail(l, e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
        if (auto b = item["budget"])
            if (auto e = parse_budget(r.to_json(b, path + ".budget"), t.budget, path + ".budget"); !e.empty()) r.fail(b, e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
        out.teams.push_back(std::move(t));
    }
}

void parse_rules(reader const& r, YAML::Node const& n, access_settings& out) {
    if (!n.IsSequence()) r.fail(n, "rate_limits", "must be a list of {scope, limits...}");
    std::size_t i = 0;
    for (auto const& item : n) {
        auto path = "rate_limits[" + std::to_string(i++) + "]";
        if (!item.IsMap()) r.fail(item, path, "must be a mapping");
        auto o = r.to_json(item, path).as_object();
        rate_rule rule;
        auto const* scope = o.if_contains("scope");
        if (!scope || !scope->is_string()) r.fail(item, path + ".scope", "required: global, user or model");
        auto s = std::string_view(scope->get_string());
        if (s == "global") rule.applies = rate_rule::scope::global;
        else if (s == "user") rule.applies = rate_rule::scope::user;
        else if (s == "model") rule.applies = rate_rule::scope::model;
        else r.fail(item["scope"], path + ".scope", "must be global, user or model (keys and teams set their own limits)");
        o.erase("scope");
        if (auto const* m = o.if_contains("model")) {
            if (rule.applies != rate_rule::scope::model || !m->is_string() || m->get_string().empty())
                r.fail(item["model"], path + ".model", "only with scope: model, and a model name");
            rule.model = m->get_string();
            o.erase("model");
        } else if (rule.applies == rate_rule::scope::model) {
            r.fail(item, path + ".model", "required with scope: model");
        }
        if (auto e = parse_limits(o, rule.limits, path); !e.empty()) r.fail(item, e.substr(0, e.find(':')), e.substr(e.find(':') + 2));
        if (!any_limit(rule.limits)) r.fail(item, path, "sets no limit");
        out.rules.push_back(std::move(rule));
    }
}

}  // namespace

bool access_settings::any_limits() const {
    for (auto const& k : keys)
        if (any_limit(k.limits)) return true;
    for (auto const& t : teams)
        if (any_limit(t.limits)) return true;
    return !rules.empty() || endpoint_limits;
}

bool access_settings::any_budgets() const {
    for (auto const& k : keys)
        if (k.budget.any()) return true;
    for (auto const& t : teams)
        if (t.budget.any()) return true;
    return endpoint_budgets;
}

bool access_settings::active() const {
    return !keys.empty() || !admin_token.empty() || !rules.empty() || !teams.empty() || log_enabled ||
           auth_required.value_or(false) || sqlite || redis || endpoint_limits || endpoint_budgets;
}

void parse_access(reader const& r, YAML::Node const& root, access_settings& out) {
    if (auto n = root["state"]) parse_state(r, n, out);
    if (auto n = root["auth"]) {
        r.check_keys(n, "auth", {"required"});
        if (auto q = n["required"]) out.auth_required = r.boolean(q, "auth.required");
    }
    if (auto n = root["admin"]) {
        r.check_keys(n, "admin", {"token"});
        if (auto t = n["token"]) out.admin_token = r.str(t, "admin.token");
        if (out.admin_token.size() < 12)
            r.fail(n["token"] ? n["token"] : n, "admin.token", "must be at least 12 characters (is the variable set?)");
    }
    if (auto n = root["keys"]) parse_keys(r, n, out);
    if (auto n = root["teams"]) parse_teams(r, n, out);
    if (auto n = root["rate_limits"]) parse_rules(r, n, out);
    if (auto n = root["budgets"]) {
        r.check_keys(n, "budgets", {"unpriced", "default_max_tokens"});
        if (auto u = n["unpriced"]) {
            auto v = r.str(u, "budgets.unpriced");
            if (v != "reject" && v != "allow")
                r.fail(u, "budgets.unpriced", "must be reject (refuse models without a price under a budget) or allow (charge them 0)");
            out.unpriced_allow = v == "allow";
        }
        if (auto m = n["default_max_tokens"]) out.default_max_tokens = static_cast<std::int64_t>(r.integer(m, "budgets.default_max_tokens", 1, 10'000'000));
    }
    if (auto n = root["request_log"]) {
        r.check_keys(n, "request_log", {"enabled", "store", "url", "payloads", "max_age", "max_rows"});
        out.log_enabled = true;
        if (auto e = n["enabled"]) out.log_enabled = r.boolean(e, "request_log.enabled");
        bool postgres = false;
        if (auto s = n["store"]) {
            auto v = r.str(s, "request_log.store");
            if (v != "sqlite" && v != "memory" && v != "postgres")
                r.fail(s, "request_log.store", "must be sqlite, memory or postgres");
            out.log_in_memory = v == "memory";
            postgres = v == "postgres";
        }
        // The request records go to PostgreSQL; the audit log stays with the state (sqlite or memory).
        if (auto u = n["url"]) {
            if (!postgres) r.fail(u, "request_log.url", "is only for store: postgres");
            state::postgres_options o;
            o.url = r.str(u, "request_log.url");
            if (o.url.empty()) r.fail(u, "request_log.url", "must not be empty");
            out.log_postgres = o;
        } else if (postgres) {
            r.fail(n, "request_log.url", "is required with store: postgres (postgresql://user[:password]@host:port/db)");
        }
        if (auto p = n["payloads"]) out.log_payloads = r.boolean(p, "request_log.payloads");
        state::log_retention ret;
        if (auto a = n["max_age"]) ret.max_age_ms = r.duration(a, "request_log.max_age").count();
        if (auto m = n["max_rows"]) ret.max_rows = static_cast<std::int64_t>(r.integer(m, "request_log.max_rows", 100, 1'000'000'000));
        if (out.log_enabled && !out.log_in_memory && !out.log_postgres && !out.sqlite && out.persist)
            out.sqlite = state::sqlite_options{};
        if (out.sqlite) out.sqlite->retention = ret;
        if (out.log_postgres) out.log_postgres->retention = ret;
    }
    // Durable state without a state section: the embedded SQLite file in the working directory.
    bool needs_durable = (!out.admin_token.empty() || out.any_budgets()) && !out.redis;
    if (needs_durable && !out.sqlite && out.persist) out.sqlite = state::sqlite_options{};
}

}  // namespace toolgate::gateway::policy
