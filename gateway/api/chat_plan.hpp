#pragma once
// Whether a chat request runs the agent loop, with which MCP tools and limits: a plain function of
// the config, the request's headers and body and the current tool catalog, so
// that unit tests can call it without servers.
#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "agentloop/loop.hpp"
#include "common/api_error.hpp"
#include "gateway/api/state.hpp"
#include "gateway/config.hpp"
#include "gateway/policy/keys.hpp"
#include "gateway/server.hpp"

namespace toolgate::gateway {

struct loop_plan {
    bool run = false;
    std::vector<std::string> tools;  // the exposed names of the MCP tools offered to the model
    agentloop::limits limits;
    std::unordered_set<std::string> client_tools;
};

// Fills `plan` and adds the offered tools' definitions to body["tools"] (after the client's own);
// `body_changed` tells the caller to drop the client's raw bytes. A request may only tighten the
// configured limits (x-toolgate-max-* headers). `key`: only the MCP tools it may use, within its
// agent-loop limits. `servers`: only these MCP servers' tools (empty: none), in place of the
// x-toolgate-mcp-servers header (an AI endpoint's own list). `tools_only`: of those, only these exposed names
// (the Responses ingress's allowed_tools). Returns the 400 to answer when the request is wrong.
std::optional<api_error> plan_loop(gateway_config const& cfg, inbound_request const& req, injected_catalog const& catalog, boost::json::object& body, loop_plan& plan,
                                   bool& body_changed, policy::virtual_key const* key = nullptr,
                                   std::vector<std::string> const* servers = nullptr,
                                   std::unordered_set<std::string> const* tools_only = nullptr);

// The x-toolgate-max-* and -timeout headers applied to `l`; a 400 when one is malformed.
std::optional<api_error> apply_limit_headers(inbound_request const& req, agentloop::limits& l);

// An MCP tool as an OpenAI function entry.
boost::json::object openai_tool(mcp::tool_entry const& t);

// "a, b ,c" -> {"a","b","c"}
std::vector<std::string> split_list(std::string_view text);

}  // namespace toolgate::gateway
