#include "agentloop/loop.hpp"

#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <deque>

#include "common/cancel_scope.hpp"
#include "common/ids.hpp"
#include "common/task_group.hpp"
#include "common/json_util.hpp"
#include "common/text.hpp"
#include "providers/wire.hpp"

// Braced JSON is built in the plain functions below, never in a coroutine (CONTRIBUTING.md).

namespace toolgate::agentloop {


std::string_view to_string(stop_reason r) {
    switch (r) {
        case stop_reason::none: return "none";
        case stop_reason::max_iterations: return "max_iterations";
        case stop_reason::loop_timeout: return "loop_timeout";
        case stop_reason::max_total_tokens: return "max_total_tokens";
        case stop_reason::max_cost: return "max_cost";
    }
    return "none";
}

// ---- tool results as text --------------------------------------------------------------------

namespace {

using providers::wire::str;

std::string describe_part(json::object const& part) {
    auto type = str(part, "type");
    if (type == "text") return std::string(str(part, "text"));
    if (type == "image" || type == "audio") {
        auto data = str(part, "data");
        return fmt::format("[{} {}, {} bytes base64, not shown]", type, str(part, "mimeType"), data.size());
    }
    if (type == "resource_link")
        return fmt::format("[resource link {} {}]", str(part, "uri"), str(part, "name"));
    if (type == "resource") {
        if (auto const* r = part.if_contains("resource"); r && r->is_object()) {
            auto const& res = r->get_object();
            if (auto const* t = res.if_contains("text"); t && t->is_string()) return std::string(t->get_string());
            return fmt::format("[binary resource {} {}, not shown]", str(res, "uri"), str(res, "mimeType"));
        }
    }
    return json::serialize(part);
}

}  // namespace

std::string tool_message_text(std::string_view tool, mcp::tool_outcome const& outcome, std::size_t max_bytes) {
    std::string text;
    if (!outcome.ok) {
        text = fmt::format("Error: the tool '{}' could not be run ({}): {}", tool, outcome.error_code(), outcome.error);
    } else {
        auto const& r = outcome.result;
        if (auto const* content = r.if_contains("content"); content && content->is_array()) {
            for (auto const& part : content->get_array()) {
                if (!part.is_object()) continue;
                if (!text.empty()) text.push_back('\n');
                text += describe_part(part.get_object());
            }
        }
        if (text.empty())
            if (auto const* sc = r.if_contains("structuredContent"); sc && !sc->is_null()) text = json::serialize(*sc);
        auto const* is_error = r.if_contains("isError");
        if (is_error && is_error->is_bool() && is_error->get_bool())
            text = fmt::format("Error reported by the tool '{}': {}", tool, text);
        if (outcome.truncated) text += "\n[toolgate: the MCP server's answer was larger than allowed and was cut]";
    }
    if (text.size() > max_bytes) {
        auto total = text.size();
        utf8_truncate(text, max_bytes);
        text += fmt::format("\n[toolgate: tool result cut at {} of {} bytes]", text.size(), total);
    }
    return text;
}

// ---- fragments -------------------------------------------------------------------------------

std::size_t call_assembler::add(json::object const& fragment) {
    std::int64_t index;
    if (auto const* i = fragment.if_contains("index"); i && i->is_int64()) {
        index = i->get_int64();
    } else if (i && i->is_uint64()) {
        index = static_cast<std::int64_t>(i->get_uint64());
    } else {
        // No index: a new call when it brings an id of its own, else more of the last one.
        auto const* id = fragment.if_contains("id");
        bool fresh = calls_.empty() ||
                     (id && id->is_string() && !id->get_string().empty() && id->get_string() != calls_.back().id);
        index = fresh ? -1 - static_cast<std::int64_t>(calls_.size()) : last_index_;
    }
    last_index_ = index;
    auto [it, inserted] = by_index_.try_emplace(index, calls_.size());
    if (inserted) calls_.emplace_back();
    auto& c = calls_[it->second];
    if (auto const* id = fragment.if_contains("id"); id && id->is_string() && c.id.empty()) c.id = id->get_string();
    if (auto const* fn = fragment.if_contains("function"); fn && fn->is_object()) {
        auto const& f = fn->get_object();
        if (auto const* n = f.if_contains("name"); n && n->is_string() && !n->get_string().empty()) {
            // Most providers send the whole name once; some repeat it, a few split it.
            std::string_view name = n->get_string();
            if (c.name.empty()) c.name = name;
            else if (name != c.name) c.name += name;
        }
        if (auto const* a = f.if_contains("arguments"); a && a->is_string()) c.arguments += a->get_string();
    }
    return it->second;
}

// ---- the loop --------------------------------------------------------------------------------

namespace {

using providers::wire::usage_json;


struct call_route {
    call_kind kind = call_kind::undecided;
    std::size_t client_index = 0;
    bool header_sent = false;
    std::size_t args_sent = 0;
};

std::string new_completion_id() { return "chatcmpl-tg" + fast_hex(16); }

json::object tool_call_json(std::string const& id, std::string const& name, std::string const& arguments) {
    return json::object{{"id", id},
                        {"type", "function"},
                        {"function", json::object{{"name", name}, {"arguments", arguments}}}};
}

json::object tool_message(std::string const& id, std::string text) {
    return json::object{{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(text)}};
}

// Everything the loop keeps between turns, and the relay of streamed chunks to the client.
class loop_state final : public providers::chat_sink {
public:
    explicit loop_state(loop_input& in) : in_(in) {}

