#pragma once
// Server-side sessions: a conversation kept by the gateway, so that a client sends only its new
// messages. This header is the part without I/O: the settings, a session and its store row, the
// session API's JSON, the decision what a request on a session id may do, and trimming. Pure
// functions of their inputs (and a clock value); callable from any thread.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/api_error.hpp"
#include "state/session_store.hpp"

namespace toolgate::sessions {

namespace json = boost::json;

enum class on_limit { trim, reject };
std::string_view to_string(on_limit v);

// A session's limits. The gateway's (sessions: in config) are the default and the ceiling: a
// session made through the API may only tighten them.
struct limits {
    std::chrono::milliseconds ttl{std::chrono::hours(24)};  // idle time before it expires
    std::size_t max_messages = 200;                         // the stored history; 0: none
    std::int64_t max_tokens = 0;                            // estimated tokens of the history; 0: none
    on_limit when_full = on_limit::trim;
};

struct settings {
    std::string store;  // "sqlite", "redis", "memory" (config.cpp fills it in when absent)
    limits lim;
    std::chrono::milliseconds tombstone{std::chrono::hours(1)};  // 410 this long after the end, then 404
    bool create_on_use = true;  // an unknown x-session-id starts a session under that id
    std::size_t max_history_bytes = 4 << 20;  // the history's JSON; beyond it, as over a limit
    std::chrono::milliseconds lease{std::chrono::minutes(6)};  // one request's hold on a session
};

struct session {
    std::string id;
    std::string owner;  // the key's id that made it ("anonymous" without keys)
    std::int64_t created_ms = 0;
    std::int64_t updated_ms = 0;
    std::int64_t expires_ms = 0;
    std::int64_t version = 0;
    json::object metadata;  // string values
    std::string system;     // the system prompt it was made with (also messages[0])
    limits lim;
    json::array messages;
    std::size_t message_count = 0;  // from the row's meta when its messages were not read (list pages)
};

// 1 to 128 of [A-Za-z0-9._:-].
bool valid_id(std::string_view id);
// "sess_" and 24 random hex digits.
std::string new_id();

state::session_row to_row(session const& s);
// nullopt when the row's JSON is not a session's (a damaged row: treated as missing by callers).
std::optional<session> from_row(state::session_row const& row);

// The session API's object: id, object "session", created_at/updated_at/expires_at (Unix
// seconds), metadata, system, limits, message_count, and the messages when asked.
json::object to_json(session const& s, bool with_messages);

// POST /v1/sessions: the body's fields checked against the gateway's settings.
struct create_request {
    std::string id;  // empty: a new one
    json::object metadata;
    std::string system;
    limits lim;
};
std::variant<create_request, api_error> parse_create(json::object const& body, settings const& s);

// What a request naming a session id may do, from the store's answer.
enum class verdict { use, create, not_found, gone };
verdict decide(state::session_state found, std::string_view owner, std::string_view caller, bool create_on_use);

// The errors the session API and the chat route answer with.
api_error invalid_id_error();
api_error not_found_error(std::string_view id);
api_error gone_error(std::string_view id);
api_error busy_error(std::string_view id);
api_error limit_error(std::string_view why);
api_error store_error();

// Tokens of a text (the gateway passes its estimator).
using token_counter = std::function<std::size_t(std::string_view text)>;
std::int64_t message_tokens(json::object const& message, token_counter const& count);

// Fitting a history into its limits. The messages from `keep_from` on are the current request's
// and are never dropped; leading system messages are never dropped; what goes are whole turns from
// the oldest (a turn starts at a user message, so an assistant tool call is never parted from its
// results, and the kept history still begins with a user message). With on_limit reject nothing is
// dropped. `fits` says whether the result is within every limit.
struct fit_result {
    bool fits = true;
    std::size_t dropped = 0;
    std::string over;  // the first limit exceeded, when not fits
};
fit_result fit_history(json::array& messages, std::size_t keep_from, limits const& lim, std::size_t max_bytes,
                       token_counter const& count);

}  // namespace toolgate::sessions
