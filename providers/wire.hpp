#pragma once
// Wire formats of the native provider APIs, sans-io: an OpenAI chat request becomes the provider's
// HTTP request, the provider's answer (whole, or its stream events) becomes OpenAI's response or
// chunks, and the provider's errors become OpenAI-shaped errors. No sockets here: the golden wire
// tests drive these directly, and one I/O class (native_provider) serves every format.
#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/api_error.hpp"
#include "providers/provider.hpp"

namespace toolgate::providers {

namespace json = boost::json;

struct native_request {
    std::string path;  // appended to the base URL's path; may carry a query string
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

// Turns a provider's stream events into OpenAI chat.completion.chunk objects.
class stream_decoder {
public:
    virtual ~stream_decoder() = default;
    // One SSE event (its "event:" type and data). Appends the chunks it yields; false when the event
    // is an error or malformed (then `error` is set) and the stream must stop.
    virtual bool on_event(std::string_view type, std::string_view data, std::vector<json::object>& out) = 0;
    // The stream ended (EOF): appends what is still owed (finish, usage); false if it ended early.
    virtual bool on_end(std::vector<json::object>& out) = 0;

    usage tokens;
    std::optional<failure> error;  // its detail is for the log only
};

// A decoded 2xx answer: OpenAI's chat.completion or embeddings list, or why it could not be read.
struct decoded {
    json::object response;
    usage tokens;
    std::optional<failure> error;  // its detail is for the log only
};

// Records the upstream's status and the wait it asked for on an outcome, for the router's retry
// decisions.
void note_upstream(int& status_out, std::optional<std::chrono::milliseconds>& retry_out, int status,
                   std::string_view retry_after, std::string_view retry_after_ms);
template <class Outcome>
void note_upstream(Outcome& out, int status, std::string_view retry_after, std::string_view retry_after_ms) {
    note_upstream(out.upstream_status, out.retry_after, status, retry_after, retry_after_ms);
}

class wire_format {
public:
    virtual ~wire_format() = default;
    // An OpenAI request as the provider's HTTP request; an error (400) when it cannot be expressed.
    virtual std::optional<api_error> encode_chat(json::object const& body, bool stream, native_request& out) const = 0;
    virtual decoded decode_chat(std::string_view body, std::string const& model) const = 0;
    // `include_usage`: the client asked for a usage chunk at the end of the stream.
    virtual std::unique_ptr<stream_decoder> stream(std::string const& model, bool include_usage) const = 0;
    // A non-2xx answer as the client's error.
    virtual api_error decode_error(int status, std::string_view body, std::string_view retry_after) const;
    // The request header that carries the API key (a rotated key replaces its value).
    virtual std::string_view auth_header() const = 0;
    // How a stream's events are framed: SSE, or AWS's binary event stream (Bedrock), whose events
    // reach on_event as their :event-type (an exception as "exception/<:exception-type>").
    enum class framing { sse, eventstream };
    virtual framing stream_framing() const { return framing::sse; }
    // The last step before a request goes out, with its final target and headers: request signing
    // (Bedrock's SigV4). `host` is the Host header as it will be sent; `credential` is the rotated
    // key the router chose from the provider's api_keys (empty: the configured one).
    virtual void sign(std::string_view /*host*/, std::string_view /*target*/,
                      std::vector<std::pair<std::string, std::string>>& /*headers*/, std::string_view /*body*/,
                      std::string_view /*credential*/) const {}

    virtual bool has_embeddings() const { return false; }
    virtual std::optional<api_error> encode_embeddings(json::object const& body, native_request& out) const;
    virtual decoded decode_embeddings(std::string_view body, std::string const& model) const;
    // APIs that embed one text per request (Bedrock's Titan models) make one request per input here,
    // and read the answers, in order, back as one list. By default: encode_embeddings' one request.
    virtual std::optional<api_error> encode_embeddings_calls(json::object const& body, std::vector<native_request>& out) const;
    virtual decoded decode_embeddings_calls(std::vector<std::string> const& bodies, std::string const& model) const;
    // /v1/images/generations: an OpenAI images request as the provider's request, and its answer as
    // OpenAI's {created, data: [{b64_json}]}. Providers without image models: 400 (the default).
    virtual bool has_images() const { return false; }
    virtual std::optional<api_error> encode_images(json::object const& body, native_request& out) const;
    virtual decoded decode_images(std::string_view body, std::string const& model) const;