    // -- per turn
    void begin_turn() {
        turn_content_.clear();
        turn_finish_.clear();
        calls_.clear();
        routes_.clear();
    }

    // A non-streamed turn's answer.
    void absorb(json::object const& response) {
        adopt_identity(response);
        auto const* choices = response.if_contains("choices");
        if (!choices || !choices->is_array() || choices->get_array().empty()) return;
        auto const* choice = choices->get_array()[0].if_object();
        if (!choice) return;
        turn_finish_ = std::string(str(*choice, "finish_reason"));
        auto const* msg = choice->if_contains("message");
        if (!msg || !msg->is_object()) return;
        auto const& m = msg->get_object();
        if (auto const* c = m.if_contains("content"); c && c->is_string()) turn_content_ = c->get_string();
        if (auto const* tc = m.if_contains("tool_calls"); tc && tc->is_array())
            for (auto const& f : tc->get_array())
                if (auto const* fo = f.if_object()) {
                    json::object frag = *fo;
                    frag["index"] = calls_.calls().size();  // whole calls: the position is the index
                    calls_.add(frag);
                }
    }

    // Adds the turn's text to the whole answer; returns the calls with their kind.
    std::vector<std::pair<assembled_call, call_kind>> end_turn() {
        if (!turn_content_.empty()) {
            if (!all_content_.empty()) all_content_ += "\n\n";
            all_content_ += turn_content_;
        }
        std::vector<std::pair<assembled_call, call_kind>> out;
        std::size_t n = 0;
        for (auto const& c : calls_.calls()) {
            auto copy = c;
            if (copy.id.empty()) copy.id = fmt::format("call_tg_{}_{}", turn_number_, n);
            ++n;
            out.emplace_back(std::move(copy), in_.client_tools.count(c.name) ? call_kind::client : call_kind::gateway);
        }
        ++turn_number_;
        return out;
    }

    std::string const& turn_content() const { return turn_content_; }
    std::string const& turn_finish() const { return turn_finish_; }
    std::string const& all_content() const { return all_content_; }
    bool sent_anything() const { return sent_; }

    // -- streaming relay (chat_sink)
    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        bool changed = false;
        if (!rewrite(chunk, changed)) co_return !in_.cancel->cancelled();
        sent_ = true;
        auto pass_on = changed ? std::string_view() : raw;
        co_return co_await in_.sink->on_chunk(chunk, pass_on);
    }
    asio::awaitable<bool> flush() override { co_return co_await in_.sink->flush(); }

    // -- the end of the loop
    json::object make_chunk(json::object delta, json::value finish) const {
        return providers::wire::chunk(id_, created_, model_, std::move(delta), std::move(finish));
    }

    json::object notice_delta(std::string const& notice) {
        json::object d;
        if (!role_sent_) {
            d["role"] = "assistant";
            role_sent_ = true;
        }
        d["content"] = (all_content_.empty() ? "" : "\n\n") + notice;
        return d;
    }

