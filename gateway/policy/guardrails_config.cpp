// The `plugins:` section of the config: each guardrail built from its `config`, with its stage and
// the parts it applies to; errors name the plugin and the key.
#include "gateway/policy/guardrails.hpp"

#include <yaml-cpp/yaml.h>

#include "common/config_reader.hpp"
#include "gateway/policy/cache.hpp"
#include "gateway/policy/guardrail_parts.hpp"
#include "guardrails/schema_guard.hpp"

namespace toolgate::gateway::policy {

using namespace detail;

namespace {

std::optional<gr::part_kind> part_kind_of(std::string_view s) {
    for (auto k : {gr::part_kind::system, gr::part_kind::user, gr::part_kind::assistant, gr::part_kind::tool,
                   gr::part_kind::mcp_call, gr::part_kind::mcp_result})
        if (gr::to_string(k) == s) return k;
    return std::nullopt;
}

bool json_flag(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_bool() && v->get_bool();
}

// ---- the parts of a request and of an answer ----

std::vector<gr::part_kind> parse_apply_to(reader const& r, YAML::Node const& n, std::string const& path) {
    std::vector<gr::part_kind> out;
    if (!n.IsSequence()) r.fail(n, path, "must be a list of user, system, assistant, tool, mcp_call, mcp_result");
    std::size_t i = 0;
    for (auto const& item : n) {
        auto s = r.str(item, path + "[" + std::to_string(i) + "]");
        auto k = part_kind_of(s);
        if (!k) r.fail(item, path + "[" + std::to_string(i) + "]", "must be one of user, system, assistant, tool, mcp_call, mcp_result");
        out.push_back(*k);
        ++i;
    }
    return out;
}

}  // namespace

std::shared_ptr<guardrail_settings const> parse_plugins(reader const& r, YAML::Node const& node, std::string const& base_dir,
                                                        std::shared_ptr<cache_settings const>& cache) {
    auto out = std::make_shared<guardrail_settings>();
    if (!node.IsSequence()) r.fail(node, "plugins", "must be a list of {name, stage, enabled, apply_to, config}");
    std::size_t i = 0;
    for (auto const& item : node) {
        std::string path = "plugins[" + std::to_string(i++) + "]";
        r.check_keys(item, path, {"name", "stage", "enabled", "apply_to", "config"});
        if (!item["name"]) r.fail(item, path, "'name' is required");
        auto name = r.str(item["name"], path + ".name");
        path += " (" + name + ")";
        if (name == "response-cache") {
            if (cache) r.fail(item["name"], path + ".name", "the response cache is configured once");
            if (item["stage"] || item["apply_to"])
                r.fail(item, path, "the response cache wraps every model turn: it takes no stage or apply_to");
            bool on = item["enabled"] ? r.boolean(item["enabled"], path + ".enabled") : true;
            auto settings = parse_cache_plugin(r, item["config"], path + ".config");
            if (on) cache = std::make_shared<cache_settings const>(std::move(settings));
            continue;
        }
        bool known = false;
        for (auto k : gr::known()) known = known || k == name;
        if (!known) {
            std::string list;
            for (auto k : gr::known()) list += std::string(k) + ", ";
            list += "response-cache";
            r.fail(item["name"], path + ".name", "unknown plugin (known: " + list + ")");
        }
        bool enabled = item["enabled"] ? r.boolean(item["enabled"], path + ".enabled") : true;
        json::object config;
        if (auto c = item["config"]) {
            if (!c.IsMap() && !c.IsNull()) r.fail(c, path + ".config", "must be a mapping");
            if (c.IsMap()) config = r.to_json(c, path + ".config").as_object();
        }
        auto p = std::make_unique<guardrail_plugin>();
        p->name = name;
        gr::build_context bc;
        bc.base_dir = base_dir;
        try {
            p->impl = gr::make(name, config, bc);
        } catch (gr::config_error const& e) {
            r.fail(item["config"] ? item["config"] : item, path + "." + e.key, e.what());
        } catch (std::exception const& e) {
            r.fail(item, path, e.what());
        }
        p->restore = name == "pii-redact" && json_flag(config, "restore");
        p->repair = gr::wants_repair(*p->impl);
        p->whole = name == "schema-guard";
        std::string stage = name == "schema-guard" ? "after_request" : "before_request";
        if (auto st = item["stage"]) stage = r.str(st, path + ".stage");
        if (stage == "before_request") p->stage = plugin_stage::before_request;
        else if (stage == "after_request") p->stage = plugin_stage::after_request;
        else if (stage == "on_error")
            r.fail(item["stage"], path + ".stage",
                   "guardrails run before_request or after_request (on_error is for plugins that handle errors)");
        else r.fail(item["stage"], path + ".stage", "must be before_request or after_request");
        if (name == "schema-guard" && p->stage != plugin_stage::after_request)
            r.fail(item["stage"], path + ".stage", "schema-guard checks answers: its stage is after_request");
        if (auto a = item["apply_to"]) p->apply_to = parse_apply_to(r, a, path + ".apply_to");
        else if (p->stage == plugin_stage::after_request) p->apply_to = {gr::part_kind::assistant};
        else {
            // Input guardrails read the /mcp front's traffic too: tools/call arguments and results.
            p->apply_to = p->impl->default_apply_to();
            if (applies(*p, gr::part_kind::tool)) {
                p->apply_to.push_back(gr::part_kind::mcp_call);
                p->apply_to.push_back(gr::part_kind::mcp_result);
            }
        }
        if (enabled) out->plugins.push_back(std::move(p));
    }
    return out;
}

}  // namespace toolgate::gateway::policy
