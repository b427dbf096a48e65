#pragma once
// What the guardrails' turn filter, its streamed-answer sink and the /mcp screens share: the text
// parts of a request and of an answer (where each lives in the JSON, so a redaction is written
// back), placeholder restore and re-redaction, and the verdict bookkeeping (counters, the access
// log, the 400). Internal to gateway/policy.
#include <boost/json/object.hpp>

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/api_error.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/guardrails.hpp"
#include "guardrails/guardrail.hpp"

namespace toolgate::gateway::policy::detail {

namespace gr = toolgate::guardrails;

// Where a part's text lives in the body: messages[message].content, or its element `element` when
// the content is an array of parts.
struct part_ref {
    std::size_t message = 0;
    std::size_t element = std::numeric_limits<std::size_t>::max();  // max: the content is a string
};

// The text parts of a chat request's messages (user, system, assistant, tool), in order.
void request_parts(json::object const& body, std::vector<gr::text_part>& parts, std::vector<part_ref>& refs);
void write_part(json::object& body, part_ref const& ref, std::string const& text);

// The answer's texts: choices[i].message.content (strings), and where choice i's content is.
void answer_parts(json::object const& response, std::vector<gr::text_part>& parts);
json::value* answer_content(json::object& response, std::size_t choice);

// The same placeholders with JSON-escaped originals, for restoring inside JSON text.
gr::scope escaped_scope(gr::scope const& sc);
// pii-redact's placeholders back into the answer: contents and tool-call arguments.
void restore_answer(json::object& response, gr::scope const& sc);
// Originals restored into earlier answers go out as placeholders again. True when the body changed.
bool reredact_assistant(json::object& body, gr::scope const& sc);

bool applies(guardrail_plugin const& p, gr::part_kind k);
void count(guardrail_plugin const& p, gr::outcome o);
void note(turn_context& ctx, guardrail_plugin const& p, gr::verdict const& v);
api_error violation(guardrail_plugin const& p, gr::verdict const& v, std::string param);
std::string withheld_notice(guardrail_plugin const& p, gr::verdict const& v);

}  // namespace toolgate::gateway::policy::detail
