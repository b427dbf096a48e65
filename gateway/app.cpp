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
#include <unordered_set>

#include "agentloop/loop.hpp"
#include "providers/catalog.hpp"
#include "common/duration.hpp"
#include "gateway/mcp_front.hpp"
#include "gateway/mcp_runtime.hpp"
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
    // agent loop
    bool loop = false;
    unsigned iterations = 0;
    std::size_t tool_calls = 0;
    std::size_t tool_errors = 0;
    std::string_view stopped;
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

    asio::awaitable<bool> on_comment(std::string_view text) override {
        pending_.append(": ");
        pending_.append(text);
        pending_.append("\n\n");
        co_return !failed_;
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

// The MCP tools as the model sees them (OpenAI function entries), rebuilt when the catalog changes.
struct injected_catalog {
    std::shared_ptr<mcp::catalog const> source;
    json::array definitions;  // same order as source->tools
};

json::object openai_tool(mcp::tool_entry const& t) {
    json::object fn;
    fn["name"] = t.exposed;
    if (auto const* d = t.definition.if_contains("description"); d && d->is_string()) fn["description"] = *d;
    else if (auto const* ti = t.definition.if_contains("title"); ti && ti->is_string()) fn["description"] = *ti;
    auto const* schema = t.definition.if_contains("inputSchema");
    if (schema && schema->is_object()) fn["parameters"] = *schema;
    else fn["parameters"] = json::object{{"type", "object"}, {"properties", json::object()}};
    return json::object{{"type", "function"}, {"function", std::move(fn)}};
}

// The MCP tools one request may use.
class mcp_toolbox final : public agentloop::toolbox {
public:
    explicit mcp_toolbox(mcp::aggregator& agg) : agg_(agg) {}
    void add(std::string name) { names_.insert(std::move(name)); }
    bool empty() const { return names_.empty(); }
    bool has(std::string_view name) const override { return names_.count(std::string(name)) > 0; }
    asio::awaitable<mcp::tool_outcome> call(std::string name, json::object arguments, cancel_token& cancel) override {
        co_return co_await agg_.call_tool(std::move(name), std::move(arguments), &cancel);
    }

private:
    mcp::aggregator& agg_;
    std::unordered_set<std::string> names_;
};

std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        auto comma = text.find(',');
        auto item = text.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        text.remove_prefix(comma + 1);
    }
    return out;
}

struct loop_plan {
    bool run = false;
    std::unique_ptr<mcp_toolbox> tools;
    agentloop::limits limits;
    std::unordered_set<std::string> client_tools;
};