    std::string const& provider_name() const { return name_; }

protected:
    explicit wire_format(std::string provider_name) : name_(std::move(provider_name)) {}
    std::string name_;
};

// Settings every native format reads from the provider's config.
struct wire_settings {
    std::string name;
    std::string api_key;
    std::int64_t default_max_tokens = 4096;  // Anthropic requires max_tokens
    std::string api_version;                 // Anthropic: anthropic-version header; Azure: api-version
    // Bedrock: the region and the AWS credentials it signs with (api_key, when set, is a Bedrock API
    // key sent as a bearer token instead).
    std::string region;
    std::string access_key_id;
    std::string secret_access_key;
    std::string session_token;
    // Vertex AI: "/projects/P/locations/L", the start of every publisher model's path. When set, the
    // Gemini and Anthropic formats speak Vertex's variant (no API key header: the provider sends its
    // OAuth bearer token).
    std::string vertex_location_path;
};

std::unique_ptr<wire_format> make_anthropic_wire(wire_settings s);
std::unique_ptr<wire_format> make_google_wire(wire_settings s);
// Bedrock's Converse API.
std::unique_ptr<wire_format> make_bedrock_wire(wire_settings s);
// Vertex AI: Claude models ("claude...") through Anthropic's format, every other model through
// Gemini's, both in Vertex's variant (s.vertex_location_path set).
std::unique_ptr<wire_format> make_vertex_wire(wire_settings s);

// OpenAI's error for an upstream status: 400/404/413/422 rejected, 401/403 credentials (502), 429
// rate limit (Retry-After passed on), anything else 502. `body` may carry {"error":{"message"}}.
api_error map_upstream_status(std::string const& provider_name, int status, std::string_view body,
                              std::string_view retry_after = {});

// Helpers shared by the formats.
namespace wire {

// An OpenAI chat request read once for the native formats: system text lifted out, messages with
// their tool calls parsed, tools and tool_choice. Views point into the request body.
struct tool_call_view {
    std::string id;
    std::string name;
    json::object arguments;  // {} when absent or not an object
};
struct message_view {
    enum class role { user, assistant, tool };
    role who = role::user;
    json::value const* content = nullptr;  // as sent (user parts)
    std::string text;                      // the content as text (assistant, tool)
    std::vector<tool_call_view> calls;     // assistant
    std::string tool_call_id;              // tool
    std::string tool_name;                 // tool: the function of the call it answers ("" if none)
};
struct tool_view {
    std::string_view name;
    std::string_view description;
    json::value const* parameters = nullptr;
};
struct chat_view {
    enum class choice { unset, automatic, required, none, named };
    std::string system;
    std::vector<message_view> messages;  // never empty on success
    std::vector<tool_view> tools;
    choice tool_choice = choice::unset;
    std::string_view choice_name;  // named
    bool parallel_tool_calls = true;
};
// Fills `out`; returns what cannot be expressed natively (n > 1, unknown roles, ...) as an error text.
std::optional<std::string> read_chat(json::object const& body, chat_view& out);

std::string text_of(json::value const* content);  // a message's content as text (string or text parts)
std::int64_t now_seconds();
json::object chunk(std::string const& id, json::value const& created, std::string const& model, json::object delta,
                   json::value finish_reason);
json::object usage_chunk(std::string const& id, json::value const& created, std::string const& model, usage const& u);
json::object usage_json(usage const& u);
std::string_view str(json::object const& o, std::string_view key);  // "" unless a string
std::int64_t num(json::object const& o, std::string_view key);       // 0 unless a number an int64 holds
// "data:image/png;base64,AAAA" -> (media type, data)
std::optional<std::pair<std::string, std::string>> data_url(std::string_view url);
// A tool call's arguments text as an object ({} when empty or not an object).
json::object arguments_object(std::string_view text);
json::array stop_sequences(json::object const& body);         // "stop" as a list
std::optional<std::int64_t> max_tokens(json::object const& body);  // max_completion_tokens, else max_tokens
// Walks a user message's content (a string, or text and image_url parts): `text` for each text,
// `image` for each image URL (it returns an error text when it cannot take that URL). Returns the
// first error: a content of another shape, an unknown part type, or what `image` said.
std::optional<std::string> user_parts(json::value const* content, std::function<void(std::string_view)> const& text,
                                      std::function<std::optional<std::string>(std::string_view url)> const& image);
// A 2xx body as a JSON object; otherwise `d.error` says it was malformed (502) and nullopt.
std::optional<json::value> answer_value(std::string_view body, std::string const& provider, decoded& d);
// A tool call in OpenAI's shape: {id, type: function, function: {name, arguments}}; the arguments
// are `input` serialized, {} without one.
json::object openai_tool_call(std::string_view id, std::string_view name, json::value const* input);
// An embeddings request's "input" as texts: a string or a non-empty array of strings (token
// arrays are refused: native APIs take text); at most `max_inputs` of them.
std::optional<api_error> embedding_inputs(json::object const& body, std::string const& provider, std::size_t max_inputs,
                                          std::vector<std::string>& out);
// An OpenAI embeddings list with its vectors as base64 of little-endian float32, as OpenAI sends them
// for encoding_format "base64" (which the official SDKs ask for by default).
void embeddings_to_base64(json::object& list);
// Appends a turn {role, <items_key>: items}, or merges the items into the last turn of that role
// (the native APIs want alternating roles).
void append_turn(json::array& turns, std::string_view role, std::string_view items_key, json::array items);

// What the native stream decoders share: their chunks carry one id, creation time and model, and a
// malformed event ends the stream with a 502 that names the provider (the event's fault goes to the
// log only).
class chat_stream : public stream_decoder {
protected:
    chat_stream(std::string provider, std::string model, bool include_usage, std::string id)
        : provider_(std::move(provider)), model_(std::move(model)), include_usage_(include_usage),
          created_(now_seconds()), id_(std::move(id)) {}

    json::object chunk(json::object delta, json::value finish = nullptr) const {
        return wire::chunk(id_, created_, model_, std::move(delta), std::move(finish));
    }
    json::object final_usage() const { return usage_chunk(id_, created_, model_, tokens); }
    bool malformed(std::string what) {
        error = api_error::upstream(502, "upstream provider '" + provider_ + "' sent a malformed stream");
        error->detail = std::move(what);
        return false;
    }

    std::string provider_;
    std::string model_;
    bool include_usage_;
    std::int64_t created_;
    std::string id_;
};
}  // namespace wire

}  // namespace toolgate::providers