    json::object client_calls_delta(std::vector<assembled_call> const& calls) const {
        json::array tc;
        for (std::size_t i = 0; i < calls.size(); ++i) {
            auto c = tool_call_json(calls[i].id, calls[i].name, calls[i].arguments);
            c["index"] = i;
            tc.push_back(std::move(c));
        }
        json::object d;
        d["tool_calls"] = std::move(tc);
        return d;
    }

    json::object usage_chunk(providers::usage const& u) const {
        return providers::wire::usage_chunk(id_, created_, model_, u);
    }

    void ensure_identity() {
        if (identity_set_) return;
        identity_set_ = true;
        id_ = new_completion_id();
        created_ = static_cast<std::int64_t>(std::time(nullptr));
        model_ = in_.fallback_model;
    }

    json::object final_response(json::object last, std::string const& content, std::vector<assembled_call> const& client_calls,
                                std::string const& finish, loop_result const& res) {
        ensure_identity();
        json::object msg;
        msg["role"] = "assistant";
        msg["content"] = content.empty() && !client_calls.empty() ? json::value(nullptr) : json::value(content);
        if (!client_calls.empty()) {
            json::array tc;
            for (auto const& c : client_calls) tc.push_back(tool_call_json(c.id, c.name, c.arguments));
            msg["tool_calls"] = std::move(tc);
        }
        last["id"] = id_;
        last["object"] = "chat.completion";
        last["created"] = created_;
        last["model"] = model_;
        json::object choice{{"index", 0}, {"message", std::move(msg)}, {"logprobs", nullptr}, {"finish_reason", finish}};
        last["choices"] = json::array{std::move(choice)};
        last["usage"] = usage_json(res.outcome.tokens);
        json::array calls;
        for (auto const& c : res.calls) {
            json::object o{{"id", c.id}, {"name", c.name}, {"duration_ms", double(c.duration.count()) / 1000.0}, {"ok", c.ok}};
            if (!c.error.empty()) o["error"] = c.error;
            calls.push_back(std::move(o));
        }
        json::object ext{{"iterations", res.iterations}, {"tool_calls", std::move(calls)}};
        if (res.stopped != stop_reason::none) ext["stopped"] = to_string(res.stopped);
        if (res.cost_usd > 0) ext["cost_usd"] = res.cost_usd;
        last["toolgate"] = std::move(ext);
        return last;
    }

private:
    void adopt_identity(json::object const& o) {
        if (identity_set_) return;
        identity_set_ = true;
        auto const* id = o.if_contains("id");
        id_ = id && id->is_string() ? std::string(id->get_string()) : new_completion_id();
        auto const* cr = o.if_contains("created");
        created_ = cr && cr->is_number() ? *cr : json::value(static_cast<std::int64_t>(std::time(nullptr)));
        auto const* m = o.if_contains("model");
        model_ = m && m->is_string() ? std::string(m->get_string()) : in_.fallback_model;
    }

    // Turns one upstream chunk into what the client sees of it; false: nothing to send.
    bool rewrite(json::object& chunk, bool& changed) {
        auto* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array() || choices->get_array().empty()) return false;  // usage-only
        auto* choice = choices->get_array()[0].if_object();
        if (!choice) return false;
        if (!identity_set_) {
            adopt_identity(chunk);
        } else {
            changed |= set_if_different(chunk, "id", json::value(id_));
            changed |= set_if_different(chunk, "created", created_);
            changed |= set_if_different(chunk, "model", json::value(model_));
        }
        bool payload = false;
        if (auto* fr = choice->if_contains("finish_reason"); fr && !fr->is_null()) {
            if (fr->is_string()) turn_finish_ = fr->get_string();
            *fr = nullptr;  // the loop decides how the message ends
            changed = true;
        }
        if (auto* lp = choice->if_contains("logprobs"); lp && !lp->is_null()) payload = true;
        if (auto* dv = choice->if_contains("delta"); dv && dv->is_object()) {
            auto& delta = dv->get_object();
            if (delta.contains("role")) {
                if (role_sent_) {
                    delta.erase("role");
                    changed = true;
                } else {
                    role_sent_ = true;
                    payload = true;
                }
            }
            if (auto* c = delta.if_contains("content"); c && c->is_string() && !c->get_string().empty()) {
                if (turn_content_.empty() && content_sent_) {
                    *c = "\n\n" + std::string(c->get_string());
                    changed = true;
                    turn_content_ = c->get_string().subview(2);
                } else {
                    turn_content_ += c->get_string();
                }
                content_sent_ = true;
                payload = true;
            }
            if (auto* tc = delta.if_contains("tool_calls")) {
                json::array fwd;
                if (tc->is_array()) fwd = route_fragments(tc->get_array());
                changed = true;
                if (fwd.empty()) {
                    delta.erase("tool_calls");
                } else {
                    *tc = std::move(fwd);
                    payload = true;
                }
            }
            for (auto const& [k, v] : delta)
                if (k != "role" && k != "content" && k != "tool_calls" && !v.is_null()) payload = true;
        }
        if (auto const* u = chunk.if_contains("usage"); u && !u->is_null()) {
            chunk.erase("usage");  // the loop sends one usage chunk for all turns
            changed = true;
        }
        return payload;
    }

