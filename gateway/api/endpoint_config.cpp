// AI endpoints: the config section, template rendering and rule matching.
#include "gateway/api/endpoint_config.hpp"

#include <boost/json/serialize.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include "common/config_reader.hpp"
#include "common/json_util.hpp"
#include "guardrails/guardrail.hpp"
#include "guardrails/schema_guard.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

namespace {

// The names of a template's tags (what a probe render needs to reach every tag).
std::vector<std::string> template_names(std::string_view tmpl) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while ((pos = tmpl.find("{{", pos)) != std::string_view::npos) {
        auto close = tmpl.find("}}", pos + 2);
        if (close == std::string_view::npos) break;
        auto inside = tmpl.substr(pos + 2, close - pos - 2);
        inside = inside.substr(0, inside.find('|'));
        while (!inside.empty() && (inside.front() == ' ' || inside.front() == '\t')) inside.remove_prefix(1);
        while (!inside.empty() && (inside.back() == ' ' || inside.back() == '\t')) inside.remove_suffix(1);
        out.emplace_back(inside);
        pos = close + 2;
    }
    return out;
}

bool valid_slug(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
    return true;
}

// A schema written inline, or {$ref: "file:path"} (relative to the config's folder).
std::shared_ptr<guardrails::json_schema const> load_schema(reader const& r, YAML::Node const& n, std::string const& path,
                                                           std::string const& dir, json::value& doc) {
    doc = r.to_json(n, path);
    if (auto const* o = doc.if_object(); o && o->size() == 1 && o->contains("$ref")) {
        auto const& ref = o->at("$ref");
        if (dir.empty())
            r.fail(n, path + ".$ref", "a file reference works in the config file only; send the schema itself");
        if (!ref.is_string() || !ref.get_string().starts_with("file:"))
            r.fail(n, path + ".$ref", "must be \"file:PATH\" (a JSON file, relative to the config's folder)");
        std::string file(std::string_view(ref.get_string()).substr(5));
        if (!file.starts_with("/")) file = dir + "/" + file;
        std::ifstream in(file);
        if (!in) r.fail(n, path + ".$ref", "cannot read " + file);
        std::stringstream text;
        text << in.rdbuf();
        boost::system::error_code ec;
        doc = parse_bounded(text.str(), ec);
        if (ec) r.fail(n, path + ".$ref", file + " is not JSON: " + ec.message());
    }
    if (!doc.is_object()) r.fail(n, path, "must be a JSON Schema object");
    try {
        return std::make_shared<guardrails::json_schema const>(doc);
    } catch (guardrails::config_error const& e) {
        r.fail(n, path, e.what());
    }
}

std::vector<std::string> names(reader const& r, YAML::Node const& n, std::string const& path) {
    if (!n.IsSequence()) r.fail(n, path, "must be a list of names");
    std::vector<std::string> out;
    std::size_t i = 0;
    for (auto const& item : n) out.push_back(r.str(item, path + "[" + std::to_string(i++) + "]"));
    return out;
}

endpoint_rule parse_rule(reader const& r, YAML::Node const& n, std::string const& path) {
    r.check_keys(n, path, {"when", "model"});
    endpoint_rule rule;
    if (!n["model"]) r.fail(n, path + ".model", "required");
    rule.model = r.str(n["model"], path + ".model");
    auto w = n["when"];
    if (!w) r.fail(n, path + ".when", "required (input_tokens_gt, monthly_spend_pct_gt or time_of_day)");
    r.check_keys(w, path + ".when", {"input_tokens_gt", "monthly_spend_pct_gt", "time_of_day"});
    if (auto v = w["input_tokens_gt"])
        rule.input_tokens_gt = static_cast<std::int64_t>(r.integer(v, path + ".when.input_tokens_gt", 0, 100'000'000));
    if (auto v = w["monthly_spend_pct_gt"]) {
        auto j = r.to_json(v, path + ".when.monthly_spend_pct_gt");
        if (!j.is_number() || j.to_number<double>() < 0 || j.to_number<double>() > 1000)
            r.fail(v, path + ".when.monthly_spend_pct_gt", "must be a number from 0 to 1000");
        rule.monthly_spend_pct_gt = j.to_number<double>();
    }
    if (auto v = w["time_of_day"]) {
        rule.time_of_day = parse_window(r.str(v, path + ".when.time_of_day"));
        if (!rule.time_of_day) r.fail(v, path + ".when.time_of_day", "must be \"HH:MM-HH:MM\" (UTC; may pass midnight)");
    }
    if (!rule.input_tokens_gt && !rule.monthly_spend_pct_gt && !rule.time_of_day)
        r.fail(w, path + ".when", "needs a condition (input_tokens_gt, monthly_spend_pct_gt or time_of_day)");
    return rule;
}

