#pragma once
// The guardrails (guardrails/) as one turn filter: the `plugins:` list of the config, each with its
// stage and the message parts it applies to, run in order on every model turn (agent-loop turns
// included, so tool results are checked before the next turn reads them) and on the answer.
//
//   before_request  the request's parts (default: user and tool messages); redact rewrites the
//                   body before it goes out; block answers 400 guardrail_violation. In an agent
//                   loop a blocked tool result is replaced by a notice the model reads instead.
//   after_request   the answer (default: the assistant's text). Non-streamed: checked whole;
//                   streamed: held back by the longest match a rule can make, scanned as it grows,
//                   released when it can no longer match; a violation ends the stream with an
//                   error event before the offending text is sent. pii-redact's `restore` puts the
//                   originals back into the answer; schema-guard's `repair` asks the model once more.
//
// Built once at start-up and shared by every worker thread; per-request state lives on the filter's
// frame. Verdicts are counted per plugin, stage and outcome for /metrics and listed in the access log.
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/pipeline.hpp"
#include "guardrails/guardrail.hpp"

namespace YAML {
class Node;
}
namespace toolgate {
class reader;
}

namespace toolgate::gateway::policy {

namespace json = boost::json;

enum class plugin_stage { before_request, after_request };

struct guardrail_plugin {
    std::string name;
    plugin_stage stage = plugin_stage::before_request;
    std::vector<guardrails::part_kind> apply_to;
    std::shared_ptr<guardrails::guardrail const> impl;
    bool restore = false;  // pii-redact: put the originals back into the answer
    bool repair = false;   // schema-guard: on_failure: repair
    bool whole = false;    // streamed answers are checked only once complete (schema-guard)
    // Verdicts by outcome (pass, redact, block); read by /metrics.
    mutable std::array<std::atomic<std::uint64_t>, 3> verdicts{};
};

struct guardrail_settings {
    std::vector<std::unique_ptr<guardrail_plugin>> plugins;  // in config order, enabled ones only
    bool empty() const { return plugins.empty(); }
};

// Parses `plugins:` (a list); `base_dir` resolves the plugins' relative file names. Errors name the
// plugin ("plugins[1] (regex-guard): config.patterns[0]: ...").
struct cache_settings;
// The `plugins:` list: the guardrails, and the response cache (`response-cache`, at most once;
// `cache` stays null without it).
std::shared_ptr<guardrail_settings const> parse_plugins(reader const& r, YAML::Node const& node, std::string const& base_dir,
                                                        std::shared_ptr<cache_settings const>& cache);

// Null when no guardrail is enabled.
std::shared_ptr<turn_filter> make_guardrail_filter(std::shared_ptr<guardrail_settings const> settings);

// The guardrails on the /mcp front (mcp::server_session_options::screen_*): the plugins whose
// apply_to has mcp_call read a tools/call's arguments, those with mcp_result its text results.
// Empty functions when no plugin reads MCP traffic.
struct mcp_screens {
    std::function<std::optional<std::string>(std::string const& tool, json::object& arguments)> arguments;
    std::function<std::optional<std::string>(std::string const& tool, json::object& result)> result;
};
mcp_screens make_mcp_screens(std::shared_ptr<guardrail_settings const> settings);

// The guardrails on the plain texts of the routes that are not chat (a legacy completion's prompt,
// an image prompt, a rerank query and its documents, text to speak, an upload's prompt; a
// completion's text and a transcript): before_request plugins that apply to `user` read a request's
// texts, after_request plugins that apply to `assistant` an answer's. A redaction is written back
// through the pointers; a block is the 400 guardrail_violation (its param `param`). Verdicts other
// than pass go to `log` ("plugin:outcome:rule"), may be null.
std::optional<api_error> screen_texts(guardrail_settings const& settings, plugin_stage stage,
                                      std::vector<std::string*> const& texts, std::string const& param,
                                      std::vector<std::string>* log);

// Prometheus text: toolgate_guardrail_verdicts_total{plugin,stage,outcome}.
std::string guardrail_metrics(guardrail_settings const& settings);

}  // namespace toolgate::gateway::policy
