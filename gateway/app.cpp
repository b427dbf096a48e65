#include "gateway/app.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <deque>
#include <future>
#include <random>
#include <thread>

#include "gateway/metrics.hpp"
#include "gateway/pipeline.hpp"
#include "common/sse.hpp"

namespace toolgate::gateway {

namespace json = boost::json;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr int status_client_closed = 499;  // nginx's convention, for logs and metrics only

std::string make_request_id() {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char hex[] = "0123456789abcdef";
    std::string id = "req_";
    auto a = rng(), b = rng();
    for (int i = 0; i < 16; ++i) id += hex[(a >> (i * 4)) & 15];
    for (int i = 0; i < 8; ++i) id += hex[(b >> (i * 4)) & 15];
    return id;
}

// A client-supplied id is echoed only if it is short and harmless in logs and headers.
bool acceptable_request_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ':')) return false;
    return true;
}

std::string iso_now() {
    auto now = std::chrono::system_clock::now();
    auto t = std::chrono::system_clock::to_time_t(now);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

// JSON string escaping for the hand-formatted access log line.
std::string json_escape(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (unsigned char c : in) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

// Per-request facts gathered for the access log line and the metrics.
struct request_record {
    std::string request_id;
    std::string route;
    std::string method;
    std::string model;
    std::string provider;
    int status = 0;
    bool stream = false;
    providers::usage tokens;
    std::string error_code;
    std::string error_detail;
    clock_type::time_point start = clock_type::now();
};

class sse_sink final : public providers::chat_sink {
public:
    sse_sink(response_channel& ch, header_list const& headers, cancel_token& cancel)
        : ch_(ch), headers_(headers), cancel_(cancel) {}

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        pending_.append("data: ");
        if (raw.empty()) pending_.append(json::serialize(chunk));
        else pending_.append(raw);
        pending_.append("\n\n");
        co_return !failed_;
    }

    asio::awaitable<bool> flush() override {
        if (failed_) co_return false;
        if (pending_.empty()) co_return true;
        // (GCC 12 miscompiles co_await inside && conditions: keep each await a statement.)
        if (!ch_.started()) {
            bool ok = co_await ch_.begin_stream(200, "text/event-stream", headers_);
            if (!ok) co_return fail();
        }
        bool ok = co_await ch_.write(pending_);
        pending_.clear();
        if (!ok) co_return fail();
        co_return true;
    }

    // Ends the stream: what is still held, then `last`, in one write.
    asio::awaitable<void> finish(std::string_view last) {
        if (failed_) co_return;
        if (!ch_.started()) {
            bool ok = co_await ch_.begin_stream(200, "text/event-stream", headers_);
            if (!ok) co_return;
        }
        pending_.append(last);
        co_await ch_.end_stream(pending_);
        pending_.clear();
    }

private:
    bool fail() {
        failed_ = true;
        cancel_.cancel();  // the client is gone: stop everything done on its behalf
        return false;
    }
    response_channel& ch_;
    header_list const& headers_;
    cancel_token& cancel_;
    std::string pending_;
    bool failed_ = false;
};

// The MCP side of the gateway: its own io_context thread (MCP traffic is light next to chat
// traffic) running the aggregator. Destroying it stops every MCP server, bounded in time.
class mcp_runtime {
public:
    explicit mcp_runtime(gateway_config const& cfg) : guard_(ioc_.get_executor()) {
        mcp::aggregator_options opts;
        opts.names = cfg.tool_prefix_mode;
        opts.session.client_version = TOOLGATE_VERSION;
        auto base = spdlog::default_logger();
        aggregator_ = std::make_unique<mcp::aggregator>(
            ioc_.get_executor(), cfg.mcp_servers, opts, [base](std::string const& server) -> mcp::log_sink {
                return [base, server](mcp::log_level lvl, std::string const& text) {
                    auto level = lvl == mcp::log_level::error  ? spdlog::level::err
                                 : lvl == mcp::log_level::warn ? spdlog::level::warn
                                 : lvl == mcp::log_level::info ? spdlog::level::info
                                                                : spdlog::level::debug;
                    base->log(level, "[mcp:{}] {}", server, text);
                };
            });
        thread_ = std::thread([this] { ioc_.run(); });
        aggregator_->start();
    }

    ~mcp_runtime() {
        auto done = std::make_shared<std::promise<void>>();
        auto fut = done->get_future();
        asio::co_spawn(ioc_, aggregator_->stop(), [done](std::exception_ptr) { done->set_value(); });
        fut.wait_for(std::chrono::seconds(10));
        guard_.reset();
        ioc_.stop();
        thread_.join();
    }

    mcp::aggregator& aggregator() { return *aggregator_; }

private:
    asio::io_context ioc_{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::unique_ptr<mcp::aggregator> aggregator_;
    std::thread thread_;
};

class app final : public request_handler {
public:
    explicit app(gateway_config const& cfg) : cfg_(cfg), mcp_(std::make_unique<mcp_runtime>(cfg)) {
        for (auto const& pc : cfg_.providers) providers_.push_back(providers::make_provider(pc));
        std::vector<providers::provider*> raw;
        for (auto& p : providers_) raw.push_back(p.get());
        router_ = std::make_unique<model_router>(raw);
        pipeline_ = std::make_unique<turn_pipeline>(std::vector<std::shared_ptr<turn_filter>>{make_routing_filter(*router_)});
        access_log_ = spdlog::get("access");
        log_ = spdlog::default_logger();
        build_models_cache();
    }

    asio::awaitable<void> handle(worker_services& services, inbound_request& req, response_channel& out,
                                 cancel_token& cancel) override {
        request_record rec;
        auto rid = req.header("x-request-id");
        rec.request_id = acceptable_request_id(rid) ? std::string(rid) : make_request_id();
        rec.method = req.method;
        std::string_view path = req.path;
        if (path.starts_with("/v1/")) path.remove_prefix(3);
        header_list headers;  // (no braced list: GCC 12 mishandles initializer_list in coroutines)
        headers.emplace_back("x-request-id", rec.request_id);
        metrics_.inflight_add(1);

        if (path == "/chat/completions") {
            rec.route = "/v1/chat/completions";
            if (req.method != "POST") co_await reply_error(out, rec, headers, api_error::method_not_allowed("use POST"));
            else co_await chat(services, req, out, cancel, rec, headers);
        } else if (path == "/embeddings") {
            rec.route = "/v1/embeddings";
            if (req.method != "POST") co_await reply_error(out, rec, headers, api_error::method_not_allowed("use POST"));
            else co_await embeddings(services, req, out, cancel, rec, headers);
        } else if (path == "/models" || path.starts_with("/models/")) {
            rec.route = "/v1/models";
            if (req.method != "GET") co_await reply_error(out, rec, headers, api_error::method_not_allowed("use GET"));
            else co_await models(path, out, rec, headers);
        } else if (path == "/mcp/servers" || path == "/mcp/tools" || path == "/mcp/tools/call") {
            rec.route = "/v1" + std::string(path);
            bool post = path == "/mcp/tools/call";
            if (req.method != (post ? "POST" : "GET"))
                co_await reply_error(out, rec, headers, api_error::method_not_allowed(post ? "use POST" : "use GET"));
            else if (path == "/mcp/servers") co_await mcp_servers(out, rec, headers);
            else if (path == "/mcp/tools") co_await mcp_tools(out, rec, headers);
            else co_await mcp_call(req, out, cancel, rec, headers);
        } else if (req.path == "/health" || req.path == "/healthz") {
            rec.route = "/health";
            if (req.method != "GET") co_await reply_error(out, rec, headers, api_error::method_not_allowed("use GET"));
            else co_await health(out, rec, headers);
        } else if (req.path == "/metrics") {
            rec.route = "/metrics";
            if (req.method != "GET") co_await reply_error(out, rec, headers, api_error::method_not_allowed("use GET"));
            else {
                rec.status = 200;
                co_await out.send(200, "text/plain; version=0.0.4; charset=utf-8", metrics_.render() + mcp_metrics(),
                                  headers);
            }
        } else {
            rec.route = "unmatched";
            co_await reply_error(out, rec, headers, api_error::not_found("no route for " + req.method + " " + req.path,
                                                                         "unknown_route"));
        }
        if (cancel.cancelled() && rec.status == 0)
            rec.status = cancel.reason() == cancel_reason::timeout ? 504 : status_client_closed;
        metrics_.inflight_add(-1);
        finish(rec);
    }

private:
    asio::awaitable<void> reply_error(response_channel& out, request_record& rec, header_list const& headers,
                                      api_error const& err) {
        rec.status = err.status;
        rec.error_code = err.code;
        co_await out.send(err.status, "application/json", err.to_json(), headers);
    }

    // Parses the JSON object body of a POST; answers 400 itself and returns nullopt when it is not one.
    asio::awaitable<std::optional<json::object>> parse_body(inbound_request const& req, response_channel& out,
                                                            request_record& rec, header_list const& headers) {
        if (req.body.empty()) {
            co_await reply_error(out, rec, headers, api_error::bad_request("request body is empty; send a JSON object", "invalid_json"));
            co_return std::nullopt;
        }
        boost::system::error_code ec;
        json::parse_options po;
        po.max_depth = 64;
        auto v = json::parse(req.body, ec, {}, po);
        if (ec) {
            co_await reply_error(out, rec, headers,
                                 api_error::bad_request("request body is not valid JSON: " + ec.message(), "invalid_json"));
            co_return std::nullopt;
        }
        if (!v.is_object()) {
            co_await reply_error(out, rec, headers, api_error::bad_request("request body must be a JSON object", "invalid_json"));
            co_return std::nullopt;
        }
        co_return std::move(v.get_object());
    }

    // A JSON body with a non-empty string "model" (recorded in rec); answers 400 itself otherwise.
    asio::awaitable<std::optional<json::object>> parse_model_body(inbound_request const& req, response_channel& out,
                                                                  request_record& rec, header_list const& headers) {
        auto body = co_await parse_body(req, out, rec, headers);
        if (!body) co_return std::nullopt;
        auto* model = body->if_contains("model");
        if (model == nullptr || !model->is_string() || model->get_string().empty()) {
            auto err = api_error::bad_request("'model' is required and must be a non-empty string", "missing_model");
            co_await reply_error(out, rec, headers, err);
            co_return std::nullopt;
        }
        rec.model = std::string(model->get_string());
        co_return body;
    }

    asio::awaitable<void> chat(worker_services& services, inbound_request& req, response_channel& out,
                               cancel_token& cancel, request_record& rec, header_list const& headers) {
        auto body = co_await parse_model_body(req, out, rec, headers);
        if (!body) co_return;
        auto* messages = body->if_contains("messages");
        if (messages == nullptr || !messages->is_array() || messages->get_array().empty()) {
            co_await reply_error(out, rec, headers, api_error::bad_request("'messages' is required and must be a non-empty array", "invalid_messages"));
            co_return;
        }
        for (auto const& m : messages->get_array()) {
            auto const* mo = m.if_object();
            auto const* role = mo ? mo->if_contains("role") : nullptr;
            if (!role || !role->is_string()) {
                co_await reply_error(out, rec, headers, api_error::bad_request("every message needs a string 'role'", "invalid_messages"));
                co_return;
            }
        }
        bool stream = false;
        if (auto* s = body->if_contains("stream"); s && !s->is_null()) {
            if (!s->is_bool()) {
                co_await reply_error(out, rec, headers, api_error::bad_request("'stream' must be a boolean", "invalid_stream"));
                co_return;
            }
            stream = s->get_bool();
        }
        rec.stream = stream;

        turn_context ctx;
        ctx.request_id = rec.request_id;
        ctx.requested_model = rec.model;
        ctx.request.body = std::move(*body);
        ctx.request.stream = stream;
        ctx.request.raw_body = std::move(req.body);
        providers::call_context call{services.http, cancel, rec.request_id};
        ctx.call = &call;
        std::optional<sse_sink> sink;
        if (stream) {
            sink.emplace(out, headers, cancel);
            ctx.sink = &*sink;
        }
        auto result = co_await pipeline_->run(ctx);
        if (ctx.provider) rec.provider = ctx.provider->name();
        rec.tokens = result.tokens;
        if (cancel.cancelled()) {
            if (cancel.reason() != cancel_reason::timeout) {
                rec.status = status_client_closed;
                co_return;
            }
            result.error = request_timed_out();
        }
        if (result.error) {
            rec.error_detail = result.error_detail;
            if (!out.started()) {  // nothing sent yet (chunks held back are dropped): a plain error
                co_await reply_error(out, rec, headers, *result.error);
                co_return;
            }
            // Mid-stream failure: the status line is gone already; tell the client in the stream.
            rec.status = result.error->status;
            rec.error_code = result.error->code;
            co_await sink->finish(sse::format_data(result.error->to_json()));
            co_return;
        }
        rec.status = 200;
        if (stream) {
            co_await sink->finish("data: [DONE]\n\n");
        } else {
            if (result.raw_response.empty()) result.raw_response = json::serialize(result.response);
            co_await out.send(200, "application/json", result.raw_response, headers);
        }
    }

    asio::awaitable<void> embeddings(worker_services& services, inbound_request& req, response_channel& out,
                                     cancel_token& cancel, request_record& rec, header_list const& headers) {
        auto body = co_await parse_model_body(req, out, rec, headers);
        if (!body) co_return;
        if (!body->contains("input")) {
            co_await reply_error(out, rec, headers, api_error::bad_request("'input' is required", "invalid_input"));
            co_return;
        }
        auto route = router_->resolve(rec.model);
        if (!route) {
            co_await reply_error(out, rec, headers, api_error::model_not_found(rec.model));
            co_return;
        }
        rec.provider = route->provider->name();
        (*body)["model"] = route->upstream_model;
        providers::call_context call{services.http, cancel, rec.request_id};
        auto result = co_await route->provider->embeddings(call, *body);
        rec.tokens = result.tokens;
        if (cancel.cancelled()) {
            if (cancel.reason() != cancel_reason::timeout) {
                rec.status = status_client_closed;
                co_return;
            }
            result.error = request_timed_out();
        }
        if (result.error) {
            rec.error_detail = result.error_detail;
            co_await reply_error(out, rec, headers, *result.error);
            co_return;
        }
        rec.status = 200;
        co_await out.send(200, "application/json", json::serialize(result.response), headers);
    }

    asio::awaitable<void> mcp_servers(response_channel& out, request_record& rec, header_list const& headers) {
        auto body = mcp_servers_json();
        rec.status = 200;
        co_await out.send(200, "application/json", body, headers);
    }

    asio::awaitable<void> mcp_tools(response_channel& out, request_record& rec, header_list const& headers) {
        auto body = mcp_tools_json();
        rec.status = 200;
        co_await out.send(200, "application/json", body, headers);
    }

    // JSON is built in plain functions, not in coroutines: GCC 12 mishandles braced initializer
    // lists inside coroutine frames.
    std::string mcp_servers_json() const {
        json::object o;
        o["object"] = "list";
        o["data"] = mcp_->aggregator().servers_status();
        return json::serialize(o);
    }

    std::string mcp_tools_json() const {
        auto cat = mcp_->aggregator().snapshot();
        json::array tools;
        for (auto const& t : cat->tools) {
            json::object o{{"name", t.exposed}, {"server", t.server}, {"original_name", t.name}};
            for (char const* k : {"title", "description", "inputSchema", "outputSchema", "annotations"})
                if (auto const* v = t.definition.if_contains(k)) o[k] = *v;
            tools.push_back(std::move(o));
        }
        json::array problems;
        for (auto const& p : cat->problems) problems.push_back(json::string(p));
        json::object o{{"object", "list"}, {"data", std::move(tools)}, {"problems", std::move(problems)},
                       {"resources", cat->resources.size()}, {"resource_templates", cat->resource_templates.size()},
                       {"prompts", cat->prompts.size()}};
        return json::serialize(o);
    }

    static std::string tool_result_json(mcp::tool_outcome& r, bool with_status) {
        json::object o;
        if (with_status) o["ok"] = r.ok;
        if (r.ok) {
            o["result"] = std::move(r.result);
            o["truncated"] = r.truncated;
        } else {
            json::object e;
            e["code"] = r.error_code;
            e["message"] = r.error;
            o["error"] = std::move(e);
        }
        o["duration_ms"] = double(r.duration.count()) / 1000.0;
        return json::serialize(o);
    }

    // Admin/debug: call one aggregated tool directly, as the agent loop will.
    asio::awaitable<void> mcp_call(inbound_request& req, response_channel& out, cancel_token& cancel,
                                   request_record& rec, header_list const& headers) {
        auto body = co_await parse_body(req, out, rec, headers);
        if (!body) co_return;
        auto* name = body->if_contains("name");
        if (!name || !name->is_string()) {
            co_await reply_error(out, rec, headers, api_error::bad_request("'name' (the tool's exposed name) is required", "missing_name"));
            co_return;
        }
        json::object args;
        if (auto* a = body->if_contains("arguments"); a && !a->is_null()) {
            if (!a->is_object()) {
                co_await reply_error(out, rec, headers, api_error::bad_request("'arguments' must be an object", "invalid_arguments"));
                co_return;
            }
            args = a->get_object();
        }
        rec.model = std::string(name->get_string());
        if (auto* st = body->if_contains("stream"); st && st->is_bool() && st->get_bool()) {
            co_await mcp_call_streamed(std::move(args), out, cancel, rec, headers);
            co_return;
        }
        auto r = co_await mcp_->aggregator().call_tool(rec.model, std::move(args), &cancel);
        if (cancel.cancelled()) {
            rec.status = status_client_closed;
            co_return;
        }
        if (!r.ok) {
            int status = r.error_code == "unknown_tool"        ? 404
                         : r.error_code == "invalid_arguments" ? 400
                         : r.error_code == "timeout"           ? 504
                         : r.error_code == "server_error"      ? 502
                                                               : 503;
            // A named local: GCC 12 mishandles braced temporaries inside co_await expressions.
            api_error err{status, "tool_error", r.error_code, r.error};
            co_await reply_error(out, rec, headers, err);
            co_return;
        }
        auto text = tool_result_json(r, false);
        rec.status = 200;
        co_await out.send(200, "application/json", text, headers);
    }

    // The streamed form of the admin call: progress notifications as SSE events while the tool
    // runs, then the result; a client that leaves cancels the call upstream.
    struct streamed_call {
        std::deque<json::value> progress;
        asio::steady_timer signal;
        bool done = false;
        mcp::tool_outcome result;
        explicit streamed_call(asio::any_io_executor ex) : signal(ex, asio::steady_timer::time_point::max()) {}
    };

    asio::awaitable<void> run_streamed_call(std::shared_ptr<streamed_call> st, std::string name, json::object args,
                                            cancel_token* cancel) {
        std::function<void(json::value const&)> on_progress = [st](json::value const& v) {
            st->progress.push_back(v);
            st->signal.cancel();
        };
        st->result = co_await mcp_->aggregator().call_tool(std::move(name), std::move(args), cancel, std::move(on_progress));
        st->done = true;
        st->signal.cancel();
    }

    asio::awaitable<void> mcp_call_streamed(json::object args, response_channel& out, cancel_token& cancel,
                                            request_record& rec, header_list const& headers) {
        auto ex = co_await asio::this_coro::executor;
        auto st = std::make_shared<streamed_call>(ex);
        asio::co_spawn(ex, run_streamed_call(st, rec.model, std::move(args), &cancel), asio::detached);
        bool ok = co_await out.begin_stream(200, "text/event-stream", headers);
        for (;;) {
            while (!st->progress.empty()) {
                std::string ev = "event: progress\ndata: " + json::serialize(st->progress.front()) + "\n\n";
                st->progress.pop_front();
                if (ok) ok = co_await out.write(ev);
                if (!ok) cancel.cancel();  // the client left: the tool call is cancelled upstream
            }
            if (st->done) break;
            st->signal.expires_at(asio::steady_timer::time_point::max());
            co_await st->signal.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        rec.status = cancel.cancelled() ? status_client_closed : 200;
        std::string last = "event: result\ndata: " + tool_result_json(st->result, true) + "\n\n";
        if (ok) co_await out.end_stream(last);
    }

    std::string mcp_metrics() const {
        auto& agg = mcp_->aggregator();
        std::string out;
        out += "# HELP toolgate_mcp_server_up Whether the MCP server is connected (1) or not (0).\n";
        out += "# TYPE toolgate_mcp_server_up gauge\n";
        for (auto const& s : agg.servers_status())
            out += fmt::format("toolgate_mcp_server_up{{server=\"{}\"}} {}\n", std::string(s.at("name").get_string()),
                               s.at("status") == "up" ? 1 : 0);
        auto stats = agg.stats();
        out += "# HELP toolgate_mcp_tool_calls_total Tool calls, by MCP server and tool.\n";
        out += "# TYPE toolgate_mcp_tool_calls_total counter\n";
        for (auto const& [server, tool, st] : stats)
            out += fmt::format("toolgate_mcp_tool_calls_total{{server=\"{}\",tool=\"{}\"}} {}\n", server,
                               json_escape(tool), st.calls);
        out += "# HELP toolgate_mcp_tool_errors_total Tool calls that failed or returned isError.\n";
        out += "# TYPE toolgate_mcp_tool_errors_total counter\n";
        for (auto const& [server, tool, st] : stats)
            out += fmt::format("toolgate_mcp_tool_errors_total{{server=\"{}\",tool=\"{}\"}} {}\n", server,
                               json_escape(tool), st.errors);
        out += "# HELP toolgate_mcp_tool_call_duration_seconds Tool call latency.\n";
        out += "# TYPE toolgate_mcp_tool_call_duration_seconds histogram\n";
        for (auto const& [server, tool, st] : stats) {
            auto labels = fmt::format("server=\"{}\",tool=\"{}\"", server, json_escape(tool));
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < mcp::aggregator::latency_buckets.size(); ++i) {
                cumulative = st.buckets[i];
                out += fmt::format("toolgate_mcp_tool_call_duration_seconds_bucket{{{},le=\"{}\"}} {}\n", labels,
                                   mcp::aggregator::latency_buckets[i], cumulative);
            }
            out += fmt::format("toolgate_mcp_tool_call_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", labels, st.calls);
            out += fmt::format("toolgate_mcp_tool_call_duration_seconds_sum{{{}}} {}\n", labels, st.seconds_sum);
            out += fmt::format("toolgate_mcp_tool_call_duration_seconds_count{{{}}} {}\n", labels, st.calls);
        }
        return out;
    }

    api_error request_timed_out() const {
        return {504, "timeout_error", "request_timeout",
                "the request took longer than the gateway's request_timeout of " +
                    std::to_string(cfg_.server.request_timeout.count()) + " ms"};
    }

    void build_models_cache() {
        json::array data;
        for (auto const& p : providers_) {
            for (auto const& m : p->models()) {
                json::object o{{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", p->owned_by()}};
                if (auto d = p->description(); !d.empty()) o["description"] = d;
                o["provider"] = p->name();
                models_by_id_.emplace(m, json::serialize(o));
                models_by_id_.emplace(p->name() + "/" + m, json::serialize(o));
                data.push_back(std::move(o));
            }
        }
        models_json_ = json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
    }

    asio::awaitable<void> models(std::string_view path, response_channel& out, request_record& rec,
                                 header_list const& headers) {
        if (path == "/models") {
            rec.status = 200;
            co_await out.send(200, "application/json", models_json_, headers);
            co_return;
        }
        std::string id(path.substr(std::string_view("/models/").size()));
        if (auto it = models_by_id_.find(id); it != models_by_id_.end()) {
            rec.status = 200;
            co_await out.send(200, "application/json", it->second, headers);
            co_return;
        }
        co_await reply_error(out, rec, headers, api_error::model_not_found(id));
    }

    asio::awaitable<void> health(response_channel& out, request_record& rec, header_list const& headers) {
        int status = 200;
        auto body = health_json(status);
        rec.status = status;
        co_await out.send(status, "application/json", body, headers);
    }

    std::string health_json(int& status) const {
        json::array ps;
        bool all_ok = true;
        for (auto const& p : providers_) {
            auto& s = p->stats();
            auto lat = s.last_latency_us.load(std::memory_order_relaxed);
            bool ok = s.available();
            all_ok = all_ok && ok;
            json::object o;
            o["name"] = p->name();
            o["type"] = p->type();
            o["available"] = ok;
            o["last_latency_ms"] = lat < 0 ? json::value(nullptr) : json::value(double(lat) / 1000.0);
            o["consecutive_failures"] = s.consecutive_failures.load(std::memory_order_relaxed);
            o["last_success_unix_ms"] = s.last_success_unix_ms.load(std::memory_order_relaxed);
            o["last_failure_unix_ms"] = s.last_failure_unix_ms.load(std::memory_order_relaxed);
            ps.push_back(std::move(o));
        }
        auto uptime = std::chrono::duration_cast<std::chrono::seconds>(clock_type::now() - started_).count();
        auto servers = mcp_->aggregator().servers_status();
        for (auto const& s : servers)
            if (s.at("status") != "up") all_ok = false;
        bool required_up = mcp_->aggregator().required_servers_up();
        json::object o;
        o["status"] = !required_up ? "unhealthy" : all_ok ? "ok" : "degraded";
        o["version"] = TOOLGATE_VERSION;
        o["uptime_seconds"] = uptime;
        o["providers"] = std::move(ps);
        o["mcp_servers"] = std::move(servers);
        status = required_up ? 200 : 503;
        return json::serialize(o);
    }

    void finish(request_record& rec) {
        double seconds = std::chrono::duration<double>(clock_type::now() - rec.start).count();
        if (rec.route != "/metrics" && rec.route != "/health")
            metrics_.record_request(rec.route, rec.status, rec.provider, rec.status == 200 ? rec.model : "", seconds,
                                    rec.tokens.prompt_tokens, rec.tokens.completion_tokens);
        if (rec.status >= 500 && !rec.error_detail.empty())
            log_->warn("request {} failed: {} ({})", rec.request_id, rec.error_code, rec.error_detail);
        if (!cfg_.log.requests || !access_log_) return;
        // Formatted directly: this runs for every request. Only client-chosen text (the model)
        // needs escaping; ids, routes and provider names are from a safe character set.
        fmt::memory_buffer line;
        auto out = std::back_inserter(line);
        fmt::format_to(out, R"({{"ts":"{}","level":"info","msg":"request","request_id":"{}","method":"{}","route":"{}","status":{})",
                       iso_now(), rec.request_id, json_escape(rec.method), rec.route, rec.status);
        if (!rec.model.empty()) fmt::format_to(out, R"(,"model":"{}")", json_escape(rec.model));
        if (!rec.provider.empty()) fmt::format_to(out, R"(,"provider":"{}")", rec.provider);
        if (rec.route == "/v1/chat/completions") fmt::format_to(out, R"(,"stream":{})", rec.stream);
        if (rec.tokens.present)
            fmt::format_to(out, R"(,"prompt_tokens":{},"completion_tokens":{})", rec.tokens.prompt_tokens,
                           rec.tokens.completion_tokens);
        if (!rec.error_code.empty()) fmt::format_to(out, R"(,"error":"{}")", rec.error_code);
        fmt::format_to(out, R"(,"latency_ms":{:.3f}}})", seconds * 1000.0);
        access_log_->info(std::string_view(line.data(), line.size()));
    }

    gateway_config cfg_;
    std::unique_ptr<mcp_runtime> mcp_;
    std::vector<std::unique_ptr<providers::provider>> providers_;
    std::unique_ptr<model_router> router_;
    std::unique_ptr<turn_pipeline> pipeline_;
    metrics metrics_;
    std::string models_json_;
    std::unordered_map<std::string, std::string> models_by_id_;
    std::shared_ptr<spdlog::logger> access_log_;
    std::shared_ptr<spdlog::logger> log_;
    clock_type::time_point started_ = clock_type::now();
};

}  // namespace

std::unique_ptr<request_handler> make_app(gateway_config const& cfg) { return std::make_unique<app>(cfg); }

}  // namespace toolgate::gateway
