// The one I/O class behind every native wire format (Anthropic, Gemini): it sends what the format
// encodes and hands what comes back to the format's decoders.
#include "providers/native.hpp"

#include <boost/json/serialize.hpp>

#include <cstdlib>
#include <stdexcept>

#include "common/http_client.hpp"
#include "common/sse.hpp"
#include "providers/eventstream.hpp"
#include "providers/google_auth.hpp"
#include "providers/openai.hpp"

namespace toolgate::providers {

namespace {

using clock_type = std::chrono::steady_clock;

// The request's model (empty when it has none); a plain function, not a ?: of temporaries in a
// coroutine (CONTRIBUTING.md).
std::string model_of(json::object const& body) {
    auto const* m = body.if_contains("model");
    if (m && m->is_string()) return std::string(m->get_string());
    return {};
}

// A decoded 2xx answer into a chat or embeddings outcome.
template <class Outcome>
void take(decoded d, Outcome& out) {
    out.response = std::move(d.response);
    out.tokens = d.tokens;
    out.error = std::move(d.error);
}

class native_relay final : public http::body_reader {
public:
    native_relay(stream_decoder& decoder, chat_sink& sink, wire_format::framing framing)
        : decoder_(decoder), sink_(sink), binary_(framing == wire_format::framing::eventstream) {}

    asio::awaitable<bool> on_data(std::string_view data) override {
        events_.clear();
        if (binary_ ? !read_binary(data) : !parser_.feed(data, events_)) {
            decoder_.error = api_error::upstream(502, "upstream provider sent a malformed stream");
            decoder_.error->detail = binary_ ? std::string(eventstream::to_string(binary_parser_.failure())) : "stream event too large";
            co_return false;
        }
        for (auto& ev : events_) {
            chunks_.clear();
            bool ok = decoder_.on_event(ev.type, ev.data, chunks_);
            bool more = co_await send(chunks_);
            if (!more || !ok) co_return false;
        }
        bool ok = co_await sink_.flush();
        if (!ok) stopped = true;
        co_return ok;
    }

    // Sends the decoder's final chunks once the body has ended.
    asio::awaitable<bool> finish() {
        chunks_.clear();
        bool ok = decoder_.on_end(chunks_);
        bool more = co_await send(chunks_);
        if (more) more = co_await sink_.flush();
        co_return ok && more;
    }

    bool has_partial() const { return binary_ ? binary_parser_.has_partial() : parser_.has_partial(); }

    bool sent = false;
    bool stopped = false;

private:
    // AWS event stream messages as events: the :event-type, or "exception/<type>" for an exception
    // (or an error message's :error-code).
    bool read_binary(std::string_view data) {
        messages_.clear();
        if (!binary_parser_.feed(data, messages_)) return false;
        for (auto& m : messages_) {
            sse::event ev;
            auto kind = m.header(":message-type");
            if (kind == "exception") ev.type = "exception/" + std::string(m.header(":exception-type"));
            else if (kind == "error") ev.type = "exception/" + std::string(m.header(":error-code"));
            else ev.type = std::string(m.header(":event-type"));
            ev.data = std::move(m.payload);
            events_.push_back(std::move(ev));
        }
        return true;
    }

    sse::parser parser_;
    eventstream::decoder binary_parser_;
    std::vector<eventstream::message> messages_;

    asio::awaitable<bool> send(std::vector<json::object>& chunks) {
        for (auto& c : chunks) {
            sent = true;
            if (!co_await sink_.on_chunk(c, {})) {
                stopped = true;
                co_return false;
            }
        }
        co_return true;
    }

    stream_decoder& decoder_;
    chat_sink& sink_;
    bool binary_;
    std::vector<sse::event> events_;
    std::vector<json::object> chunks_;
};

// Sets the Authorization header to `token` as a bearer token (replacing one already there).
void set_bearer(http::request& hr, std::string_view token) {
    std::string value = "Bearer " + std::string(token);
    for (auto& [k, v] : hr.headers)
        if (k == "Authorization") {
            v = std::move(value);
            return;
        }
    hr.headers.emplace_back("Authorization", std::move(value));
}

class native_provider final : public provider {
public:
    native_provider(provider_config cfg, std::unique_ptr<wire_format> wire,
                    std::shared_ptr<google_auth::token_cache> tokens = nullptr)
        : provider(std::move(cfg)), wire_(std::move(wire)), tokens_(std::move(tokens)) {
        auto ep = http::endpoint::parse(cfg_.base_url);
        if (!ep) throw std::invalid_argument("base_url '" + cfg_.base_url + "' is not an http(s) URL");
        ep_ = *ep;
        // The Host header as the client writes it (what a signature covers).
        bool v6 = ep_.host.find(':') != std::string::npos;
        host_ = v6 ? "[" + ep_.host + "]" : ep_.host;
        if (!((ep_.tls && ep_.port == "443") || (!ep_.tls && ep_.port == "80"))) host_ += ":" + ep_.port;
    }