    static bool set_if_different(json::object& o, std::string_view key, json::value const& want) {
        auto* v = o.if_contains(key);
        if (v && *v == want) return false;
        if (v) *v = want;
        else o.emplace(key, want);
        return true;
    }

    // Client tool-call fragments go on to the client (renumbered among the client's calls); gateway
    // ones are kept back and only assembled.
    json::array route_fragments(json::array const& fragments) {
        json::array fwd;
        for (auto const& f : fragments) {
            auto const* fo = f.if_object();
            if (!fo) continue;
            auto pos = calls_.add(*fo);
            if (routes_.size() <= pos) routes_.resize(pos + 1);
            auto& r = routes_[pos];
            auto const& c = calls_.calls()[pos];
            if (r.kind == call_kind::undecided && !c.name.empty()) {
                r.kind = in_.client_tools.count(c.name) ? call_kind::client : call_kind::gateway;
                if (r.kind == call_kind::client) r.client_index = client_calls_sent_++;
            }
            if (r.kind != call_kind::client) continue;
            json::object out;
            out["index"] = r.client_index;
            json::object fn;
            if (!r.header_sent) {
                out["id"] = c.id.empty() ? fmt::format("call_tg_{}_{}", turn_number_, pos) : c.id;
                out["type"] = "function";
                fn["name"] = c.name;
                r.header_sent = true;
            }
            fn["arguments"] = c.arguments.substr(r.args_sent);
            r.args_sent = c.arguments.size();
            out["function"] = std::move(fn);
            fwd.push_back(std::move(out));
        }
        return fwd;
    }

    loop_input& in_;
    bool identity_set_ = false;
    std::string id_;
    json::value created_;
    std::string model_;
    bool role_sent_ = false;
    bool content_sent_ = false;
    bool sent_ = false;
    std::size_t client_calls_sent_ = 0;
    unsigned turn_number_ = 0;
    std::string all_content_;
    // this turn
    std::string turn_content_;
    std::string turn_finish_;
    call_assembler calls_;
    std::vector<call_route> routes_;
};

std::string stop_notice(stop_reason why, loop_result const& res, limits const& lim) {
    switch (why) {
        case stop_reason::max_iterations:
            return fmt::format("[toolgate] The agent loop stopped after {} model turns (max_iterations) before the "
                               "model gave a final answer.",
                               res.iterations);
        case stop_reason::loop_timeout:
            return fmt::format("[toolgate] The agent loop stopped: it ran out of time ({} ms, loop_timeout) before "
                               "the model gave a final answer.",
                               lim.loop_timeout.count());
        case stop_reason::max_total_tokens:
            return fmt::format("[toolgate] The agent loop stopped: it used {} tokens, over its limit of {} "
                               "(max_total_tokens), before the model gave a final answer.",
                               res.outcome.tokens.prompt_tokens + res.outcome.tokens.completion_tokens,
                               lim.max_total_tokens);
        case stop_reason::max_cost:
            return fmt::format("[toolgate] The agent loop stopped: it cost ${:.6f}, over its limit of ${:.6f} "
                               "(max_cost_usd), before the model gave a final answer.",
                               res.cost_usd, lim.max_cost_usd);
        case stop_reason::none: break;
    }
    return {};
}

