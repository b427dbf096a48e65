#include "gateway/routing/parse.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <set>

namespace toolgate::gateway::routing {

namespace {

providers::provider_config const* find_provider(gateway_config const& cfg, std::string_view name) {
    for (auto const& p : cfg.providers)
        if (p.name == name) return &p;
    return nullptr;
}

std::string provider_names(gateway_config const& cfg) {
    std::string out;
    for (auto const& p : cfg.providers) out += (out.empty() ? "" : ", ") + p.name;
    return out.empty() ? "none configured" : out;
}

retry_policy parse_retry(reader const& r, YAML::Node const& n, std::string const& path) {
    retry_policy p;
    r.check_keys(n, path, {"attempts", "on_status_codes", "backoff", "max_backoff", "max_retry_after"});
    if (auto x = n["attempts"]) p.attempts = unsigned(r.integer(x, path + ".attempts", 1, 10));
    if (auto x = n["on_status_codes"]) {
        if (!x.IsSequence()) r.fail(x, path + ".on_status_codes", "must be a list of HTTP status codes");
        p.on_status_codes.clear();
        for (auto const& c : x) p.on_status_codes.push_back(int(r.integer(c, path + ".on_status_codes", 400, 599)));
    }
    if (auto x = n["backoff"]) p.backoff = r.duration(x, path + ".backoff");
    if (auto x = n["max_backoff"]) p.max_backoff = r.duration(x, path + ".max_backoff");
    if (auto x = n["max_retry_after"]) p.max_retry_after = r.duration(x, path + ".max_retry_after");
    if (p.max_backoff < p.backoff) r.fail(n, path + ".max_backoff", "must not be shorter than backoff");
    return p;
}

std::optional<breaker_policy> parse_breaker(reader const& r, YAML::Node const& n, std::string const& path) {
    if (n.IsScalar()) {
        if (r.boolean(n, path)) return breaker_policy{};
        return std::nullopt;
    }
    breaker_policy b;
    r.check_keys(n, path, {"failure_threshold", "success_threshold", "timeout"});
    if (auto x = n["failure_threshold"]) b.failure_threshold = unsigned(r.integer(x, path + ".failure_threshold", 1, 1000));
    if (auto x = n["success_threshold"]) b.success_threshold = unsigned(r.integer(x, path + ".success_threshold", 1, 100));
    if (auto x = n["timeout"]) b.timeout = r.duration(x, path + ".timeout");
    return b;
}

target_config parse_target(reader const& r, YAML::Node const& n, std::string const& path, gateway_config const& cfg,
                           bool named_pool) {
    target_config t;
    r.check_keys(n, path, {"provider", "model", "weight", "retry", "circuit_breaker", "max_concurrency", "max_queue",
                           "queue_timeout"});
    if (!n["provider"]) r.fail(n, path, "'provider' is required");
    t.provider = r.str(n["provider"], path + ".provider");
    auto const* pc = find_provider(cfg, t.provider);
    if (!pc)
        r.fail(n["provider"], path + ".provider",
               "unknown provider '" + t.provider + "' (providers: " + provider_names(cfg) + ")");
    if (auto x = n["model"]) t.model = r.str(x, path + ".model");
    if (!t.model.empty() && !pc->models.empty() &&
        std::find(pc->models.begin(), pc->models.end(), t.model) == pc->models.end())
        r.fail(n["model"], path + ".model", "provider '" + t.provider + "' does not list model '" + t.model + "'");
    if (named_pool && t.model.empty() && pc->default_model.empty())
        r.fail(n, path,
               "needs a 'model': a pool's name is not a model name, and provider '" + t.provider + "' has no default_model");
    if (named_pool && t.model.empty()) t.model = pc->default_model;
    if (auto x = n["weight"]) t.weight = unsigned(r.integer(x, path + ".weight", 0, 1'000'000));
    if (auto x = n["retry"]) t.retry = parse_retry(r, x, path + ".retry");
    if (auto x = n["circuit_breaker"]) t.breaker = parse_breaker(r, x, path + ".circuit_breaker");
    if (auto x = n["max_concurrency"]) t.max_concurrency = unsigned(r.integer(x, path + ".max_concurrency", 1, 100'000));
    if (auto x = n["max_queue"]) t.max_queue = unsigned(r.integer(x, path + ".max_queue", 0, 100'000));
    if (auto x = n["queue_timeout"]) t.queue_timeout = r.duration(x, path + ".queue_timeout");
    return t;
}

// A condition's `target`: a target's provider name, or "provider/model" when a pool uses one
// provider twice.
std::size_t target_index(reader const& r, YAML::Node const& n, std::string const& path, pool_config const& pool) {
    if (!n) r.fail(n, path, "'target' is required");
    auto name = r.str(n, path);
    std::optional<std::size_t> found;
    for (std::size_t i = 0; i < pool.targets.size(); ++i) {
        auto const& t = pool.targets[i];
        if (name == t.provider || name == t.provider + "/" + t.model) {
            if (found && name == t.provider)
                r.fail(n, path, "'" + name + "' names several targets; write provider/model");
            if (!found) found = i;
        }
    }
    if (!found) r.fail(n, path, "'" + name + "' is not a target of this pool");
    return *found;
}

int minute_of(std::string_view hhmm) {
    if (hhmm.size() != 5 || hhmm[2] != ':') return -1;
    for (std::size_t i : {0u, 1u, 3u, 4u})
        if (hhmm[i] < '0' || hhmm[i] > '9') return -1;
    int h = (hhmm[0] - '0') * 10 + (hhmm[1] - '0');
    int m = (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
    if (h > 23 || m > 59) return -1;
    return h * 60 + m;
}

condition parse_condition(reader const& r, YAML::Node const& n, std::string const& path, pool_config const& pool) {
    r.check_keys(n, path, {"key", "value", "name", "target"});
    condition c;
    if (!n["key"]) r.fail(n, path, "'key' is required (model, model_prefix, has_tools, input_tokens_gt, header, time_of_day)");
    if (!n["value"]) r.fail(n, path, "'value' is required");
    auto key = r.str(n["key"], path + ".key");
    auto value = r.str(n["value"], path + ".value");
    c.target = target_index(r, n["target"], path + ".target", pool);
    if (key == "model") c.what = condition::kind::model;
    else if (key == "model_prefix") c.what = condition::kind::model_prefix;
    else if (key == "has_tools") {
        c.what = condition::kind::has_tools;
        c.flag = r.boolean(n["value"], path + ".value");
    } else if (key == "input_tokens_gt") {
        c.what = condition::kind::input_tokens_gt;
        c.tokens = std::int64_t(r.integer(n["value"], path + ".value", 0, 100'000'000));
    } else if (key == "header") {
        c.what = condition::kind::header;
        if (!n["name"]) r.fail(n, path, "a header condition needs 'name' (the header) and 'value'");
        c.header = r.str(n["name"], path + ".name");
        std::transform(c.header.begin(), c.header.end(), c.header.begin(), [](unsigned char ch) { return std::tolower(ch); });
    } else if (key == "time_of_day") {
        c.what = condition::kind::time_of_day;
        auto dash = value.find('-');
        int from = dash == std::string::npos ? -1 : minute_of(std::string_view(value).substr(0, dash));
        int to = dash == std::string::npos ? -1 : minute_of(std::string_view(value).substr(dash + 1));
        if (from < 0 || to < 0 || from == to)
            r.fail(n["value"], path + ".value", "must be a UTC range HH:MM-HH:MM, e.g. 22:00-06:00");
        c.from_minute = from;
        c.to_minute = to;
    } else {
        r.fail(n["key"], path + ".key",
               "unknown condition key '" + key + "' (known: model, model_prefix, has_tools, input_tokens_gt, header, time_of_day)");
    }
    c.value = value;
    return c;
}

content_condition parse_content(reader const& r, YAML::Node const& n, std::string const& path, pool_config const& pool) {
    r.check_keys(n, path, {"type", "value", "target"});
    content_condition c;
    if (!n["type"] || !n["value"]) r.fail(n, path, "needs 'type' (prompt_contains, prompt_not_contains, prompt_regex) and 'value'");
    auto type = r.str(n["type"], path + ".type");
    c.value = r.str(n["value"], path + ".value");
    c.target = target_index(r, n["target"], path + ".target", pool);
    if (type == "prompt_contains") c.what = content_condition::kind::prompt_contains;
    else if (type == "prompt_not_contains") c.what = content_condition::kind::prompt_not_contains;
    else if (type == "prompt_regex") {
        c.what = content_condition::kind::prompt_regex;
        RE2::Options opts;
        opts.set_log_errors(false);
        opts.set_max_mem(8 << 20);
        auto re = std::make_shared<RE2>(c.value, opts);
        if (!re->ok()) r.fail(n["value"], path + ".value", "not a valid RE2 regular expression: " + re->error());
        c.regex = std::move(re);
    } else {
        r.fail(n["type"], path + ".type", "unknown type '" + type + "' (known: prompt_contains, prompt_not_contains, prompt_regex)");
    }
    if (c.value.empty()) r.fail(n["value"], path + ".value", "must not be empty");
    return c;
}

pool_config parse_pool(reader const& r, YAML::Node const& n, std::string const& path, std::string name,
                       gateway_config const& cfg, bool named) {
    pool_config pool;
    pool.name = std::move(name);
    std::set<std::string> keys{"mode", "targets", "conditions", "content_conditions", "variants", "explore", "latency_window"};
    if (named) keys.insert("name");
    r.check_keys(n, path, keys);
    auto mode_text = n["mode"] ? r.str(n["mode"], path + ".mode") : std::string("fallback");
    auto m = parse_mode(mode_text);
    if (!m)
        r.fail(n["mode"], path + ".mode",
               "unknown mode '" + mode_text +
                   "' (known: single, fallback, loadbalance, conditional, least-latency, cost-optimized, content-based, ab-test)");
    pool.strategy.how = *m;
    auto ts = n["targets"];
    if (!ts || !ts.IsSequence() || ts.size() == 0) r.fail(ts ? ts : n, path + ".targets", "needs at least one target");
    std::size_t i = 0;
    for (auto const& t : ts) {
        pool.targets.push_back(parse_target(r, t, path + ".targets[" + std::to_string(i) + "]", cfg, named));
        pool.strategy.weights.push_back(pool.targets.back().weight);
        ++i;
    }
    if (pool.strategy.how == mode::single && pool.targets.size() > 1)
        r.fail(ts, path + ".targets", "mode single uses exactly one target; list fallbacks under mode fallback");
    for (std::size_t a = 0; a < pool.targets.size(); ++a)
        for (std::size_t b = a + 1; b < pool.targets.size(); ++b)
            if (pool.targets[a].provider == pool.targets[b].provider && pool.targets[a].model == pool.targets[b].model)
                r.fail(ts, path + ".targets[" + std::to_string(b) + "]",
                       "the same provider and model as targets[" + std::to_string(a) + "]");
    if (pool.strategy.how == mode::loadbalance) {
        std::uint64_t sum = 0;
        for (auto w : pool.strategy.weights) sum += w;
        if (sum == 0) r.fail(ts, path + ".targets", "the targets' weights sum to 0: at least one needs a weight above 0");
    }
    auto seq = [&](char const* key) {
        auto s = n[key];
        if (s && !s.IsSequence()) r.fail(s, path + "." + key, "must be a list");
        return s;
    };
    if (auto cs = seq("conditions")) {
        i = 0;
        for (auto const& c : cs) pool.strategy.conditions.push_back(parse_condition(r, c, path + ".conditions[" + std::to_string(i++) + "]", pool));
    }
    if (auto cs = seq("content_conditions")) {
        i = 0;
        for (auto const& c : cs)
            pool.strategy.content_conditions.push_back(parse_content(r, c, path + ".content_conditions[" + std::to_string(i++) + "]", pool));
    }
    if (auto vs = seq("variants")) {
        i = 0;
        for (auto const& v : vs) {
            auto vp = path + ".variants[" + std::to_string(i++) + "]";
            r.check_keys(v, vp, {"label", "target", "weight"});
            variant var;
            if (!v["label"]) r.fail(v, vp, "'label' is required");
            var.label = r.str(v["label"], vp + ".label");
            if (!valid_name(var.label)) r.fail(v["label"], vp + ".label", "must match [a-z0-9_-]{1,64}");
            var.target = target_index(r, v["target"], vp + ".target", pool);
            if (auto w = v["weight"]) var.weight = unsigned(r.integer(w, vp + ".weight", 0, 1'000'000));
            pool.strategy.variants.push_back(std::move(var));
        }
    }
    if (auto x = n["explore"]) pool.strategy.explore = r.number(x, path + ".explore", 0, 0.5);
    if (auto x = n["latency_window"]) pool.strategy.latency_window = r.duration(x, path + ".latency_window");
    auto need = [&](bool ok, char const* what) {
        if (!ok) r.fail(n, path, std::string("mode ") + std::string(to_string(pool.strategy.how)) + " needs " + what);
    };
    if (pool.strategy.how == mode::conditional) need(!pool.strategy.conditions.empty(), "'conditions'");
    if (pool.strategy.how == mode::content_based) need(!pool.strategy.content_conditions.empty(), "'content_conditions'");
    if (pool.strategy.how == mode::ab_test) {
        need(!pool.strategy.variants.empty(), "'variants'");
        unsigned sum = 0;
        for (auto const& v : pool.strategy.variants) sum += v.weight;
        need(sum > 0, "variants whose weights sum to more than 0");
    }
    return pool;
}

}  // namespace

routing_config parse_routing(reader const& r, YAML::Node const& root, gateway_config const& cfg) {
    routing_config rc;
    if (auto s = root["strategy"]) rc.default_pool = parse_pool(r, s, "strategy", "default", cfg, false);
    std::set<std::string> pool_names;
    if (auto ps = root["pools"]) {
        if (!ps.IsSequence()) r.fail(ps, "pools", "must be a list");
        std::size_t i = 0;
        for (auto const& p : ps) {
            auto path = "pools[" + std::to_string(i++) + "]";
            if (!p.IsMap() || !p["name"]) r.fail(p, path, "needs a 'name'");
            auto name = r.str(p["name"], path + ".name");
            if (!valid_name(name)) r.fail(p["name"], path + ".name", "must match [a-z0-9_-]{1,64}");
            if (!pool_names.insert(name).second) r.fail(p["name"], path + ".name", "duplicate pool name '" + name + "'");
            if (find_provider(cfg, name))
                r.fail(p["name"], path + ".name", "'" + name + "' is also a provider's name; a model name would be ambiguous");
            rc.pools.push_back(parse_pool(r, p, path, name, cfg, true));
        }
    }
    if (auto as = root["aliases"]) {
        if (!as.IsMap()) r.fail(as, "aliases", "must map alias names to a pool, provider/model or model");
        for (auto const& kv : as) {
            auto alias = r.key(kv.first, "aliases");
            auto path = "aliases." + alias;
            auto to = r.str(kv.second, path);
            if (alias.empty() || to.empty()) r.fail(kv.second, path, "alias and target must not be empty");
            if (find_provider(cfg, alias))
                r.fail(kv.first, path, "alias '" + alias + "' shadows the provider of that name");
            if (pool_names.count(alias)) r.fail(kv.first, path, "alias '" + alias + "' shadows the pool of that name");
            if (auto slash = to.find('/'); slash != std::string::npos && !find_provider(cfg, to.substr(0, slash)) &&
                                           !pool_names.count(to))
                r.fail(kv.second, path, "'" + to + "' names provider '" + to.substr(0, slash) +
                                            "', which is not configured (providers: " + provider_names(cfg) + ")");
            rc.aliases.emplace(alias, to);
        }
        // Cycles: follow each alias; more steps than aliases means a loop.
        for (auto const& kv : as) {
            auto start = r.key(kv.first, "aliases");
            std::string at = start, chain = start;
            for (std::size_t steps = 0;; ++steps) {
                auto it = rc.aliases.find(at);
                if (it == rc.aliases.end()) break;
                at = it->second;
                chain += " -> " + at;
                if (steps > rc.aliases.size()) r.fail(kv.first, "aliases." + start, "alias cycle: " + chain);
            }
        }
    }
    return rc;
}

}  // namespace toolgate::gateway::routing

namespace toolgate::gateway {

routing::routing_config const& gateway_config::routing() const {
    static routing::routing_config const none;
    return routing_settings ? *routing_settings : none;
}

}  // namespace toolgate::gateway