    asio::awaitable<chat_outcome> chat(call_context& ctx, chat_request& req, chat_sink* sink) override {
        chat_outcome out;
        bool stream = req.stream && sink != nullptr;
        bool include_usage = wants_usage(req.body);
        native_request nr;
        if (auto err = wire_->encode_chat(req.body, stream, nr)) {
            out.error = std::move(err);
            co_return out;
        }
        std::string model = model_of(req.body);
        auto hr = to_http(nr, stream, ctx.request_id, ctx.credential);
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto start = clock_type::now();
        std::string token;
        if (!co_await authorize(ctx, hr, token, out.error)) co_return out;
        if (!stream) {
            auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            if (co_await refused_token(ctx, r, hr, token, out.error)) {
                if (out.error) co_return out;
                r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            }
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (!failed(r, out.error)) {
                take(wire_->decode_chat(r->body, model), out);
            }
        } else {
            auto decoder = wire_->stream(model, include_usage);
            native_relay relay(*decoder, *sink, wire_->stream_framing());
            auto r = co_await ctx.http.stream(ep_, hr, t, &ctx.cancel, relay);
            // A refused token is a 401 before any byte of the stream: nothing reached the relay.
            if (co_await refused_token(ctx, r, hr, token, out.error)) {
                if (out.error) co_return out;
                r = co_await ctx.http.stream(ep_, hr, t, &ctx.cancel, relay);
            }
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (!failed(r, out.error) && !decoder->error && !relay.stopped && !ctx.cancel.cancelled()) {
                if (relay.has_partial()) {
                    decoder->error = api_error::upstream(502, "upstream provider '" + cfg_.name + "' ended the stream mid-event");
                } else {
                    co_await relay.finish();
                }
            }
            if (!out.error && decoder->error) {
                out.error = decoder->error;
            }
            out.tokens = decoder->tokens;
            out.chunks_sent = relay.sent;
        }
        if (!ctx.cancel.cancelled())
            stats_.record(!out.error || out.error->status < 500,
                          std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start));
        co_return out;
    }

    asio::awaitable<embeddings_outcome> embeddings(call_context& ctx, json::object& body) override {
        embeddings_outcome out;
        std::vector<native_request> calls;
        if (auto err = wire_->encode_embeddings_calls(body, calls)) {
            out.error = std::move(err);
            co_return out;
        }
        std::string model = model_of(body);
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        std::vector<std::string> bodies;
        bodies.reserve(calls.size());
        // One after another: the APIs that need several calls are rate limited per request.
        for (auto& nr : calls) {
            auto hr = to_http(nr, false, ctx.request_id, ctx.credential);
            std::string token;
            if (!co_await authorize(ctx, hr, token, out.error)) co_return out;
            auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            if (co_await refused_token(ctx, r, hr, token, out.error)) {
                if (out.error) co_return out;
                r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            }
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (failed(r, out.error)) co_return out;
            bodies.push_back(std::move(r->body));
        }
        take(wire_->decode_embeddings_calls(bodies, model), out);
        auto const* f = body.if_contains("encoding_format");
        if (!out.error && f && f->is_string() && f->get_string() == "base64") wire::embeddings_to_base64(out.response);
        co_return out;
    }

