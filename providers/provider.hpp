#pragma once
// The provider interface: one model turn in OpenAI's shape in, OpenAI's shape out (a whole response,
// or stream chunks handed to a sink as they arrive). Adapters translate to their native API inside.
// Provider objects are built once from config and shared by all worker threads: chat() and
// embeddings() may run concurrently on several threads and must only touch immutable state or the
// atomics in provider_stats.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/api_error.hpp"
#include "common/cancel.hpp"

namespace toolgate::http {
class client;
}

namespace toolgate::providers {

namespace asio = boost::asio;

struct usage {
    std::int64_t prompt_tokens = 0;
    std::int64_t completion_tokens = 0;
    bool present = false;

    void add(usage const& o) {
        prompt_tokens += o.prompt_tokens;
        completion_tokens += o.completion_tokens;
        present = present || o.present;
    }
};

// A token count as an upstream reported it: a number, else 0; negative counts are 0 and counts
// above 10^12 (no real turn comes near) are cut there, so that no answer can credit a budget or
// overflow a sum. Fractions are dropped.
inline constexpr std::int64_t max_token_count = 1'000'000'000'000;
std::int64_t token_count(boost::json::value const* v);

// Reads an OpenAI "usage" object; absent or malformed fields count as zero (see token_count).
usage usage_from_json(boost::json::value const* v);

// Whether a chat request asks for a usage chunk at the end of its stream
// (stream_options.include_usage: true).
bool wants_usage(boost::json::object const& body);

struct chat_request {
    boost::json::object body;  // OpenAI request; "model" already holds the upstream model name
    bool stream = false;
    // The client's bytes while `body` still says exactly the same; whoever changes `body` must
    // clear this. Lets a pass-through skip re-serialising.
    std::string raw_body;
};

struct chat_outcome {
    boost::json::object response;  // the whole response (non-streaming only)
    // The upstream's bytes while `response` is unchanged; whoever changes `response` must clear it.
    std::string raw_response;
    usage tokens;
    std::optional<failure> error;  // its detail is for the log only
    bool chunks_sent = false;  // streaming: at least one chunk reached the sink
    // For retry decisions: the upstream's HTTP status (0: no answer, e.g. a connect error, a
    // timeout, or a request refused before sending) and the wait it asked for (Retry-After,
    // retry-after-ms).
    int upstream_status = 0;
    std::optional<std::chrono::milliseconds> retry_after;
    // A raw route's answer (an upload, audio): raw_response holds its bytes, this their type.
    std::string content_type;
};

// Receives OpenAI chat.completion.chunk objects of a streamed turn, in order. A sink may hold
// chunks back until flush(): providers call flush() after each batch that arrived together, so one
// upstream read becomes one downstream write.
class chat_sink {
public:
    virtual ~chat_sink() = default;
    // `raw` is the chunk's JSON text as received when `chunk` is unchanged (empty otherwise), so a
    // pass-through needs no re-serialisation. Returns false when the receiver is gone; the
    // provider then stops reading the upstream.
    virtual asio::awaitable<bool> on_chunk(boost::json::object& chunk, std::string_view raw) = 0;
    virtual asio::awaitable<bool> flush() = 0;
    // A comment line for the client (SSE ": text"), e.g. tool progress during the agent loop; held
    // until the next flush() like chunks. Sinks that cannot carry comments drop them.
    virtual asio::awaitable<bool> on_comment(std::string_view text);
};

// Per-request services a provider may use, all bound to the calling worker thread.
struct call_context {
    http::client& http;
    cancel_token& cancel;
    std::string_view request_id;
    // The credential to use instead of the configured api_key (the router rotates api_keys).
    std::string_view credential = {};
};

// USD per million tokens.
struct model_price {
    double input = 0;      // USD per million input tokens
    double output = 0;     // USD per million output tokens
    double per_image = 0;  // USD per image made (the images routes)
};

struct provider_config {
    std::string name;
    std::string type;
    std::string base_url;
    std::string api_key;
    std::vector<std::string> api_keys;  // several credentials (the first is api_key); the router rotates them
    std::vector<std::string> models;
    std::map<std::string, std::string> headers;
    std::chrono::milliseconds timeout{300'000};
    std::chrono::milliseconds connect_timeout{10'000};
    std::int64_t max_tokens = 0;  // sent when the client names none (Anthropic requires one); 0: 4096 there
    std::string default_model;    // a request for just "<provider name>" gets this model
    boost::json::object options;  // type-specific settings (e.g. the scripted provider's rules)
    std::map<std::string, model_price, std::less<>> prices;  // by model name

    // What `tokens` of `model` cost in USD; 0 when no price is known.
    double cost(std::string_view model, usage const& tokens, std::int64_t images = 0) const;
};

// Live availability figures for /health; written by any worker thread.
struct provider_stats {
    std::atomic<std::int64_t> last_latency_us{-1};
    std::atomic<std::int64_t> last_success_unix_ms{0};
    std::atomic<std::int64_t> last_failure_unix_ms{0};
    std::atomic<std::uint64_t> consecutive_failures{0};

    void record(bool ok, std::chrono::microseconds latency);
    bool available() const { return consecutive_failures.load(std::memory_order_relaxed) < 3; }
};

class provider {
public:
    explicit provider(provider_config cfg);
    virtual ~provider() = default;
    provider(provider const&) = delete;
    provider& operator=(provider const&) = delete;

    std::string const& name() const { return cfg_.name; }
    std::string const& type() const { return cfg_.type; }
    provider_config const& config() const { return cfg_; }
    std::vector<std::string> const& models() const { return cfg_.models; }
    bool lists_model(std::string_view model) const;
    // A provider without a models list serves any model name routed to it.
    bool catch_all() const { return cfg_.models.empty(); }
    // The models /v1/models shows: the configured list, else the model catalog's for this provider.
    std::vector<std::string> const& listed_models() const { return cfg_.models.empty() ? catalog_models_ : cfg_.models; }
    bool catalog_lists(std::string_view model) const;
    // What /v1/models says the owner of this provider's models is.
    virtual std::string owned_by() const { return cfg_.name; }
    virtual std::string description() const { return {}; }

    virtual asio::awaitable<chat_outcome> chat(call_context& ctx, chat_request& req, chat_sink* sink) = 0;

    struct embeddings_outcome {
        boost::json::object response;
        usage tokens;
        std::optional<failure> error;
        int upstream_status = 0;
        std::optional<std::chrono::milliseconds> retry_after;
    };
    virtual asio::awaitable<embeddings_outcome> embeddings(call_context& ctx, boost::json::object& body) = 0;
    // Another JSON route of the OpenAI API (`path`: "/images/generations", "/completions",
    // "/moderations", "/rerank"), passed through as it is. Providers that do not serve it answer
    // 400 unsupported_for_provider (the default).
    virtual asio::awaitable<embeddings_outcome> json_call(call_context& ctx, std::string_view path,
                                                          boost::json::object& body);
    // A route whose request or answer is not JSON ("/audio/transcriptions", "/audio/translations",
    // "/audio/speech", "/images/edits", "/images/variations"): `body` goes to `path` as it is, with
    // `content_type`; the answer's bytes and type come back as they are. `model`: the upstream
    // model the body names (an Azure deployment). Default: 400 unsupported_for_provider.
    struct raw_outcome {
        std::string body;
        std::string content_type;
        std::optional<failure> error;
        int upstream_status = 0;
        std::optional<std::chrono::milliseconds> retry_after;
    };
    virtual asio::awaitable<raw_outcome> raw_call(call_context& ctx, std::string_view path, std::string_view model,
                                                  std::string_view content_type, std::string body);

    provider_stats& stats() const { return stats_; }

protected:
    provider_config cfg_;
    mutable provider_stats stats_;
    std::vector<std::string> catalog_models_;
};

// Builds a provider from config; throws std::invalid_argument naming the offending key.
std::unique_ptr<provider> make_provider(provider_config cfg);

// The provider types make_provider knows, as a list for messages ("openai, azure-openai, ...").
std::string known_provider_types();

// Services enabled by environment variables alone: the key in `key_env` (unless empty: no key),
// the base URL from `base_url_env` when set, else `base_url` (when that is empty too, the
// provider needs `base_url_env`).
struct env_provider {
    std::string_view name;
    std::string_view key_env;
    std::string_view base_url;
    std::string_view type = "openai";
    std::string_view base_url_env = {};
};
std::vector<env_provider> const& env_providers();

}  // namespace toolgate::providers
