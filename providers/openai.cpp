#include "providers/openai.hpp"

#include <boost/beast/core/error.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <stdexcept>

#include "common/http_client.hpp"
#include "common/sse.hpp"
#include "providers/wire.hpp"

namespace toolgate::providers {

namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

api_error map_transport_error(std::string const& name, boost::system::error_code const& ec) {
    if (ec == boost::beast::error::timeout) return api_error::upstream_timeout("upstream provider '" + name + "' timed out");
    if (ec == http::client_errc::response_too_large)
        return api_error::upstream(502, "upstream provider '" + name + "' sent a response that is too large");
    return api_error::upstream(502, "could not reach upstream provider '" + name + "'", "upstream_unreachable");
}

namespace {

// Braced JSON is built in plain functions like this one (CONTRIBUTING.md).
json::object include_usage_option() { return json::object{{"include_usage", true}}; }

class stream_relay final : public http::body_reader {
public:
    stream_relay(chat_sink& sink, bool forward_usage) : sink_(sink), forward_usage_(forward_usage) {}

    asio::awaitable<bool> on_data(std::string_view data) override {
        events_.clear();
        if (!parser_.feed(data, events_)) {
            fail("upstream stream event too large");
            co_return false;
        }
        for (auto& ev : events_) {
            if (done_) break;
            if (ev.data == "[DONE]") {
                done_ = true;
                break;
            }
            boost::system::error_code ec;
            auto v = json::parse(ev.data, ec);
            if (ec || !v.is_object()) {
                fail("upstream sent a malformed stream event");
                co_return false;
            }
            auto& chunk = v.get_object();
            if (auto const* err = chunk.if_contains("error"); err && !err->is_null()) {
                error_ = api_error::upstream(502, "upstream provider reported an error mid-stream");
                detail_ = json::serialize(*err);
                co_return false;
            }
            if (auto const* u = chunk.if_contains("usage"); u && u->is_object()) tokens_ = usage_from_json(u);
            std::string_view raw = ev.data;
            if (!forward_usage_ && chunk.contains("usage")) {
                auto const* choices = chunk.if_contains("choices");
                bool usage_only = choices && choices->is_array() && choices->get_array().empty();
                if (usage_only) continue;
                chunk.erase("usage");
                raw = {};
            }
            if (auto const* cs = chunk.if_contains("choices"); cs && cs->is_array())
                for (auto const& c : cs->get_array())
                    if (auto const* co = c.if_object())
                        if (auto const* f = co->if_contains("finish_reason"); f && f->is_string()) finished_ = true;
            sent_ = true;
            bool more = co_await sink_.on_chunk(chunk, raw);
            if (!more) {
                stopped_ = true;
                co_return false;
            }
        }
        // After [DONE] keep reading to the end of the HTTP body (usually in the same packet) so the
        // connection goes back to the pool; the gateway ends the stream with what is still held.
        if (done_) co_return true;
        bool ok = co_await sink_.flush();
        if (!ok) stopped_ = true;
        co_return ok;
    }

    void fail(std::string detail) {
        error_ = api_error::upstream(502, "upstream provider sent a malformed stream");
        detail_ = std::move(detail);
    }

    bool done_ = false;
    bool stopped_ = false;
    bool sent_ = false;
    bool finished_ = false;  // a choice had its finish_reason (a stream without [DONE] may still be whole)
    usage tokens_;
    std::optional<api_error> error_;
    std::string detail_;
    sse::parser parser_;

private:
    chat_sink& sink_;
    bool forward_usage_;
    std::vector<sse::event> events_;
};

class openai_provider final : public provider {
public:
    explicit openai_provider(provider_config cfg) : provider(std::move(cfg)) {
        if (cfg_.base_url.empty()) throw std::invalid_argument("base_url is required for type " + cfg_.type);
        auto ep = http::endpoint::parse(cfg_.base_url);
        if (!ep) throw std::invalid_argument("base_url '" + cfg_.base_url + "' is not an http(s) URL");
        ep_ = *ep;
        azure_ = cfg_.type == "azure-openai";
        for (auto const& [k, v] : cfg_.options) {
            if (azure_ && k == "api_version" && v.is_string()) {
                api_version_ = std::string(v.get_string());
            } else if (azure_ && k == "deployments" && v.is_object()) {
                for (auto const& [model, dep] : v.get_object()) {
                    if (!dep.is_string() || dep.get_string().empty())
                        throw std::invalid_argument("deployments." + std::string(model) + " must be a deployment name");
                    deployments_[std::string(model)] = std::string(dep.get_string());
                }
            } else {
                throw std::invalid_argument("unknown key '" + std::string(k) + "' for provider type " + cfg_.type +
                                            (azure_ ? " (known: api_version, deployments)" : ""));
            }
        }
        if (azure_ && api_version_.empty()) api_version_ = "2024-10-21";
    }