    // /v1/images/generations on a native API that has image models (Gemini, Vertex); else 400.
    asio::awaitable<embeddings_outcome> json_call(call_context& ctx, std::string_view path, json::object& body) override {
        if (path != "/images/generations" || !wire_->has_images()) co_return co_await provider::json_call(ctx, path, body);
        embeddings_outcome out;
        native_request nr;
        if (auto err = wire_->encode_images(body, nr)) {
            out.error = std::move(err);
            co_return out;
        }
        std::string model = model_of(body);
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto hr = to_http(nr, false, ctx.request_id, ctx.credential);
        std::string token;
        if (!co_await authorize(ctx, hr, token, out.error)) co_return out;
        auto start = clock_type::now();
        auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
        if (co_await refused_token(ctx, r, hr, token, out.error)) {
            if (out.error) co_return out;
            r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
        }
        if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
        if (!failed(r, out.error)) take(wire_->decode_images(r->body, model), out);
        if (!ctx.cancel.cancelled())
            stats_.record(!out.error || out.error->status < 500,
                          std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start));
        co_return out;
    }

private:
    // Adds the OAuth bearer token when the provider has one (Vertex); false, with `error` set, when
    // none could be obtained.
    asio::awaitable<bool> authorize(call_context& ctx, http::request& hr, std::string& token, std::optional<failure>& error) {
        if (!tokens_) co_return true;
        auto got = co_await tokens_->get(ctx.http);
        if (auto* f = std::get_if<failure>(&got)) {
            error = std::move(*f);
            co_return false;
        }
        token = std::move(std::get<std::string>(got));
        set_bearer(hr, token);
        co_return true;
    }

    // The upstream answered 401 to a cached token (revoked, or expired early): that token is
    // dropped and a new one set on `hr`; true when the request should go again (unless `error` is
    // now set: no new token). Once per request.
    asio::awaitable<bool> refused_token(call_context& ctx, boost::system::result<http::response> const& r, http::request& hr,
                                        std::string& token, std::optional<failure>& error) {
        if (!tokens_ || !r || r->status != 401 || token.empty() || ctx.cancel.cancelled()) co_return false;
        tokens_->invalidate(token);
        token.clear();
        co_await authorize(ctx, hr, token, error);
        co_return true;
    }

    // A transport failure or a non-2xx answer, as the client's error.
    bool failed(boost::system::result<http::response> const& r, std::optional<failure>& error) const {
        if (!r) {
            error = failure(map_transport_error(cfg_.name, r.error()), r.error().message());
            return true;
        }
        if (r->status / 100 == 2) return false;
        error = failure(wire_->decode_error(r->status, r->body, r->header("retry-after")),
                        "status " + std::to_string(r->status) + ": " + r->body.substr(0, 512));
        return true;
    }

    http::request to_http(native_request& nr, bool stream, std::string_view request_id, std::string_view credential) const {
        http::request hr;
        hr.target = ep_.base_path + nr.path;
        hr.headers.reserve(4 + nr.headers.size() + cfg_.headers.size());
        bool own_types = false;  // the format names its own content type and accept (Bedrock's event stream)
        for (auto const& h : nr.headers) own_types = own_types || h.first == "content-type";
        if (!own_types) {
            hr.headers.emplace_back("Content-Type", "application/json");
            hr.headers.emplace_back("Accept", stream ? "text/event-stream" : "application/json");
        }
        for (auto& [k, v] : nr.headers) {
            // A rotated credential replaces the configured key in the format's auth header.
            if (!credential.empty() && k == wire_->auth_header()) v = std::string(credential);
            hr.headers.emplace_back(std::move(k), std::move(v));
        }
        if (!request_id.empty()) hr.headers.emplace_back("X-Request-Id", std::string(request_id));
        for (auto const& [k, v] : cfg_.headers) hr.headers.emplace_back(k, v);
        hr.body = std::move(nr.body);
        wire_->sign(host_, hr.target, hr.headers, hr.body, credential);
        return hr;
    }

    std::unique_ptr<wire_format> wire_;
    std::shared_ptr<google_auth::token_cache> tokens_;
    http::endpoint ep_;
    std::string host_;
};

// Reads a project or location id: lower-case letters, digits and hyphens.
std::string gcp_id(std::string value, std::string_view what) {
    bool ok = !value.empty() && value.size() <= 64;
    for (char c : value) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!ok) throw std::invalid_argument(std::string(what) + " '" + value + "' is not a Google Cloud id ([a-z0-9-], at most 64)");
    return value;
}

}  // namespace

namespace {

std::string env_or(char const* name, std::string fallback = {}) {
    char const* v = std::getenv(name);
    return v && *v ? std::string(v) : std::move(fallback);
}

}  // namespace