json::object assistant_message(std::string const& content, std::vector<std::pair<assembled_call, call_kind>> const& calls) {
    json::array tc;
    for (auto const& [c, kind] : calls) tc.push_back(tool_call_json(c.id, c.name, c.arguments));
    json::object m{{"role", "assistant"}};
    m["content"] = content.empty() ? json::value(nullptr) : json::value(content);
    m["tool_calls"] = std::move(tc);
    return m;
}

void append_message(json::object& body, json::object message) {
    auto* msgs = body.if_contains("messages");
    if (msgs && msgs->is_array()) msgs->get_array().push_back(std::move(message));
}

// After the first turn a forced tool_choice ("required" or a named function) would make the model
// call tools forever: later turns get "auto".
void relax_tool_choice(json::object& body) {
    auto* tc = body.if_contains("tool_choice");
    if (!tc) return;
    if (tc->is_object() || (tc->is_string() && tc->get_string() == "required")) *tc = "auto";
}

std::string model_in(json::object const& body) { return std::string(str(body, "model")); }

// ---- running the gateway calls of one turn ----

struct tool_job {
    std::string id;
    std::string name;
    std::string arguments;
    std::string text;  // the tool message
    tool_call_record record;
};

struct execution {
    execution(toolgate::time_source& c, asio::any_io_executor ex) : clk(c), signal(c, std::move(ex)) {}
    toolgate::time_source& clk;
    std::vector<tool_job> jobs;
    std::size_t next = 0;
    std::size_t done = 0;
    std::deque<std::string> comments;
    alarm_timer signal;  // wakes execute(): cancelled when something happened, fires for a keep-alive
    time_source::time_point deadline;
};