std::shared_ptr<endpoint_config const> parse_one(reader const& r, YAML::Node const& n, std::string const& path,
                                                 std::string const& dir, policy::access_settings& access,
                                                 sessions::settings const* session_defaults,
                                                 std::vector<std::string> const& mcp_servers) {
    r.check_keys(n, path,
                 {"slug", "model", "system_prompt", "prompt_template", "input_schema", "output_schema", "stream", "sessions",
                  "mcp", "failover", "limits", "budget", "keys", "rules"});
    auto e = std::make_shared<endpoint_config>();
    if (!n["slug"]) r.fail(n, path + ".slug", "required");
    e->slug = r.str(n["slug"], path + ".slug");
    if (!valid_slug(e->slug)) r.fail(n["slug"], path + ".slug", "must be 1 to 64 of a-z, 0-9, '-' and '_'");
    e->policy.slug = e->slug;
    if (!n["model"]) r.fail(n, path + ".model", "required (a model, an alias or a pool)");
    e->model = r.str(n["model"], path + ".model");
    if (auto v = n["system_prompt"]) e->system_prompt = r.str(v, path + ".system_prompt");
    if (auto v = n["prompt_template"]) {
        e->prompt_template = r.str(v, path + ".prompt_template");
        // A template that cannot be read fails here, not on the first call: every tag is rendered
        // with a stand-in value, so a bad one anywhere in it is found.
        json::object probe;
        for (auto const& name : template_names(e->prompt_template)) probe[name] = "x";
        auto out = render_template(e->prompt_template, probe);
        if (auto* err = std::get_if<api_error>(&out); err && err->code == "invalid_template")
            r.fail(v, path + ".prompt_template", err->message);
    }
    json::value doc;
    if (auto v = n["input_schema"]) e->input_schema = load_schema(r, v, path + ".input_schema", dir, doc);
    if (auto v = n["output_schema"]) e->output_schema = load_schema(r, v, path + ".output_schema", dir, e->output_schema_doc);
    if (auto v = n["stream"]) e->stream = r.boolean(v, path + ".stream");
    if (auto s = n["sessions"]) {
        r.check_keys(s, path + ".sessions", {"enabled", "ttl", "max_messages", "max_tokens", "on_limit"});
        e->sessions = true;
        if (auto v = s["enabled"]) e->sessions = r.boolean(v, path + ".sessions.enabled");
        if (e->sessions && !session_defaults)
            r.fail(s, path + ".sessions", "needs a top-level sessions section (it says where sessions are kept)");
        if (session_defaults) e->session_limits = session_defaults->lim;
        if (auto v = s["ttl"]) e->session_limits.ttl = r.duration(v, path + ".sessions.ttl");
        if (auto v = s["max_messages"]) e->session_limits.max_messages = r.integer(v, path + ".sessions.max_messages", 1, 1'000'000);
        if (auto v = s["max_tokens"])
            e->session_limits.max_tokens = static_cast<std::int64_t>(r.integer(v, path + ".sessions.max_tokens", 1, 1'000'000'000));
        if (auto v = s["on_limit"]) {
            auto t = r.str(v, path + ".sessions.on_limit");
            if (t != "trim" && t != "reject") r.fail(v, path + ".sessions.on_limit", "must be trim or reject");
            e->session_limits.when_full = t == "reject" ? sessions::on_limit::reject : sessions::on_limit::trim;
        }
    }
    if (auto m = n["mcp"]) {
        r.check_keys(m, path + ".mcp", {"servers"});
        e->mcp_servers = m["servers"] ? names(r, m["servers"], path + ".mcp.servers") : std::vector<std::string>();
        for (auto const& s : *e->mcp_servers)
            if (std::find(mcp_servers.begin(), mcp_servers.end(), s) == mcp_servers.end())
                r.fail(m["servers"], path + ".mcp.servers", "names an MCP server that is not configured: '" + s + "'");
    }
    if (auto v = n["failover"]) e->failover = names(r, v, path + ".failover");
    if (auto v = n["keys"]) {
        e->keys = names(r, v, path + ".keys");
        for (auto const& k : e->keys) {
            bool known = false;
            for (auto const& vk : access.keys) known = known || vk.name == k;
            if (!known && !access.admin_token.empty()) continue;  // may be made through the admin API
            if (!known) r.fail(v, path + ".keys", "names a key that is not configured: '" + k + "'");
        }
    }
    if (auto l = n["limits"]) {
        auto j = r.to_json(l, path + ".limits");
        if (auto* o = j.if_object()) {
            if (auto const* cap = o->if_contains("max_tokens_per_request")) {
                if (!cap->is_null() && (!cap->is_int64() || cap->get_int64() < 1))
                    r.fail(l, path + ".limits.max_tokens_per_request", "must be a whole number >= 1, or null (no cap)");
                if (cap->is_int64()) e->policy.max_tokens_per_request = cap->get_int64();
                o->erase("max_tokens_per_request");
            }
            // null means unlimited, as in the seed's endpoints.
            for (auto it = o->begin(); it != o->end();)
                it = it->value().is_null() ? o->erase(it) : std::next(it);
        }
        if (auto err = policy::parse_limits(j, e->policy.limits, path + ".limits", true); !err.empty())
            r.fail(l, err.substr(0, err.find(':')), err.substr(err.find(':') + 2));
        if (policy::any_limit(e->policy.limits)) access.endpoint_limits = true;
    }
    if (auto b = n["budget"]) {
        if (auto err = policy::parse_budget(r.to_json(b, path + ".budget"), e->policy.budget, path + ".budget"); !err.empty())
            r.fail(b, err.substr(0, err.find(':')), err.substr(err.find(':') + 2));
        if (e->policy.budget.any()) access.endpoint_budgets = true;
    }
    if (auto rs = n["rules"]) {
        if (!rs.IsSequence()) r.fail(rs, path + ".rules", "must be a list");
        std::size_t i = 0;
        for (auto const& item : rs) e->rules.push_back(parse_rule(r, item, path + ".rules[" + std::to_string(i++) + "]"));
    }
    return e;
}

}  // namespace

endpoint_list parse_endpoints(reader const& r, YAML::Node const& n, std::string const& config_dir,
                              policy::access_settings& access, sessions::settings const* session_defaults,
                              std::vector<std::string> const& mcp_servers) {
    if (!n.IsSequence()) r.fail(n, "endpoints", "must be a list");
    endpoint_list out;
    std::set<std::string> slugs;
    std::size_t i = 0;
    for (auto const& item : n) {
        auto path = "endpoints[" + std::to_string(i++) + "]";
        auto e = parse_one(r, item, path, config_dir, access, session_defaults, mcp_servers);
        if (!slugs.insert(e->slug).second) r.fail(item["slug"], path + ".slug", "duplicate endpoint '" + e->slug + "'");
        out.push_back(std::move(e));
    }
    // A budget is durable spend: the embedded SQLite file when no state section says otherwise.
    if (access.endpoint_budgets && !access.sqlite && !access.redis && access.persist) access.sqlite = state::sqlite_options{};
    return out;
}

namespace {

// A number as YAML text that reader::to_json reads back as the same number.
std::string number_text(json::value const& v) {
    if (v.is_int64()) return std::to_string(v.get_int64());
    if (v.is_uint64()) return std::to_string(v.get_uint64());
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.get_double());
    std::string t = buf;
    if (t.find_first_of(".en") == std::string::npos) t += ".0";  // 3 -> 3.0: still a double
    else if (t.find('.') == std::string::npos && t.find('e') != std::string::npos) t.insert(t.find('e'), ".0");
    return t;
}

// JSON as the YAML tree the config parsers read; strings tagged "!" (quoted: always strings).
YAML::Node yaml_of(json::value const& v) {
    switch (v.kind()) {
        case json::kind::object: {
            YAML::Node n(YAML::NodeType::Map);
            for (auto const& kv : v.get_object()) n[std::string(kv.key())] = yaml_of(kv.value());
            return n;
        }
        case json::kind::array: {
            YAML::Node n(YAML::NodeType::Sequence);
            for (auto const& item : v.get_array()) n.push_back(yaml_of(item));
            return n;
        }
        case json::kind::string: {
            YAML::Node n(std::string(v.get_string()));
            n.SetTag("!");
            return n;
        }
        case json::kind::bool_: return YAML::Node(v.get_bool() ? "true" : "false");
        case json::kind::null: return YAML::Node(YAML::NodeType::Null);
        default: return YAML::Node(number_text(v));
    }
}

}  // namespace