std::unique_ptr<provider> make_native_provider(provider_config cfg) {
    wire_settings s;
    s.name = cfg.name;
    s.api_key = cfg.api_key;
    s.default_max_tokens = cfg.max_tokens > 0 ? cfg.max_tokens : 4096;
    bool bedrock = cfg.type == "bedrock";
    bool vertex = cfg.type == "vertex";
    std::string project, location, credentials_file;
    for (auto const& [k, v] : cfg.options) {
        auto text = v.is_string() ? std::string(v.get_string()) : std::string();
        if (k == "api_version" && v.is_string() && cfg.type == "anthropic") s.api_version = text;
        else if (vertex && v.is_string() && k == "project_id") project = text;
        else if (vertex && v.is_string() && k == "location") location = text;
        else if (vertex && v.is_string() && k == "credentials_file") credentials_file = text;
        else if (bedrock && v.is_string() && k == "region") s.region = text;
        else if (bedrock && v.is_string() && k == "access_key_id") s.access_key_id = text;
        else if (bedrock && v.is_string() && k == "secret_access_key") s.secret_access_key = text;
        else if (bedrock && v.is_string() && k == "session_token") s.session_token = text;
        else
            throw std::invalid_argument("unknown key '" + std::string(k) + "' for provider type " + cfg.type +
                                        (cfg.type == "anthropic" ? " (known: api_version)"
                                         : bedrock ? " (known: region, access_key_id, secret_access_key, session_token)"
                                         : vertex  ? " (known: project_id, location, credentials_file)"
                                                   : ""));
    }
    if (vertex) {
        if (!cfg.api_key.empty() || !cfg.api_keys.empty())
            throw std::invalid_argument("provider type vertex signs in with a service account (credentials_file); it takes no api_key");
        if (credentials_file.empty()) credentials_file = env_or("GOOGLE_APPLICATION_CREDENTIALS");
        if (credentials_file.empty())
            throw std::invalid_argument("provider type vertex needs credentials_file (or GOOGLE_APPLICATION_CREDENTIALS): "
                                        "a service-account key file");
        auto sa = google_auth::load_service_account(credentials_file);
        if (project.empty()) project = env_or("GOOGLE_CLOUD_PROJECT", sa.project_id);
        if (project.empty())
            throw std::invalid_argument("provider type vertex needs project_id (or GOOGLE_CLOUD_PROJECT, or one in the credentials file)");
        project = gcp_id(project, "project_id");
        location = gcp_id(location.empty() ? env_or("GOOGLE_CLOUD_LOCATION", "us-central1") : location, "location");
        s.vertex_location_path = "/projects/" + project + "/locations/" + location;
        if (cfg.base_url.empty())
            cfg.base_url = location == "global" ? "https://aiplatform.googleapis.com/v1"
                                                : "https://" + location + "-aiplatform.googleapis.com/v1";
        // The token exchange gets the provider's connect timeout and at most 30 s to answer.
        http::timeouts t{cfg.connect_timeout, std::min(cfg.timeout, std::chrono::milliseconds(30'000))};
        auto tokens = std::make_shared<google_auth::token_cache>(std::move(sa), cfg.name, t);
        auto wire = make_vertex_wire(std::move(s));
        return std::make_unique<native_provider>(std::move(cfg), std::move(wire), std::move(tokens));
    }
    if (bedrock) {
        // The standard AWS variables stand in for what the config leaves out.
        if (s.region.empty()) s.region = env_or("AWS_REGION", env_or("AWS_DEFAULT_REGION"));
        if (s.access_key_id.empty() && s.secret_access_key.empty()) {
            s.access_key_id = env_or("AWS_ACCESS_KEY_ID");
            s.secret_access_key = env_or("AWS_SECRET_ACCESS_KEY");
            if (s.session_token.empty()) s.session_token = env_or("AWS_SESSION_TOKEN");
        }
        if (s.region.empty()) throw std::invalid_argument("provider type bedrock needs a region (or AWS_REGION)");
        if (s.api_key.empty() && (s.access_key_id.empty() || s.secret_access_key.empty()))
            throw std::invalid_argument("provider type bedrock needs access_key_id and secret_access_key (or "
                                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or a Bedrock API key as api_key");
        if (cfg.base_url.empty()) cfg.base_url = "https://bedrock-runtime." + s.region + ".amazonaws.com";
    }
    if (cfg.base_url.empty())
        cfg.base_url = cfg.type == "anthropic" ? "https://api.anthropic.com/v1"
                                               : "https://generativelanguage.googleapis.com/v1beta";
    auto wire = bedrock ? make_bedrock_wire(std::move(s))
                : cfg.type == "anthropic" ? make_anthropic_wire(std::move(s)) : make_google_wire(std::move(s));
    return std::make_unique<native_provider>(std::move(cfg), std::move(wire));
}

}  // namespace toolgate::providers