std::optional<json::object> parse_arguments(std::string const& text, std::string& why) {
    if (text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    boost::system::error_code ec;
    auto v = parse_bounded(text, ec);
    if (ec) {
        why = ec.message();
        return std::nullopt;
    }
    if (!v.is_object()) {
        why = "not a JSON object";
        return std::nullopt;
    }
    return std::move(v.get_object());
}

asio::awaitable<void> run_job(loop_input& in, execution& x, tool_job& job) {
    auto start = x.clk.now();
    job.record.id = job.id;
    job.record.name = job.name;
    std::string why;
    auto args = parse_arguments(job.arguments, why);
    if (!in.tools->has(job.name)) {
        job.record.error = "unknown_tool";
        job.text = fmt::format("Error: there is no tool named '{}'.", job.name);
        co_return;
    }
    if (!args) {
        job.record.error = "invalid_arguments";
        job.text = fmt::format("Error: the arguments for the tool '{}' are not valid JSON ({}). Call it again with "
                               "a JSON object.",
                               job.name, why);
        co_return;
    }
    auto budget = std::min<time_source::duration>(in.lim.tool_timeout, x.deadline - start);
    if (budget <= time_source::duration::zero()) {
        job.record.error = "loop_timeout";
        job.text = fmt::format("Error: the tool '{}' was not run: the agent loop is out of time.", job.name);
        co_return;
    }
    auto ex = co_await asio::this_coro::executor;
    scoped_deadline call(*in.cancel, start + budget, ex, x.clk);
    auto outcome = co_await in.tools->call(job.name, std::move(*args), call.token());
    job.record.duration = std::chrono::duration_cast<std::chrono::microseconds>(x.clk.now() - start);
    if (call.expired()) {
        outcome.ok = false;
        outcome.code = mcp::tool_errc::timeout;
        outcome.error = fmt::format("no answer within {} ms",
                                    std::chrono::duration_cast<std::chrono::milliseconds>(budget).count());
    }
    if (!outcome.ok) {
        job.record.error = std::string(outcome.error_code());
    } else {
        auto const* is_error = outcome.result.if_contains("isError");
        job.record.ok = !(is_error && is_error->is_bool() && is_error->get_bool());
        if (!job.record.ok) job.record.error = "tool_error";
    }
    job.text = tool_message_text(job.name, outcome, in.lim.max_tool_result_bytes);
}

asio::awaitable<void> worker(loop_input& in, execution& x) {
    while (x.next < x.jobs.size()) {
        auto& job = x.jobs[x.next++];
        if (in.observer) in.observer->tool_started(job.id, job.name, job.arguments);
        x.comments.push_back("tool " + job.name + " started");
        x.signal.cancel();
        try {
            co_await run_job(in, x, job);
        } catch (std::exception const&) {
            job.record.error = "internal";
            job.text = fmt::format("Error: the tool '{}' could not be run (internal error).", job.name);
        }
        auto ms = double(job.record.duration.count()) / 1000.0;
        if (in.observer) in.observer->tool_finished(job.record, job.text);
        x.comments.push_back(job.record.ok ? fmt::format("tool {} done in {:.0f} ms", job.name, ms)
                                           : fmt::format("tool {} failed in {:.0f} ms ({})", job.name, ms, job.record.error));
        ++x.done;
        x.signal.cancel();
    }
}

// Runs the jobs (at most max_parallel at once); while they run, streams their start/end as SSE
// comments and a keep-alive comment when nothing else happened for a while.
// The workers are members of a task group awaited before `x` goes away.
asio::awaitable<void> execute(loop_input& in, execution& x) {
    auto ex = co_await asio::this_coro::executor;
    auto count = std::min<std::size_t>(std::max(1u, in.lim.max_parallel_tools), x.jobs.size());
    task_group workers;
    for (std::size_t i = 0; i < count; ++i) workers.spawn(ex, worker(in, x));
    bool sink_ok = in.stream && in.sink != nullptr;
    for (;;) {
        if (sink_ok && !x.comments.empty()) {
            while (!x.comments.empty()) {
                auto text = std::move(x.comments.front());
                x.comments.pop_front();
                sink_ok = co_await in.sink->on_comment(text);
                if (!sink_ok) break;
            }
            if (sink_ok) sink_ok = co_await in.sink->flush();
            continue;  // more may have happened meanwhile
        }
        x.comments.clear();
        if (x.done == x.jobs.size()) break;
        x.signal.expires_after(in.lim.keepalive_interval);
        auto ec = co_await x.signal.wait();
        if (!ec && sink_ok) x.comments.push_back("keep-alive");
    }
    // Every job is done, so the workers are ending; none may outlive `x`.
    while (!co_await workers.wait_for(std::chrono::seconds(1), x.clk)) workers.emit(asio::cancellation_type::terminal);
}

tool_job job_of(assembled_call const& c) {
    tool_job job;
    job.id = c.id;
    job.name = c.name;
    job.arguments = c.arguments;
    return job;
}

// The jobs' tool messages into the conversation and the transcript, their records into the result.
void keep_results(execution& x, json::object& body, json::array& transcript, loop_result& res) {
    for (auto& job : x.jobs) {
        auto msg = tool_message(job.id, std::move(job.text));
        transcript.push_back(msg);
        append_message(body, std::move(msg));
        res.calls.push_back(std::move(job.record));
    }
}

// The answer as one assistant message of the conversation (for a session's history).
json::object final_message(std::string const& content, std::string const& notice) {
    json::object m;
    m["role"] = "assistant";
    std::string text = content;
    if (!notice.empty()) text += (text.empty() ? "" : "\n\n") + notice;
    m["content"] = std::move(text);
    return m;
}

}  // namespace

