#pragma once
// One content policy behind one small interface. A guardrail sees the text parts of a request or
// of an answer (user, system, assistant and tool messages, MCP call arguments and results) and
// answers with a verdict: pass, redact (it has rewritten the text of some parts), or block (with
// the rule's name, never the matched text). Pure: no I/O after construction, no threads of its
// own. A built guardrail is immutable and shared by every worker thread: check() is const and
// thread-safe; what one request carries between its guardrails lives in its `scope`.
//
// The gateway adapts guardrails into turn filters (gateway/policy), picks the parts each one
// applies to, and runs them at their stage; the library knows nothing of HTTP or Asio.
#include <boost/json/object.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toolgate::guardrails {

namespace json = boost::json;

// What a text part is: the role of the message it comes from, or MCP traffic of the /mcp front.
enum class part_kind { system, user, assistant, tool, mcp_call, mcp_result };
std::string_view to_string(part_kind k);

struct text_part {
    part_kind kind = part_kind::user;
    std::size_t index = 0;  // the message's index in "messages" (an error's `param`); 0 for MCP traffic
    std::string text;       // a redacting guardrail rewrites it
};

enum class outcome { pass, redact, block };
std::string_view to_string(outcome o);

struct verdict {
    outcome what = outcome::pass;
    std::string rule;     // what decided, e.g. "aws_access_key_id", "email"; never the matched text
    std::size_t part = 0;  // block: the offending part (its position in the parts given to check)
    double score = 0;     // prompt-shield: the score that decided
    std::string detail;   // block: why, in words a client may see (never the matched text)
};

// What one request carries from one guardrail and stage to the next.
struct scope {
    // pii-redact with restore: placeholder ("<EMAIL_1>") -> the original text, in order of creation.
    std::vector<std::pair<std::string, std::string>> placeholders;
    std::map<std::string, unsigned, std::less<>> counters;  // next number per placeholder type
};

class guardrail {
public:
    virtual ~guardrail() = default;
    // The plugin's name ("secret-scan").
    virtual std::string_view name() const = 0;
    // Checks `parts` (the parts this guardrail applies to, in message order). `body` is the chat
    // request's body when there is one (before the call: max-token may change it, e.g. cap
    // max_tokens; after the call it is the request that was answered, for schema-guard's
    // response_format); null for MCP traffic.
    virtual verdict check(std::vector<text_part>& parts, json::object* body, scope& s) const = 0;
    // The longest text one of its rules can match, in bytes: a checked stream is held back by this
    // much, so that a match split across two chunks is still caught. 0: it does not check streams.
    virtual std::size_t window() const { return 0; }
    // The parts it sees when its config has no apply_to.
    virtual std::vector<part_kind> default_apply_to() const { return {part_kind::user, part_kind::tool}; }
};

// A plugin config that cannot be used: `key` names the offending key ("config.patterns[2]").
struct config_error : std::runtime_error {
    std::string key;
    config_error(std::string k, std::string const& what) : std::runtime_error(what), key(std::move(k)) {}
};

// Where a plugin's files (word lists, schemas) are found: relative paths are resolved against it.
struct build_context {
    std::string base_dir = ".";
};

// The plugin names there are (in the order of the documentation).
std::vector<std::string_view> const& known();

// Builds the guardrail named `name` from its `config` object. Throws config_error (an unknown key,
// a bad value, an unreadable file, a pattern RE2 refuses) or std::invalid_argument for an unknown
// name.
std::unique_ptr<guardrail> make(std::string_view name, json::object const& config, build_context const& ctx);

}  // namespace toolgate::guardrails
