#pragma once
// The response cache without I/O (internal to gateway/policy and its tests): the canonical form of
// a request, the store key, a cached answer's encoding, and its replay as a stream or as one
// object. Plain functions of their inputs.
#include <boost/json/object.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/provider.hpp"

namespace toolgate::gateway::policy::cache_detail {

namespace json = boost::json;

// JSON text with object keys sorted (by bytes), no whitespace, and one form per number: a double
// that holds a whole number below 2^53 is written as that integer (1, 1.0 and 1e0 are one key),
// other doubles in their shortest round-trip form.
void canonical_json(json::value const& v, std::string& out);

// Everything in a chat request that decides the answer, canonical: the body without the fields
// that do not (model, which the route replaces; stream, stream_options, user, metadata, store),
// and tool-call ids replaced by their order of appearance (they only pair a call with its result,
// and a replayed answer gets fresh ones). `without_last_user`: the last message's content left
// out (semantic mode compares it apart).
std::string request_fingerprint(json::object const& body, bool without_last_user);

// The store key: "<scope part>:<model part>:<sha256 of scope, route and fingerprint>", the first
// two parts being short hashes so that a scope's or a model's entries can be erased by prefix.
std::string short_hash(std::string_view text);
std::string entry_key(std::string_view scope_label, std::string_view requested_model, std::string_view route,
                      std::string_view fingerprint);

struct cached_answer {
    std::string provider;  // who answered when it was recorded
    std::string model;     // the upstream model
    providers::usage tokens;
    std::string response;             // a JSON turn's whole answer (its text), or empty
    std::vector<std::string> chunks;  // a streamed turn's chunks (usage-only chunks left out)
};
std::string encode(cached_answer const& a);
std::optional<cached_answer> decode(std::string_view text);

// The answer as stream chunks (JSON texts), ending with a usage chunk when `include_usage`.
std::vector<std::string> replay_chunks(cached_answer const& a, bool include_usage);
// The answer as one chat.completion object (a stream's chunks assembled).
json::object replay_response(cached_answer const& a);

// Whether an answer may be cached: `expected_choices` choices (the request's n, 1 by default),
// every one finished with stop or tool_calls (not length, content_filter or nothing), all alike.
bool storable(json::object const& response, std::size_t expected_choices = 1);
// The request's n (1 when absent or not a small positive number).
std::size_t choices_asked(json::object const& body);

// A replayed chunk's or answer's tool-call ids replaced by fresh ones, the same old id always by
// the same new one within one replay (`renamed` keeps the pairs). True when something changed.
bool refresh_call_ids(json::object& chunk_or_response, std::vector<std::pair<std::string, std::string>>& renamed);

// A stream chunk that carries only usage (no choices).
bool usage_only(json::object const& chunk);

// Semantic mode: the last message's text when it is a user message of plain text and the
// conversation (system and developer messages aside) has at most `max_messages`; else nullopt.
std::optional<std::string> semantic_text(json::object const& body, std::size_t max_messages);

struct cache_directives {
    bool no_store = false;  // neither looked up nor stored
    bool no_cache = false;  // not looked up, stored
};
cache_directives parse_cache_control(std::string_view header);

}  // namespace toolgate::gateway::policy::cache_detail