asio::awaitable<loop_result> run(loop_input& in, turn_fn const& turn) {
    loop_result res;
    loop_state st(in);
    auto ex = co_await asio::this_coro::executor;
    toolgate::time_source& clk = in.clock ? *in.clock : toolgate::time_source::steady();
    auto deadline = clk.now() + in.lim.loop_timeout;
    bool streaming = in.stream && in.sink != nullptr;
    json::array transcript;  // what the loop added to the conversation on its own
    std::vector<assembled_call> client_calls;
    json::object last_response;
    std::string final_content;  // the last turn's text when it is not in the transcript already

    if (!in.run_first.empty()) {
        // Calls the client approved: their results come before the first turn reads them.
        execution x(clk, ex);
        x.deadline = deadline;
        for (auto const& c : in.run_first) x.jobs.push_back(job_of(c));
        co_await execute(in, x);
        if (in.cancel->cancelled()) co_return res;
        keep_results(x, in.body, transcript, res);
    }

    for (;;) {
        if (in.cancel->cancelled()) co_return res;
        if (clk.now() >= deadline) {
            res.stopped = stop_reason::loop_timeout;
            break;
        }
        ++res.iterations;
        st.begin_turn();
        providers::chat_request req;
        req.body = std::move(in.body);
        req.stream = streaming;
        scoped_deadline turn_scope(*in.cancel, deadline, ex, clk);
        cancel_token& turn_cancel = turn_scope.token();
        providers::chat_sink* turn_sink = streaming ? &st : nullptr;
        auto out = co_await turn(req, turn_sink, turn_cancel);
        in.body = std::move(req.body);
        res.outcome.tokens.add(out.tokens);
        if (in.cost) res.cost_usd += in.cost(model_in(in.body), out.tokens);
        if (in.cancel->cancelled()) co_return res;
        if (turn_cancel.cancelled()) {
            res.stopped = stop_reason::loop_timeout;
            break;
        }
        if (out.error) {
            res.outcome.error = std::move(out.error);
            res.outcome.chunks_sent = st.sent_anything();
            co_return res;
        }
        if (!streaming) {
            st.absorb(out.response);
            last_response = std::move(out.response);
        }
        auto calls = st.end_turn();
        std::vector<call_kind> kinds;
        kinds.reserve(calls.size());
        for (auto const& c : calls) kinds.push_back(c.second);
        loop_counters spent;
        spent.iterations = res.iterations;
        spent.total_tokens = res.outcome.tokens.prompt_tokens + res.outcome.tokens.completion_tokens;
        spent.cost_usd = res.cost_usd;
        auto next = next_step(kinds, spent, in.lim, clk.now(), deadline);
        if (next.what == step::kind::answer) {
            res.finish_reason = st.turn_finish().empty() || st.turn_finish() == "tool_calls" ? "stop" : st.turn_finish();
            final_content = st.turn_content();
            break;
        }
        if (next.what == step::kind::stop) {
            res.stopped = next.reason;
            final_content = st.turn_content();
            break;
        }

        auto assistant = assistant_message(st.turn_content(), calls);
        transcript.push_back(assistant);
        append_message(in.body, std::move(assistant));

        if (!next.run.empty() || !next.refused.empty()) {
            execution x(clk, ex);
            x.deadline = deadline;
            for (auto i : next.run) x.jobs.push_back(job_of(calls[i].first));
            if (!x.jobs.empty()) co_await execute(in, x);
            if (in.cancel->cancelled()) co_return res;
            keep_results(x, in.body, transcript, res);
            for (auto i : next.refused) {
                auto text = fmt::format("Not run: the model asked for {} tool calls in one turn and the gateway runs at "
                                        "most {} per turn. Call it again in the next turn if it is still needed.",
                                        next.run.size() + next.refused.size(), in.lim.max_tool_calls_per_turn);
                auto msg = tool_message(calls[i].first.id, std::move(text));
                transcript.push_back(msg);
                append_message(in.body, std::move(msg));
                tool_call_record rec;
                rec.id = calls[i].first.id;
                rec.name = calls[i].first.name;
                rec.error = "not_run";
                res.calls.push_back(std::move(rec));
            }
        }
        if (!next.hand_back.empty()) {
            for (auto i : next.hand_back) {
                client_calls.push_back(calls[i].first);
                res.client_call_ids.push_back(calls[i].first.id);
            }
            res.finish_reason = "tool_calls";
            break;
        }
        relax_tool_choice(in.body);
    }

    std::string notice;
    if (res.stopped != stop_reason::none) {
        res.finish_reason = "length";
        notice = stop_notice(res.stopped, res, in.lim);
    }
    res.transcript = std::move(transcript);
    if (res.client_call_ids.empty()) res.final_message = final_message(final_content, notice);
    if (streaming) {
        st.ensure_identity();
        if (!notice.empty()) {
            auto c = st.make_chunk(st.notice_delta(notice), nullptr);
            co_await in.sink->on_chunk(c, {});
        }
        auto fin = st.make_chunk(json::object(), json::value(res.finish_reason));
        co_await in.sink->on_chunk(fin, {});
        if (in.include_usage) {
            auto u = st.usage_chunk(res.outcome.tokens);
            co_await in.sink->on_chunk(u, {});
        }
        co_await in.sink->flush();
    } else {
        std::string content = st.all_content();
        if (!notice.empty()) content += (content.empty() ? "" : "\n\n") + notice;
        res.outcome.response = st.final_response(std::move(last_response), content, client_calls, res.finish_reason, res);
    }
    co_return res;
}

}  // namespace toolgate::agentloop