    asio::awaitable<chat_outcome> chat(call_context& ctx, chat_request& req, chat_sink* sink) override {
        chat_outcome out;
        bool client_wants_usage = false;
        if (req.stream) {
            client_wants_usage = wants_usage(req.body);
            // Ask for usage even when the client did not, so tokens are always accounted; the
            // usage-only chunk is then kept from the client.
            if (!client_wants_usage) {
                req.body["stream_options"] = include_usage_option();
                req.raw_body.clear();
            }
        }
        auto hr = make_request("/chat/completions", req.body, req.stream, ctx.request_id, req.raw_body, ctx.credential);
        if (hr.target.empty()) {
            out.error = api_error::bad_request("model name not usable as an Azure deployment", "invalid_model");
            co_return out;
        }
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto start = clock_type::now();

        if (!req.stream || sink == nullptr) {
            auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            finish_buffered(r, out.response, out.tokens, out.error);
            if (auto const* cs = out.response.if_contains("choices"); !out.error && !(cs && cs->is_array()))
                out.error = failure(api_error::upstream(502, "upstream provider '" + cfg_.name +
                                                                 "' returned a chat answer without choices"),
                                    r->body.substr(0, 512));
            if (!out.error) out.raw_response = std::move(r->body);
        } else {
            stream_relay relay(*sink, client_wants_usage);
            auto r = co_await ctx.http.stream(ep_, hr, t, &ctx.cancel, relay);
            out.chunks_sent = relay.sent_;
            out.tokens = relay.tokens_;
            if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
            if (!r) {
                out.error = failure(map_transport_error(cfg_.name, r.error()), r.error().message());
            } else if (r->status / 100 != 2) {
                out.error = failure(map_upstream_status(cfg_.name, r->status, r->body, r->header("retry-after")),
                                    "status " + std::to_string(r->status) + ": " + r->body.substr(0, 512));
            } else if (relay.error_) {
                out.error = failure(*relay.error_, relay.detail_);
            } else if (!relay.done_ && !relay.stopped_ && relay.parser_.has_partial()) {
                out.error = api_error::upstream(502, "upstream provider '" + cfg_.name + "' ended the stream mid-event");
            } else if (!relay.done_ && !relay.stopped_ && !relay.finished_) {
                // A 200 that ended (or never began) without [DONE] or a finish_reason: cut short,
                // not an answer, however cleanly the connection closed.
                out.error = api_error::upstream(502, "upstream provider '" + cfg_.name +
                                                         "' ended the stream before the answer was complete");
            }
        }
        if (!ctx.cancel.cancelled()) stats_.record(!out.error || out.error->status < 500,
                      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start));
        co_return out;
    }

    asio::awaitable<embeddings_outcome> embeddings(call_context& ctx, json::object& body) override {
        co_return co_await json_call(ctx, "/embeddings", body);
    }

    asio::awaitable<embeddings_outcome> json_call(call_context& ctx, std::string_view path, json::object& body) override {
        embeddings_outcome out;
        auto hr = make_request(path, body, false, ctx.request_id, {}, ctx.credential);
        if (hr.target.empty()) {
            out.error = api_error::bad_request("model name not usable as an Azure deployment", "invalid_model");
            co_return out;
        }
        auto start = clock_type::now();
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
        if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
        finish_buffered(r, out.response, out.tokens, out.error);
        if (!ctx.cancel.cancelled()) stats_.record(!out.error || out.error->status < 500,
                      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start));
        co_return out;
    }

