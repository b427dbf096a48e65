// The one I/O class behind every native wire format (Anthropic, Gemini): it sends what the format
// encodes and hands what comes back to the format's decoders.
#include "providers/native.hpp"

#include <boost/json/serialize.hpp>

#include <stdexcept>

#include "common/http_client.hpp"
#include "common/sse.hpp"
#include "providers/openai.hpp"

namespace toolgate::providers {

namespace {

using clock_type = std::chrono::steady_clock;

// A decoded 2xx answer into a chat or embeddings outcome.
template <class Outcome>
void take(decoded d, Outcome& out) {
    out.response = std::move(d.response);
    out.tokens = d.tokens;
    out.error = std::move(d.error);
}

class native_relay final : public http::body_reader {
public:
    native_relay(stream_decoder& decoder, chat_sink& sink) : decoder_(decoder), sink_(sink) {}

    asio::awaitable<bool> on_data(std::string_view data) override {
        events_.clear();
        if (!parser_.feed(data, events_)) {
            decoder_.error = api_error::upstream(502, "upstream provider sent a malformed stream");
            decoder_.error->detail = "stream event too large";
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

    bool sent = false;
    bool stopped = false;
    sse::parser parser_;

private:
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
    std::vector<sse::event> events_;
    std::vector<json::object> chunks_;
};

class native_provider final : public provider {
public:
    native_provider(provider_config cfg, std::unique_ptr<wire_format> wire) : provider(std::move(cfg)), wire_(std::move(wire)) {
        auto ep = http::endpoint::parse(cfg_.base_url);
        if (!ep) throw std::invalid_argument("base_url '" + cfg_.base_url + "' is not an http(s) URL");
        ep_ = *ep;
    }

    asio::awaitable<chat_outcome> chat(call_context& ctx, chat_request& req, chat_sink* sink) override {
        chat_outcome out;
        bool stream = req.stream && sink != nullptr;
        bool include_usage = false;
        if (auto* so = req.body.if_contains("stream_options"); so && so->is_object()) {
            auto* iu = so->get_object().if_contains("include_usage");
            include_usage = iu && iu->is_bool() && iu->get_bool();
        }
        native_request nr;
        if (auto err = wire_->encode_chat(req.body, stream, nr)) {
            out.error = std::move(err);
            co_return out;
        }
        auto const* m = req.body.if_contains("model");
        std::string model = m && m->is_string() ? std::string(m->get_string()) : std::string();
        auto hr = to_http(nr, stream, ctx.request_id, ctx.credential);
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto start = clock_type::now();
        if (!stream) {
            auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (!failed(r, out.error)) {
                take(wire_->decode_chat(r->body, model), out);
            }
        } else {
            auto decoder = wire_->stream(model, include_usage);
            native_relay relay(*decoder, *sink);
            auto r = co_await ctx.http.stream(ep_, hr, t, &ctx.cancel, relay);
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (!failed(r, out.error) && !decoder->error && !relay.stopped && !ctx.cancel.cancelled()) {
                if (relay.parser_.has_partial()) {
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
        native_request nr;
        if (auto err = wire_->encode_embeddings(body, nr)) {
            out.error = std::move(err);
            co_return out;
        }
        auto const* m = body.if_contains("model");
        std::string model = m && m->is_string() ? std::string(m->get_string()) : std::string();
        auto hr = to_http(nr, false, ctx.request_id, ctx.credential);
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
        if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
        if (!failed(r, out.error)) {
            take(wire_->decode_embeddings(r->body, model), out);
        }
        co_return out;
    }

private:
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
        hr.headers.emplace_back("Content-Type", "application/json");
        hr.headers.emplace_back("Accept", stream ? "text/event-stream" : "application/json");
        for (auto& [k, v] : nr.headers) {
            // A rotated credential replaces the configured key in the format's auth header.
            if (!credential.empty() && k == wire_->auth_header()) v = std::string(credential);
            hr.headers.emplace_back(std::move(k), std::move(v));
        }
        if (!request_id.empty()) hr.headers.emplace_back("X-Request-Id", std::string(request_id));
        for (auto const& [k, v] : cfg_.headers) hr.headers.emplace_back(k, v);
        hr.body = std::move(nr.body);
        return hr;
    }

    std::unique_ptr<wire_format> wire_;
    http::endpoint ep_;
};

}  // namespace

std::unique_ptr<provider> make_native_provider(provider_config cfg) {
    wire_settings s;
    s.name = cfg.name;
    s.api_key = cfg.api_key;
    s.default_max_tokens = cfg.max_tokens > 0 ? cfg.max_tokens : 4096;
    for (auto const& [k, v] : cfg.options) {
        if (k == "api_version" && v.is_string() && cfg.type == "anthropic") s.api_version = std::string(v.get_string());
        else
            throw std::invalid_argument("unknown key '" + std::string(k) + "' for provider type " + cfg.type +
                                        (cfg.type == "anthropic" ? " (known: api_version)" : ""));
    }
    if (cfg.base_url.empty())
        cfg.base_url = cfg.type == "anthropic" ? "https://api.anthropic.com/v1"
                                               : "https://generativelanguage.googleapis.com/v1beta";
    auto wire = cfg.type == "anthropic" ? make_anthropic_wire(std::move(s)) : make_google_wire(std::move(s));
    return std::make_unique<native_provider>(std::move(cfg), std::move(wire));
}

}  // namespace toolgate::providers