std::variant<std::shared_ptr<endpoint_config const>, std::string> parse_endpoint_json(json::object const& def,
                                                                                        endpoint_context const& ctx) {
    env_lookup no_env = [](std::string const&) { return std::optional<std::string>(); };
    reader r("endpoint", no_env, false);
    // Key names are not checked against the config: keys made through the admin API count too.
    policy::access_settings access;
    access.admin_token = "(admin)";
    try {
        return parse_one(r, yaml_of(def), "endpoint", std::string(), access, ctx.session_defaults, ctx.mcp_servers);
    } catch (config_error const& e) {
        std::string what = e.what();
        if (what.starts_with("endpoint: ")) what.erase(0, 10);
        return what;
    }
}

json::object endpoint_summary(endpoint_config const& e) {
    json::object o;
    o["slug"] = e.slug;
    o["object"] = "endpoint";
    o["model"] = e.model;
    o["stream"] = e.stream;
    o["sessions"] = e.sessions;
    o["input_schema"] = e.input_schema != nullptr;
    o["output_schema"] = e.output_schema != nullptr;
    json::array fo;
    for (auto const& f : e.failover) fo.push_back(json::value(f));
    o["failover"] = std::move(fo);
    json::array keys;
    for (auto const& k : e.keys) keys.push_back(json::value(k));
    o["keys"] = std::move(keys);
    if (e.mcp_servers) {
        json::array servers;
        for (auto const& s : *e.mcp_servers) servers.push_back(json::value(s));
        o["mcp_servers"] = std::move(servers);
    }
    o["rules"] = e.rules.size();
    if (e.policy.max_tokens_per_request > 0) o["max_tokens_per_request"] = e.policy.max_tokens_per_request;
    if (e.policy.budget.monthly_usd > 0) o["monthly_usd"] = e.policy.budget.monthly_usd;
    if (e.policy.budget.daily_usd > 0) o["daily_usd"] = e.policy.budget.daily_usd;
    return o;
}

