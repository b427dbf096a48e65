#include "gateway/api/chat_plan.hpp"

#include <boost/json/value.hpp>

#include <algorithm>
#include <array>

#include "common/duration.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

json::object openai_tool(mcp::tool_entry const& t) {
    json::object fn;
    fn["name"] = t.exposed;
    if (auto const* d = t.definition.if_contains("description"); d && d->is_string()) fn["description"] = *d;
    else if (auto const* ti = t.definition.if_contains("title"); ti && ti->is_string()) fn["description"] = *ti;
    auto const* schema = t.definition.if_contains("inputSchema");
    if (schema && schema->is_object()) fn["parameters"] = *schema;
    else fn["parameters"] = json::object{{"type", "object"}, {"properties", json::object()}};
    return json::object{{"type", "function"}, {"function", std::move(fn)}};
}

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return out;
}

namespace {

api_error bad_header(std::string_view header, std::string_view what) {
    return api_error::bad_request("header " + std::string(header) + " must be " + std::string(what), "invalid_limit_header");
}

std::optional<double> whole_number(std::string_view v) {
    if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
    return double(std::stoull(std::string(v)));
}

std::optional<double> positive_number(std::string_view v) {
    std::string s(v);
    char* end = nullptr;
    double x = s.empty() ? 0 : std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(x > 0 && x < 1e6)) return std::nullopt;
    return x;
}

}  // namespace

std::optional<api_error> apply_limit_headers(inbound_request const& req, agentloop::limits& l) {
    using unit = agentloop::limit_descriptor::unit;
    for (auto const& d : agentloop::limit_descriptors()) {
        if (d.header.empty()) continue;
        auto text = req.header(d.header);
        if (text.empty()) continue;
        std::optional<double> v;
        if (d.kind == unit::duration) {
            auto dur = parse_duration(text);
            if (!dur || dur->count() <= 0) return bad_header(d.header, "a duration such as 30s or 1500ms");
            v = double(dur->count());
        } else if (d.kind == unit::usd) {
            v = positive_number(text);
            if (!v) return bad_header(d.header, "a positive number of USD");
        } else {
            v = whole_number(text);
            if (!v || *v == 0) return bad_header(d.header, "a whole number of at least 1");
        }
        double value = std::clamp(*v, d.min, d.max);
        double current = d.get(l);
        // A request may tighten a limit, never loosen it (0 is "no limit" for tokens and cost).
        if (current == 0 || value < current) d.set(l, value);
    }
    return std::nullopt;
}

std::optional<api_error> plan_loop(gateway_config const& cfg, inbound_request const& req, injected_catalog const& catalog, json::object& body, loop_plan& plan,
                                   bool& body_changed, policy::virtual_key const* key,
                                   std::vector<std::string> const* servers_only,
                                   std::unordered_set<std::string> const* tools_only) {
    // Without MCP tools there is no loop (and nothing remembered from one): a plain pass-through.
    if (cfg.mcp_servers.empty() || !cfg.agent_loop.inject_tools) return std::nullopt;
    if (servers_only && servers_only->empty()) return std::nullopt;
    auto server_filter = servers_only ? *servers_only : split_list(req.header("x-toolgate-mcp-servers"));
    auto tool_filter = split_list(req.header("x-toolgate-mcp-tools"));
    for (auto const* f : {&server_filter, &tool_filter})
        if (f->size() == 1 && (*f)[0] == "none") return std::nullopt;
    for (auto const& s : server_filter) {
        bool known = false;
        for (auto const& sc : cfg.mcp_servers) known = known || sc.name == s;
        if (!known)
            return api_error::bad_request("x-toolgate-mcp-servers names an MCP server that is not configured: '" + s + "'",
                                          "unknown_mcp_server");
    }
    if (auto const* tc = body.if_contains("tool_choice"); tc && tc->is_string() && tc->get_string() == "none")
        return std::nullopt;  // the client wants no tool calls at all
    json::array* client_tools = nullptr;
    if (auto* t = body.if_contains("tools"); t && !t->is_null()) {
        if (!t->is_array()) return api_error::bad_request("'tools' must be an array", "invalid_tools");
        client_tools = &t->get_array();
        for (auto const& entry : *client_tools) {
            auto const* fn = entry.is_object() ? entry.get_object().if_contains("function") : nullptr;
            auto const* name = fn && fn->is_object() ? fn->get_object().if_contains("name") : nullptr;
            if (name && name->is_string()) plan.client_tools.emplace(name->get_string());
        }
    }
    std::unordered_set<std::string_view> servers(server_filter.begin(), server_filter.end());
    std::unordered_set<std::string_view> tools(tool_filter.begin(), tool_filter.end());
    std::vector<std::size_t> offered;
    for (std::size_t i = 0; i < catalog.source->tools.size(); ++i) {
        auto const& t = catalog.source->tools[i];
        if (!servers.empty() && !servers.count(t.server)) continue;
        if (!tools.empty() && !tools.count(t.exposed)) continue;
        if (tools_only && !tools_only->count(t.exposed)) continue;
        if (plan.client_tools.count(t.exposed)) continue;  // the client's own tool of that name wins
        if (key && !key->allows_tool(t.exposed)) continue;
        offered.push_back(i);
    }
    if (offered.empty()) return std::nullopt;
    plan.limits = cfg.agent_loop.limits;
    if (key && key->max_iterations) plan.limits.max_iterations = std::min(plan.limits.max_iterations, key->max_iterations);
    if (key && key->max_tool_calls)
        plan.limits.max_tool_calls_per_turn = std::min(plan.limits.max_tool_calls_per_turn, key->max_tool_calls);
    if (auto err = apply_limit_headers(req, plan.limits)) return err;
    if (auto const* n = body.if_contains("n"); n && n->is_number() && n->to_number<double>() > 1)
        return api_error::bad_request("'n' greater than 1 cannot be combined with the gateway's MCP tools; send n: 1, "
                                      "or switch the tools off with the header x-toolgate-mcp-servers: none",
                                      "unsupported_n");
    // The gateway's tools go after the client's own, in the request itself.
    if (!client_tools) client_tools = &body.insert_or_assign("tools", json::array()).first->value().get_array();
    client_tools->reserve(client_tools->size() + offered.size());
    plan.tools.reserve(offered.size());
    for (auto i : offered) {
        client_tools->push_back(catalog.definitions[i]);
        plan.tools.push_back(catalog.source->tools[i].exposed);
    }
    body_changed = true;
    plan.run = true;
    return std::nullopt;
}

}  // namespace toolgate::gateway