    asio::awaitable<raw_outcome> raw_call(call_context& ctx, std::string_view path, std::string_view model,
                                          std::string_view content_type, std::string body) override {
        raw_outcome out;
        json::object named;  // what make_request reads of a JSON body: the model (an Azure deployment)
        named["model"] = model;
        auto hr = make_request(path, named, false, ctx.request_id, "-", ctx.credential);
        if (hr.target.empty()) {
            out.error = api_error::bad_request("model name not usable as an Azure deployment", "invalid_model");
            co_return out;
        }
        hr.body = std::move(body);
        for (auto& [k, v] : hr.headers) {
            if (k == "Content-Type") v = std::string(content_type);
            else if (k == "Accept") v = "*/*";
        }
        auto start = clock_type::now();
        http::timeouts t{cfg_.connect_timeout, cfg_.timeout};
        auto r = co_await ctx.http.send(ep_, hr, t, &ctx.cancel);
        if (r) note_upstream(out, r->status, r->header("retry-after"), r->header("retry-after-ms"));
        if (!r) {
            out.error = failure(map_transport_error(cfg_.name, r.error()), r.error().message());
        } else if (r->status / 100 != 2) {
            out.error = failure(map_upstream_status(cfg_.name, r->status, r->body, r->header("retry-after")),
                                "status " + std::to_string(r->status) + ": " + r->body.substr(0, 512));
        } else {
            out.content_type = std::string(r->header("content-type"));
            if (out.content_type.empty()) out.content_type = "application/octet-stream";
            out.body = std::move(r->body);
        }
        if (!ctx.cancel.cancelled()) stats_.record(!out.error || out.error->status < 500,
                      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - start));
        co_return out;
    }

private:
    http::request make_request(std::string_view path, json::object const& body, bool stream,
                               std::string_view request_id, std::string_view raw_body,
                               std::string_view credential) const {
        http::request hr;
        hr.target = ep_.base_path;
        if (azure_) {
            // {endpoint}/openai/deployments/{deployment}{path}?api-version=...
            auto const* m = body.if_contains("model");
            std::string model = m && m->is_string() ? std::string(m->get_string()) : std::string();
            auto it = deployments_.find(model);
            std::string deployment = it != deployments_.end() ? it->second : model;
            if (deployment.empty() || deployment.find_first_of("/?#% \\") != std::string::npos) return {};
            if (!hr.target.empty() && hr.target.back() == '/') hr.target.pop_back();
            hr.target += "/openai/deployments/" + deployment;
            hr.target.append(path);
            hr.target += "?api-version=" + api_version_;
        } else {
            hr.target.append(path);
        }
        hr.headers.reserve(4 + cfg_.headers.size());
        hr.headers.emplace_back("Content-Type", "application/json");
        hr.headers.emplace_back("Accept", stream ? "text/event-stream" : "application/json");
        std::string_view key = credential.empty() ? std::string_view(cfg_.api_key) : credential;
        if (!key.empty()) {
            if (azure_) hr.headers.emplace_back("api-key", std::string(key));
            else hr.headers.emplace_back("Authorization", "Bearer " + std::string(key));
        }
        if (!request_id.empty()) hr.headers.emplace_back("X-Request-Id", std::string(request_id));
        for (auto const& [k, v] : cfg_.headers) hr.headers.emplace_back(k, v);
        hr.body = raw_body.empty() ? json::serialize(body) : std::string(raw_body);
        return hr;
    }

    void finish_buffered(boost::system::result<http::response> const& r, json::object& response, usage& tokens,
                         std::optional<failure>& error) const {
        if (!r) {
            error = failure(map_transport_error(cfg_.name, r.error()), r.error().message());
            return;
        }
        if (r->status / 100 != 2) {
            error = failure(map_upstream_status(cfg_.name, r->status, r->body, r->header("retry-after")),
                            "status " + std::to_string(r->status) + ": " + r->body.substr(0, 512));
            return;
        }
        boost::system::error_code ec;
        auto v = json::parse(r->body, ec);
        if (ec || !v.is_object()) {
            error = failure(api_error::upstream(502, "upstream provider '" + cfg_.name + "' returned a malformed response"),
                            "unparseable body: " + r->body.substr(0, 200));
            return;
        }
        response = std::move(v.get_object());
        tokens = usage_from_json(response.if_contains("usage"));
    }

    http::endpoint ep_;
    bool azure_ = false;
    std::string api_version_;
    std::map<std::string, std::string> deployments_;
};

}  // namespace

std::unique_ptr<provider> make_openai_provider(provider_config cfg) {
    return std::make_unique<openai_provider>(std::move(cfg));
}

}  // namespace toolgate::providers
