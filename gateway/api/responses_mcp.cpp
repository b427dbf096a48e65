// The Responses ingress's MCP side (responses_wire.hpp): what an `mcp` tool of a request offers
// (allowed_tools, require_approval), how the gateway's calls show as items (mcp_list_tools,
// mcp_call, mcp_approval_request), and the names both ways. Plain functions, no I/O.
#include <boost/json/value.hpp>

#include <algorithm>
#include <optional>
#include <set>
#include <string>

#include "gateway/api/responses_items.hpp"
#include "gateway/api/responses_wire.hpp"

namespace toolgate::gateway::responses_wire {

namespace json = boost::json;

namespace {

// A list of tool names, as allowed_tools and the require_approval filters give them.
std::optional<std::set<std::string>> name_list(json::value const* v) {
    if (!v) return std::set<std::string>();
    auto const* a = v->if_array();
    if (!a) return std::nullopt;
    std::set<std::string> out;
    for (auto const& n : *a) {
        if (!n.is_string()) return std::nullopt;
        out.emplace(n.get_string());
    }
    return out;
}

bool read_only(gateway_tool const& t) {
    auto const* a = t.definition ? t.definition->if_contains("annotations") : nullptr;
    auto const* ao = a ? a->if_object() : nullptr;
    auto const* ro = ao ? ao->if_contains("readOnlyHint") : nullptr;
    return ro && ro->is_bool() && ro->get_bool();
}

}  // namespace

namespace detail {

std::string approval_id(std::string_view call_id) { return "mcpr_" + std::string(call_id); }

json::object approval_item(std::string_view call_id, mcp_tool_ref const& ref, std::string_view arguments) {
    json::object a;
    a["type"] = "mcp_approval_request";
    a["id"] = approval_id(call_id);
    a["server_label"] = ref.label;
    a["name"] = ref.name;
    a["arguments"] = arguments;
    return a;
}

// `{"type": "mcp", "server_label", "allowed_tools", "require_approval"}`: the gateway tools it offers
// (into v.mcp_tools) and the servers they come from (v.mcp_servers).
std::optional<api_error> add_mcp_tool(json::object const& to, std::string const& where, mcp_offer const& mcp,
                                      request_view& v) {
    auto label = std::string(str_of(to, "server_label"));
    bool all = label == "toolgate";
    if (!all && std::find(mcp.servers.begin(), mcp.servers.end(), label) == mcp.servers.end())
        return bad(where + ".server_label: '" + label +
                       "' is not one of the gateway's MCP servers (\"toolgate\" for all of them); toolgate does not "
                       "connect to servers named in a request",
                   "tools");
    if (std::find(v.mcp_labels.begin(), v.mcp_labels.end(), label) != v.mcp_labels.end())
        return bad(where + ".server_label: '" + label + "' is named twice", "tools");
    // allowed_tools: a list of names, or {tool_names, read_only}.
    std::optional<std::set<std::string>> allowed;
    bool only_read = false;
    if (auto const* at = to.if_contains("allowed_tools"); at && !at->is_null()) {
        if (auto const* ao = at->if_object()) {
            allowed = name_list(ao->if_contains("tool_names"));
            if (allowed && allowed->empty() && !ao->contains("tool_names")) allowed.reset();
            else if (!allowed) return bad(where + ".allowed_tools.tool_names: must be a list of names", "tools");
            if (auto const* ro = ao->if_contains("read_only"); ro && ro->is_bool()) only_read = ro->get_bool();
        } else {
            allowed = name_list(at);
            if (!allowed) return bad(where + ".allowed_tools: must be a list of names or {tool_names, read_only}", "tools");
        }
    }
    // require_approval: "never" (toolgate's default: its tools run under its own policies),
    // "always", or {never: {tool_names}, always: {tool_names}} (a tool in neither needs approval).
    enum class approval { never, always, filter } rule = approval::never;
    struct tool_filter {
        std::set<std::string> names;
        bool read_only = false;
        bool matches(std::string const& name, gateway_tool const& t) const {
            return names.count(name) > 0 || (read_only && responses_wire::read_only(t));
        }
    } never_tools, always_tools;
    if (auto const* ra = to.if_contains("require_approval"); ra && !ra->is_null()) {
        if (ra->is_string() && (ra->get_string() == "never" || ra->get_string() == "always")) {
            rule = ra->get_string() == "never" ? approval::never : approval::always;
        } else if (auto const* ro = ra->if_object()) {
            rule = approval::filter;
            for (auto const& [k, dst] : {std::pair<char const*, tool_filter*>{"never", &never_tools},
                                         std::pair<char const*, tool_filter*>{"always", &always_tools}}) {
                auto const* f = ro->if_contains(k);
                if (!f || f->is_null()) continue;
                auto const* fo = f->if_object();
                auto names = fo ? name_list(fo->if_contains("tool_names")) : std::nullopt;
                if (!names) return bad(where + ".require_approval." + k + ": must be {tool_names: [...], read_only}", "tools");
                dst->names = std::move(*names);
                if (auto const* r = fo->if_contains("read_only"); r && r->is_bool()) dst->read_only = r->get_bool();
            }
        } else {
            return bad(where + ".require_approval: must be \"never\", \"always\" or {never, always}", "tools");
        }
    }
    v.mcp_labels.push_back(label);
    if (!v.mcp_servers) v.mcp_servers.emplace();
    for (auto const& s : mcp.servers)
        if ((all || s == label) && std::find(v.mcp_servers->begin(), v.mcp_servers->end(), s) == v.mcp_servers->end())
            v.mcp_servers->push_back(s);
    for (auto const& t : mcp.tools) {
        if (!all && t.server != label) continue;
        auto name = std::string(all ? t.exposed : t.name);
        if (allowed && !allowed->count(name)) continue;
        if (only_read && !read_only(t)) continue;
        mcp_tool_ref ref;
        ref.label = label;
        ref.approval = rule == approval::always ||
                       (rule == approval::filter && (always_tools.matches(name, t) || !never_tools.matches(name, t)));
        ref.name = std::move(name);
        v.mcp_tools.emplace(std::string(t.exposed), std::move(ref));  // a tool two mcp tools name: the first wins
    }
    return std::nullopt;
}

}  // namespace detail

using namespace detail;

mcp_tool_ref tool_ref(request_view const& v, std::string_view exposed) {
    if (auto it = v.mcp_tools.find(std::string(exposed)); it != v.mcp_tools.end()) return it->second;
    mcp_tool_ref r;
    r.label = "toolgate";
    r.name = std::string(exposed);
    return r;
}

std::string exposed_name(mcp_offer const& mcp, std::string_view label, std::string_view name) {
    if (label != "toolgate")
        for (auto const& t : mcp.tools)
            if (t.server == label && t.name == name) return std::string(t.exposed);
    return std::string(name);
}

json::object list_tools_item(std::string id, std::string_view label, json::array tools) {
    json::object o;
    o["type"] = "mcp_list_tools";
    o["id"] = std::move(id);
    o["server_label"] = label;
    o["tools"] = std::move(tools);
    o["error"] = nullptr;
    return o;
}

json::object listed_tool(std::string_view name, json::object const& definition) {
    json::object t;
    t["name"] = name;
    auto const* d = definition.if_contains("description");
    t["description"] = d && d->is_string() ? *d : json::value(nullptr);
    auto const* schema = definition.if_contains("inputSchema");
    t["input_schema"] = schema && schema->is_object() ? *schema : json::value(json::object());
    auto const* a = definition.if_contains("annotations");
    t["annotations"] = a && a->is_object() ? *a : json::value(nullptr);
    return t;
}

json::object mcp_call_item(std::string_view call_id, mcp_tool_ref const& ref, std::string_view arguments,
                           std::string_view output, std::string_view error) {
    json::object c;
    c["type"] = "mcp_call";
    c["id"] = "mcp_" + std::string(call_id);
    c["server_label"] = ref.label;
    c["name"] = ref.name;
    c["arguments"] = arguments;
    c["output"] = error.empty() ? json::value(output) : json::value(nullptr);
    c["error"] = error.empty() ? json::value(nullptr) : json::value(error);
    c["status"] = error.empty() ? "completed" : "failed";
    return c;
}

void mark_approved(json::object& item, std::string_view call_id, request_view const& v) {
    if (std::find(v.approved.begin(), v.approved.end(), call_id) != v.approved.end())
        item["approval_request_id"] = approval_id(call_id);
}

}  // namespace toolgate::gateway::responses_wire