class app final : public request_handler {
public:
    explicit app(gateway_config const& cfg) : cfg_(cfg), mcp_(std::make_unique<mcp_runtime>(cfg)) {
        if (cfg_.mcp_front.enabled) front_ = std::make_unique<mcp_front>(cfg_, mcp_->aggregator());
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
        } else if (front_ && req.path == cfg_.mcp_front.path) {
            rec.route = "/mcp";
            rec.status = co_await front_->handle(req, out, cancel);
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

    void on_shutdown() override {
        if (front_) front_->shutdown();
    }

private:
    asio::awaitable<void> reply_error(response_channel& out, request_record& rec, header_list const& headers,
                                      api_error const& err) {
        rec.status = err.status;
        rec.error_code = err.code;
        if (!err.retry_after.empty()) {
            header_list with_retry = headers;
            with_retry.emplace_back("retry-after", err.retry_after);
            co_await out.send(err.status, "application/json", err.to_json(), with_retry);
            co_return;
        }
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

        loop_plan plan;
        bool body_changed = false;
        if (auto err = plan_loop(req, *body, plan, body_changed)) {
            co_await reply_error(out, rec, headers, *err);
            co_return;
        }
        if (body_changed) req.body.clear();
        if (plan.run) {
            co_await run_loop(services, out, cancel, rec, headers, std::move(*body), plan, stream);
            co_return;
        }

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
        if (result.raw_response.empty() && !result.error && !stream) result.raw_response = json::serialize(result.response);
        co_await answer(out, cancel, rec, headers, sink ? &*sink : nullptr, result);
    }

    // The end of a chat request, plain or looped: the answer, or the error (mid-stream as an event).
    asio::awaitable<void> answer(response_channel& out, cancel_token& cancel, request_record& rec,
                                 header_list const& headers, sse_sink* sink, providers::chat_outcome& result) {
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
        if (sink) co_await sink->finish("data: [DONE]\n\n");
        else co_await out.send(200, "application/json", result.raw_response, headers);
    }

    // Decides whether this request runs the agent loop, and with which tools and limits. Plain
    // function (no coroutine): it builds JSON with braced lists.
    std::optional<api_error> plan_loop(inbound_request const& req, json::object& body, loop_plan& plan,
                                       bool& body_changed) {
        // Without MCP tools there is no loop (and nothing remembered from one): a plain pass-through.
        if (cfg_.mcp_servers.empty() || !cfg_.agent_loop.inject_tools) return std::nullopt;
        auto& messages = body.at("messages").get_array();
        // A follow-up after a hybrid turn: put back the tool turns the gateway ran on its own.
        auto const& last = messages.back().get_object();
        if (last.at("role") == "tool" && hybrid_.expand(messages) > 0) body_changed = true;

        auto server_filter = split_list(req.header("x-toolgate-mcp-servers"));
        auto tool_filter = split_list(req.header("x-toolgate-mcp-tools"));
        for (auto const* f : {&server_filter, &tool_filter})
            if (f->size() == 1 && (*f)[0] == "none") return std::nullopt;
        for (auto const& s : server_filter) {
            bool known = false;
            for (auto const& sc : cfg_.mcp_servers) known = known || sc.name == s;
            if (!known)
                return api_error::bad_request("x-toolgate-mcp-servers names an MCP server that is not configured: '" + s + "'",
                                              "unknown_mcp_server");
        }
        if (auto const* tc = body.if_contains("tool_choice"); tc && tc->is_string() && tc->get_string() == "none")
            return std::nullopt;  // the client wants no tool calls at all
        json::array* client_tools = nullptr;
        if (auto* t = body.if_contains("tools"); t && !t->is_null()) {
            if (!t->is_array()) return api_error::bad_request("'tools' must be an array", "invalid_tools");
            client_tools = &t->get_array();
            for (auto const& entry : *client_tools) {
                auto const* fn = entry.is_object() ? entry.get_object().if_contains("function") : nullptr;
                auto const* name = fn && fn->is_object() ? fn->get_object().if_contains("name") : nullptr;
                if (name && name->is_string()) plan.client_tools.emplace(name->get_string());
            }
        }
        auto cat = injected();
        auto box = std::make_unique<mcp_toolbox>(mcp_->aggregator());
        std::unordered_set<std::string_view> servers(server_filter.begin(), server_filter.end());
        std::unordered_set<std::string_view> tools(tool_filter.begin(), tool_filter.end());
        std::vector<std::size_t> offered;
        for (std::size_t i = 0; i < cat->source->tools.size(); ++i) {
            auto const& t = cat->source->tools[i];
            if (!servers.empty() && !servers.count(t.server)) continue;
            if (!tools.empty() && !tools.count(t.exposed)) continue;
            if (plan.client_tools.count(t.exposed)) continue;  // the client's own tool of that name wins
            box->add(t.exposed);
            offered.push_back(i);
        }
        if (box->empty()) return std::nullopt;
        plan.limits = cfg_.agent_loop.limits;
        if (auto err = apply_limit_headers(req, plan.limits)) return err;
        if (auto const* n = body.if_contains("n"); n && n->is_number() && n->to_number<double>() > 1)
            return api_error::bad_request("'n' greater than 1 cannot be combined with the gateway's MCP tools; send n: 1, "
                                          "or switch the tools off with the header x-toolgate-mcp-servers: none",
                                          "unsupported_n");
        // The gateway's tools go after the client's own, in the request itself.
        if (!client_tools) client_tools = &body.insert_or_assign("tools", json::array()).first->value().get_array();
        client_tools->reserve(client_tools->size() + offered.size());
        for (auto i : offered) client_tools->push_back(cat->definitions[i]);
        body_changed = true;
        plan.tools = std::move(box);
        plan.run = true;
        return std::nullopt;
    }

    // Per-request limits: a request may tighten the configured limits, never loosen them.
    static std::optional<api_error> apply_limit_headers(inbound_request const& req, agentloop::limits& l) {
        auto bad = [](std::string_view header, std::string_view what) {
            return api_error::bad_request("header " + std::string(header) + " must be " + std::string(what),
                                          "invalid_limit_header");
        };
        auto whole = [](std::string_view v) -> std::optional<std::uint64_t> {
            if (v.empty() || v.size() > 15 || v.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
            return std::stoull(std::string(v));
        };
        auto tighten = [](auto& limit, auto value) {
            if (limit == 0 || value < limit) limit = value;
        };
        for (auto [name, field] : {std::pair{"x-toolgate-max-iterations", 0}, std::pair{"x-toolgate-max-tool-calls", 1},
                                   std::pair{"x-toolgate-max-tool-result-bytes", 2},
                                   std::pair{"x-toolgate-max-total-tokens", 3}}) {
            auto v = req.header(name);
            if (v.empty()) continue;
            auto n = whole(v);
            if (!n || *n == 0) return bad(name, "a whole number of at least 1");
            if (field == 0) tighten(l.max_iterations, static_cast<unsigned>(std::min<std::uint64_t>(*n, 1000)));
            if (field == 1) tighten(l.max_tool_calls_per_turn, static_cast<unsigned>(std::min<std::uint64_t>(*n, 1000)));
            if (field == 2) tighten(l.max_tool_result_bytes, static_cast<std::size_t>(std::max<std::uint64_t>(*n, 256)));
            if (field == 3) tighten(l.max_total_tokens, static_cast<std::int64_t>(*n));
        }
        for (auto [name, field] : {std::pair{"x-toolgate-tool-timeout", 0}, std::pair{"x-toolgate-loop-timeout", 1}}) {
            auto v = req.header(name);
            if (v.empty()) continue;
            auto d = parse_duration(v);
            if (!d || d->count() <= 0) return bad(name, "a duration such as 30s or 1500ms");
            if (field == 0) l.tool_timeout = std::min(l.tool_timeout, *d);
            if (field == 1) l.loop_timeout = std::min(l.loop_timeout, *d);
        }
        if (auto v = req.header("x-toolgate-max-cost"); !v.empty()) {
            std::string s(v);
            char* end = nullptr;
            double x = std::strtod(s.c_str(), &end);
            if (end != s.c_str() + s.size() || !(x > 0 && x < 1e6)) return bad("x-toolgate-max-cost", "a positive number of USD");
            tighten(l.max_cost_usd, x);
        }
        return std::nullopt;
    }

    std::shared_ptr<injected_catalog const> injected() {
        auto snap = mcp_->aggregator().snapshot();
        std::lock_guard lock(injected_mu_);
        if (!injected_ || injected_->source != snap) {
            auto fresh = std::make_shared<injected_catalog>();
            fresh->source = snap;
            for (auto const& t : snap->tools) fresh->definitions.push_back(openai_tool(t));
            injected_ = std::move(fresh);
        }
        return injected_;
    }

    asio::awaitable<providers::chat_outcome> run_turn(worker_services& services, request_record& rec,
                                                      providers::chat_request& request, providers::chat_sink* sink,
                                                      cancel_token& cancel, providers::provider*& last) {
        turn_context ctx;
        ctx.request_id = rec.request_id;
        ctx.requested_model = rec.model;
        ctx.request = std::move(request);
        providers::call_context call{services.http, cancel, rec.request_id};
        ctx.call = &call;
        ctx.sink = sink;
        auto result = co_await pipeline_->run(ctx);
        request = std::move(ctx.request);
        if (ctx.provider) {
            rec.provider = ctx.provider->name();
            last = ctx.provider;
        }
        co_return result;
    }

    asio::awaitable<void> run_loop(worker_services& services, response_channel& out, cancel_token& cancel,
                                   request_record& rec, header_list const& headers, json::object body, loop_plan& plan,
                                   bool stream) {
        rec.loop = true;
        agentloop::loop_input in;
        in.body = std::move(body);
        in.client_tools = std::move(plan.client_tools);
        in.stream = stream;
        if (auto* so = in.body.if_contains("stream_options"); so && so->is_object()) {
            auto* iu = so->get_object().if_contains("include_usage");
            in.include_usage = iu && iu->is_bool() && iu->get_bool();
        }
        std::optional<sse_sink> sink;
        if (stream) {
            sink.emplace(out, headers, cancel);
            in.sink = &*sink;
        }
        in.cancel = &cancel;
        in.lim = plan.limits;
        in.tools = plan.tools.get();
        in.fallback_model = rec.model;
        providers::provider* last = nullptr;
        in.cost = [&last](std::string_view model, providers::usage const& u) {
            return last ? last->config().cost(model, u) : 0.0;
        };
        agentloop::turn_fn turn = [this, &services, &rec, &last](providers::chat_request& r, providers::chat_sink* s,
                                                                cancel_token& c) {
            return run_turn(services, rec, r, s, c, last);
        };
        auto res = co_await agentloop::run(in, turn);
        rec.tokens = res.outcome.tokens;
        rec.iterations = res.iterations;
        rec.tool_calls = res.calls.size();
        for (auto const& c : res.calls) rec.tool_errors += c.ok ? 0 : 1;
        if (res.stopped != agentloop::stop_reason::none) rec.stopped = agentloop::to_string(res.stopped);
        if (!res.outcome.error && !cancel.cancelled() && !res.client_call_ids.empty() && res.transcript.size() > 1)
            hybrid_.remember(res.client_call_ids, std::move(res.transcript));
        if (!res.outcome.error && !stream) res.outcome.raw_response = json::serialize(res.outcome.response);
        co_await answer(out, cancel, rec, headers, sink ? &*sink : nullptr, res.outcome);
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
        if (front_) {
            out += "# HELP toolgate_mcp_front_sessions Open sessions of the /mcp front.\n";
            out += "# TYPE toolgate_mcp_front_sessions gauge\n";
            out += fmt::format("toolgate_mcp_front_sessions {}\n", front_->session_count());
        }
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
            for (auto const& m : p->listed_models()) {
                json::object o{{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", p->owned_by()}};
                if (auto d = p->description(); !d.empty()) o["description"] = d;
                o["provider"] = p->name();
                if (auto const* e = providers::catalog_find(p->config(), m)) {
                    o["context_window"] = e->context_window;
                    o["pricing"] = json::object{{"input_per_million", e->price.input}, {"output_per_million", e->price.output}};
                }
                if (auto it = p->config().prices.find(m); it != p->config().prices.end())
                    o["pricing"] = json::object{{"input_per_million", it->second.input}, {"output_per_million", it->second.output}};
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
        if (rec.loop)
            fmt::format_to(out, R"(,"iterations":{},"tool_calls":{},"tool_errors":{})", rec.iterations, rec.tool_calls,
                           rec.tool_errors);
        if (!rec.stopped.empty()) fmt::format_to(out, R"(,"loop_stopped":"{}")", rec.stopped);
        if (!rec.error_code.empty()) fmt::format_to(out, R"(,"error":"{}")", rec.error_code);
        fmt::format_to(out, R"(,"latency_ms":{:.3f}}})", seconds * 1000.0);
        access_log_->info(std::string_view(line.data(), line.size()));
    }

    gateway_config cfg_;
    std::unique_ptr<mcp_runtime> mcp_;
    std::unique_ptr<mcp_front> front_;  // destroyed before the MCP runtime
    std::vector<std::unique_ptr<providers::provider>> providers_;
    std::unique_ptr<model_router> router_;
    std::unique_ptr<turn_pipeline> pipeline_;
    agentloop::hybrid_store hybrid_;
    std::mutex injected_mu_;
    std::shared_ptr<injected_catalog const> injected_;
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