std::variant<std::string, api_error> render_template(std::string_view tmpl, json::object const& vars) {
    std::string out;
    std::size_t pos = 0;
    while (pos < tmpl.size()) {
        auto open = tmpl.find("{{", pos);
        if (open == std::string_view::npos) {
            out.append(tmpl.substr(pos));
            break;
        }
        out.append(tmpl.substr(pos, open - pos));
        auto close = tmpl.find("}}", open + 2);
        if (close == std::string_view::npos)
            return api_error(500, "server_error", "invalid_template", "the prompt template has a '{{' that is never closed");
        auto inside = tmpl.substr(open + 2, close - open - 2);
        auto trim = [](std::string_view s) {
            while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
            while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
            return s;
        };
        std::string_view name = inside, fallback;
        bool has_default = false;
        if (auto bar = inside.find('|'); bar != std::string_view::npos) {
            name = inside.substr(0, bar);
            auto filter = trim(inside.substr(bar + 1));
            if (!filter.starts_with("default:"))
                return api_error(500, "server_error", "invalid_template",
                                 "the prompt template's only filter is 'default: TEXT'");
            fallback = trim(filter.substr(8));
            if (fallback.size() >= 2 && (fallback.front() == '"' || fallback.front() == '\'') && fallback.back() == fallback.front())
                fallback = fallback.substr(1, fallback.size() - 2);
            has_default = true;
        }
        name = trim(name);
        auto const* v = vars.if_contains(name);
        if (v && !v->is_null()) {
            if (v->is_string()) out.append(v->get_string());
            else out.append(json::serialize(*v));
        } else if (has_default) {
            out.append(fallback);
        } else {
            auto err = api_error(422, "invalid_request_error", "missing_variable",
                                 "the prompt needs the variable '" + std::string(name) + "' (send it in \"variables\")");
            err.param = "variables." + std::string(name);
            return err;
        }
        pos = close + 2;
    }
    return out;
}

bool in_window(std::pair<int, int> w, int minute) {
    if (w.first == w.second) return true;
    if (w.first < w.second) return minute >= w.first && minute < w.second;
    return minute >= w.first || minute < w.second;  // past midnight
}

std::optional<std::pair<int, int>> parse_window(std::string_view text) {
    auto hhmm = [](std::string_view s) -> std::optional<int> {
        if (s.size() != 5 || s[2] != ':') return std::nullopt;
        for (std::size_t i : {0u, 1u, 3u, 4u})
            if (s[i] < '0' || s[i] > '9') return std::nullopt;
        int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
        if (h > 24 || m > 59 || (h == 24 && m != 0)) return std::nullopt;
        return h * 60 + m;
    };
    auto dash = text.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    auto a = hhmm(text.substr(0, dash)), b = hhmm(text.substr(dash + 1));
    if (!a || !b) return std::nullopt;
    return std::make_pair(*a % 1440, *b % 1440);
}

std::string const& choose_model(endpoint_config const& e, rule_facts const& f) {
    for (auto const& rule : e.rules) {
        if (rule.input_tokens_gt && !(f.input_tokens > *rule.input_tokens_gt)) continue;
        if (rule.monthly_spend_pct_gt && !(f.monthly_spend_pct >= 0 && f.monthly_spend_pct > *rule.monthly_spend_pct_gt))
            continue;
        if (rule.time_of_day && !in_window(*rule.time_of_day, f.minute_of_day)) continue;
        return rule.model;
    }
    return e.model;
}

}  // namespace toolgate::gateway
