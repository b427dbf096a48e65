#pragma once
// AI endpoints (`endpoints:` in config): one route per product feature, POST /v1/endpoints/{slug},
// with the model, the prompts and the schemas pinned, limits and a budget of its own. This header
// is the definition, its config parser, and the decisions without I/O (template rendering, rule
// matching), which the unit tests call directly. Immutable after start-up; shared by all workers.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/api_error.hpp"
#include "gateway/policy/access.hpp"
#include "sessions/session.hpp"

namespace YAML {
class Node;
}
namespace toolgate {
class reader;
}
namespace toolgate::guardrails {
class json_schema;
}

namespace toolgate::gateway {

struct endpoint_rule {
    std::optional<std::int64_t> input_tokens_gt;
    std::optional<double> monthly_spend_pct_gt;
    std::optional<std::pair<int, int>> time_of_day;  // minutes after midnight UTC: [from, to), may wrap
    std::string model;
};

struct endpoint_config {
    std::string slug;
    std::string model;
    std::string system_prompt;
    std::string prompt_template;  // empty: the input itself is the user message
    std::shared_ptr<guardrails::json_schema const> input_schema;
    std::shared_ptr<guardrails::json_schema const> output_schema;
    boost::json::value output_schema_doc;  // sent to the model as response_format
    bool stream = true;                    // clients may ask for a stream
    bool sessions = false;
    sessions::limits session_limits;
    std::optional<std::vector<std::string>> mcp_servers;  // the tools it may use; absent: none
    std::vector<std::string> failover;                   // models tried in order when the model fails
    std::vector<std::string> keys;                       // key names that may call it; empty: all
    std::vector<endpoint_rule> rules;
    policy::endpoint_policy policy;  // limits, budget, max_tokens_per_request
};

using endpoint_list = std::vector<std::shared_ptr<endpoint_config const>>;

// Parses `endpoints` (a list); `config_dir` resolves `$ref: "file:..."` schemas. Marks `access`
// when an endpoint has limits or a budget; `session_defaults` (null: no sessions section) are the
// base of an endpoint's sessions. Errors name the key and line.
// `mcp_servers`: the configured MCP servers' names (an endpoint may only name those).
endpoint_list parse_endpoints(reader const& r, YAML::Node const& n, std::string const& config_dir,
                              policy::access_settings& access, sessions::settings const* session_defaults,
                              std::vector<std::string> const& mcp_servers = {});

// An endpoint made through the admin API: the fields of one `endpoints` entry, as JSON. Schemas
// are written inline (a file reference is for the config file only), and text is taken as written
// (no ${ENV}). Returns the endpoint, or what is wrong ("endpoint.model: required ...").
struct endpoint_context {
    sessions::settings const* session_defaults = nullptr;  // null: the gateway keeps no sessions
    std::vector<std::string> mcp_servers;                  // the MCP servers an endpoint may name
};
std::variant<std::shared_ptr<endpoint_config const>, std::string> parse_endpoint_json(boost::json::object const& def,
                                                                                        endpoint_context const& ctx);

// What GET /admin/endpoints shows of an endpoint.
boost::json::object endpoint_summary(endpoint_config const& e);

// "{{name}}" and "{{ name | default: text }}" replaced from `vars` (strings as they are, other
// values as JSON); a value is never read as a template again. The error names a variable that is
// missing without a default, or a tag that is not closed.
std::variant<std::string, api_error> render_template(std::string_view tmpl, boost::json::object const& vars);

struct rule_facts {
    std::int64_t input_tokens = 0;
    double monthly_spend_pct = -1;  // < 0: unknown (no monthly budget)
    int minute_of_day = 0;          // UTC
};
// The first rule that matches picks the model; none: the endpoint's model.
std::string const& choose_model(endpoint_config const& e, rule_facts const& f);
bool in_window(std::pair<int, int> window, int minute);
// "22:00-06:00" -> {1320, 360}; nullopt when malformed.
std::optional<std::pair<int, int>> parse_window(std::string_view text);

}  // namespace toolgate::gateway
