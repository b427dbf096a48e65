// The OpenAI Responses API: POST /v1/responses, GET and DELETE /v1/responses/{id} and
// GET /v1/responses/{id}/input_items. A request is translated to a chat body (responses_wire.hpp)
// and runs through the chat route's machinery (any provider, the agent loop with the MCP servers an
// `mcp` tool names, every policy); the answer goes out through a response channel that speaks
// Responses (a Response object, or its event stream). With `store` (the default) the Response, its
// input items and the conversation are kept (sessions/responses.hpp) before the answer's end goes
// out, so that a request naming it as previous_response_id finds it at once.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <spdlog/spdlog.h>

#include <map>
#include <set>
#include <unordered_set>

#include "common/json_util.hpp"
#include "mcp/aggregator.hpp"
#include "gateway/api/chat.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/responses_wire.hpp"
#include "gateway/api/state.hpp"
#include "sessions/responses.hpp"
#include "sessions/session.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;
namespace rw = responses_wire;

namespace {

std::int64_t now_s() { return policy::unix_now_ms() / 1000; }

std::string new_response_id() { return "resp_" + sessions::new_id().substr(5); }

// What is stored with a Response: the conversation so far (without system instructions, which a
// follow-up gives anew) and the request's input items.
struct to_store {
    bool store = false;
    std::string owner;
    json::array conversation;
    json::array input_items;
};

// The configured MCP servers and the catalog's tools, as a request's mcp tools may name them (the
// views point into `catalog`, which the caller keeps alive).
rw::mcp_offer offer_of(app_state const& app, mcp::catalog const& catalog) {
    rw::mcp_offer o;
    for (auto const& s : app.cfg.mcp_servers) o.servers.push_back(s.name);
    for (auto const& t : catalog.tools) {
        rw::gateway_tool g;
        g.exposed = t.exposed;
        g.server = t.server;
        g.name = t.name;
        g.definition = &t.definition;
        o.tools.push_back(g);
    }
    return o;
}

class responses_channel final : public response_channel, public agentloop::loop_observer {
public:
    responses_channel(api_request& r, std::string id, rw::request_view const& v, to_store& keep,
                      rw::mcp_offer const& offer)
        : r_(r), inner_(r.out), id_(std::move(id)), view_(v), keep_(keep), offer_(offer), created_(now_s()),
          stream_(id_, v, created_) {}

    // The loop runs with these MCP tools: one mcp_list_tools item per mcp tool of the request.
    void offered(std::vector<std::string> const& exposed) {
        std::size_t k = 0;
        for (auto const& label : view_.mcp_labels) {
            json::array tools;
            for (auto const& name : exposed) {
                auto ref = rw::tool_ref(view_, name);
                if (ref.label != label) continue;
                for (auto const& t : offer_.tools)
                    if (t.exposed == name && t.definition) tools.push_back(rw::listed_tool(ref.name, *t.definition));
            }
            auto item = rw::list_tools_item("mcpl_" + id_.substr(5) + "_" + std::to_string(k++), label, std::move(tools));
            if (view_.stream) stream_.list_tools(std::move(item));
            else mcp_items_.push_back(std::move(item));
        }
    }
    void tool_started(std::string_view call_id, std::string_view name, std::string_view arguments) override {
        if (view_.stream) {
            stream_.call_started(std::string(call_id), name, std::string(arguments));
            return;
        }
        calls_[std::string(call_id)] = mcp_items_.size();
        mcp_items_.push_back(rw::mcp_call_item(call_id, rw::tool_ref(view_, name), arguments, "", "unfinished"));
    }
    void tool_finished(agentloop::tool_call_record const& rec, std::string_view output) override {
        std::string error = rec.ok ? std::string() : std::string(output.empty() ? rec.error : output);
        if (view_.stream) {
            stream_.call_finished(rec.id, std::string(output), std::move(error));
            return;
        }
        auto it = calls_.find(rec.id);
        if (it == calls_.end()) return;
        auto& item = mcp_items_[it->second].as_object();
        auto const* args = item.if_contains("arguments");
        auto arguments = args && args->is_string() ? std::string(args->get_string()) : std::string();
        item = rw::mcp_call_item(rec.id, rw::tool_ref(view_, rec.name), arguments, output, error);
        rw::mark_approved(item, rec.id, view_);
    }

    asio::awaitable<bool> send(int status, std::string_view content_type, std::string_view body,
                               header_list const& extra) override {
        if (status >= 400 || !content_type.starts_with("application/json"))
            co_return co_await inner_.send(status, content_type, body, extra);
        auto response = translated(body);
        if (response.empty()) co_return co_await inner_.send(status, content_type, body, extra);
        co_await completed(response);
        auto text = json::serialize(response);
        co_return co_await inner_.send(status, content_type, text, extra);
    }
    asio::awaitable<bool> begin_stream(int status, std::string_view, header_list const& extra) override {
        co_return co_await inner_.begin_stream(status, "text/event-stream", extra);
    }
    asio::awaitable<bool> write(std::string_view data) override {
        auto out = stream_.feed(data);
        if (out.empty()) co_return true;
        co_await stored_before_the_end();
        co_return co_await inner_.write(out);
    }
    asio::awaitable<bool> end_stream(std::string_view last) override {
        auto out = stream_.feed(last);
        out += stream_.finish();
        co_await stored_before_the_end();
        co_return co_await inner_.end_stream(out);
    }
    bool started() const override { return inner_.started(); }

private:
    json::object translated(std::string_view body) const {
        boost::system::error_code ec;
        auto v = parse_bounded(body, ec);
        if (ec || !v.is_object() || !v.get_object().contains("choices")) return {};
        return rw::to_response(v.get_object(), id_, view_, created_, mcp_items_);
    }

    asio::awaitable<void> stored_before_the_end() {
        if (!stored_ && !stream_.final_response().empty()) co_await completed(stream_.final_response());
    }

    // Keeps the Response (once), before the client can see it complete.
    asio::awaitable<void> completed(json::object const& response) {
        if (stored_ || !keep_.store) co_return;
        stored_ = true;
        sessions::stored_response s;
        s.response = response;
        s.input_items = keep_.input_items;
        s.conversation = keep_.conversation;
        for (auto& m : rw::output_messages(response, offer_)) s.conversation.push_back(std::move(m));
        auto err = co_await r_.app.responses->put(id_, keep_.owner, std::move(s), policy::unix_now_ms());
        if (err)
            r_.app.log->warn("{} response {} was not stored: {}", r_.rec.request_id, id_, err->message);
    }

    api_request& r_;
    response_channel& inner_;
    std::string id_;
    rw::request_view const& view_;
    to_store& keep_;
    rw::mcp_offer const& offer_;
    std::int64_t created_;
    rw::stream_translator stream_;
    bool stored_ = false;
    json::array mcp_items_;                       // not streamed: the MCP activity, in order
    std::map<std::string, std::size_t> calls_;  // a running call's id -> its item
};

api_error bad_input(std::string msg) {
    auto err = api_error::bad_request(std::move(msg), "invalid_request");
    err.param = "input";
    return err;
}

std::string_view text_at(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// What the approvals of a request's input do: the approved calls, run before the first turn, and
// the "not approved" answers for the last turn's other calls that waited for approval.
struct approvals {
    std::vector<agentloop::assembled_call> run;
    json::array declined;  // inserted after the last assistant turn and its tool results
};

// Reads the approvals against the conversation (`messages`: stored history, then the input). A
// 400 when one names no call of the conversation's last assistant turn, a call answered already,
// or a call of a tool that needs no approval, when more are approved than a turn may run, or when
// anything but tool results follows that turn (the approved results must come right after it).
// The declines go into `messages` here.
std::variant<approvals, api_error> settle_approvals(json::array& messages, rw::request_view const& v,
                                                    std::size_t max_calls) {
    approvals out;
    // The last assistant turn with calls, and where its tool results end.
    std::size_t at = messages.size();
    for (std::size_t i = messages.size(); i-- > 0;) {
        auto const* o = messages[i].if_object();
        auto const* tc = o ? o->if_contains("tool_calls") : nullptr;
        if (tc && tc->is_array() && text_at(*o, "role") == "assistant") {
            at = i;
            break;
        }
    }
    auto is_tool_result = [&](std::size_t i) {
        auto const* o = messages[i].if_object();
        return o && o->if_contains("tool_call_id");
    };
    std::size_t insert = at + 1;
    while (insert < messages.size() && is_tool_result(insert)) ++insert;
    std::set<std::string, std::less<>> answered;
    for (std::size_t i = at + 1; i < insert; ++i) answered.emplace(text_at(messages[i].as_object(), "tool_call_id"));
    // The last turn's calls: id -> (name, arguments).
    std::map<std::string, std::pair<std::string, std::string>, std::less<>> calls;
    if (at < messages.size())
        for (auto const& c : messages[at].as_object().at("tool_calls").as_array()) {
            auto const* co = c.if_object();
            auto const* fn = co ? co->if_contains("function") : nullptr;
            auto const* fo = fn ? fn->if_object() : nullptr;
            if (!fo || text_at(*co, "id").empty()) continue;
            calls.emplace(text_at(*co, "id"), std::pair(std::string(text_at(*fo, "name")), std::string(text_at(*fo, "arguments"))));
        }
    if (!v.approved.empty() && insert < messages.size())
        return bad_input("send mcp_approval_response items after the turn that asked for them, with no new message "
                         "after them: the approved calls' results must come right after that turn");
    if (v.approved.size() > max_calls)
        return bad_input("at most " + std::to_string(max_calls) + " calls may be approved at once (max_tool_calls_per_turn)");
    for (auto const& id : v.approved) {
        auto it = calls.find(id);
        if (it == calls.end())
            return bad_input("mcp_approval_response: 'mcpr_" + id + "' names no call of the conversation's last turn");
        if (answered.count(id)) return bad_input("mcp_approval_response: the call 'mcpr_" + id + "' was answered already");
        auto ref = v.mcp_tools.find(it->second.first);
        if (ref == v.mcp_tools.end() || !ref->second.approval)
            return bad_input("mcp_approval_response: 'mcpr_" + id + "' is a call of '" + it->second.first +
                             "', which is no tool of this request's mcp tools that needs approval");
        agentloop::assembled_call c;
        c.id = id;
        c.name = it->second.first;
        c.arguments = it->second.second;
        out.run.push_back(std::move(c));
        answered.insert(id);
    }
    for (auto const& [id, call] : calls) {
        if (answered.count(id)) continue;
        auto ref = v.mcp_tools.find(call.first);
        if (ref == v.mcp_tools.end() || !ref->second.approval) continue;
        json::object m;
        m["role"] = "tool";
        m["tool_call_id"] = id;
        m["content"] = "The user did not approve this tool call; it was not run.";
        out.declined.push_back(std::move(m));
    }
    messages.insert(messages.begin() + static_cast<std::ptrdiff_t>(insert), out.declined.begin(), out.declined.end());
    return out;
}

// The new request's messages after the stored conversation (its instructions stay first).
void continue_from(json::array const& conversation, json::object& chat, rw::request_view const& v) {
    auto& messages = chat.at("messages").get_array();
    auto const* ins = v.echo.if_contains("instructions");
    std::size_t lead = ins && ins->is_string() ? 1 : 0;
    json::array out;
    for (std::size_t i = 0; i < lead && i < messages.size(); ++i) out.push_back(messages[i]);
    for (auto const& m : conversation) out.push_back(m);
    for (std::size_t i = lead; i < messages.size(); ++i) out.push_back(messages[i]);
    messages = std::move(out);
}

// The conversation without the request's instructions (the first message when it has them).
json::array without_instructions(json::array const& messages, rw::request_view const& v) {
    auto const* ins = v.echo.if_contains("instructions");
    bool first_is_instructions = ins && ins->is_string();
    json::array out;
    for (std::size_t i = first_is_instructions ? 1 : 0; i < messages.size(); ++i) out.push_back(messages[i]);
    return out;
}

api_error both_ways() {
    auto err = api_error::bad_request("send either previous_response_id or x-session-id, not both", "invalid_request");
    err.param = "previous_response_id";
    return err;
}

// The instructions' system message, taken out of the body (empty when there are none).
json::array take_instructions(json::object& chat, rw::request_view const& v) {
    json::array out;
    auto const* ins = v.echo.if_contains("instructions");
    auto& messages = chat.at("messages").get_array();
    if (ins && ins->is_string() && !messages.empty()) {
        out.push_back(messages[0]);
        messages.erase(messages.begin());
    }
    return out;
}

void put_first(json::object& chat, json::array lead) {
    auto& messages = chat.at("messages").get_array();
    messages.insert(messages.begin(), lead.begin(), lead.end());
}

json::object deleted_json(std::string const& id) {
    json::object o;
    o["id"] = id;
    o["object"] = "response";
    o["deleted"] = true;
    return o;
}

// The input items page: newest first unless order=asc, `limit` (1..100, 20), after an item id.
std::variant<json::object, api_error> items_page(json::array const& items, inbound_request const& req) {
    std::size_t limit = 20;
    if (auto l = query_param(req, "limit")) {
        char* end = nullptr;
        auto n = std::strtol(l->c_str(), &end, 10);
        if (l->empty() || *end || n < 1 || n > 100) return api_error::bad_request("limit: must be 1 to 100", "invalid_limit");
        limit = static_cast<std::size_t>(n);
    }
    bool asc = false;
    if (auto o = query_param(req, "order")) {
        if (*o != "asc" && *o != "desc") return api_error::bad_request("order: must be asc or desc", "invalid_order");
        asc = *o == "asc";
    }
    std::vector<json::value const*> ordered;
    for (auto const& it : items) ordered.push_back(&it);
    if (!asc) std::reverse(ordered.begin(), ordered.end());
    std::size_t start = 0;
    if (auto after = query_param(req, "after")) {
        start = ordered.size();
        for (std::size_t i = 0; i < ordered.size(); ++i) {
            auto const* o = ordered[i]->if_object();
            auto const* id = o ? o->if_contains("id") : nullptr;
            if (id && id->is_string() && id->get_string() == *after) start = i + 1;
        }
    }
    json::array data;
    for (std::size_t i = start; i < ordered.size() && data.size() < limit; ++i) data.push_back(*ordered[i]);
    json::object page;
    page["object"] = "list";
    page["has_more"] = start + data.size() < ordered.size();
    page["first_id"] = data.empty() ? json::value(nullptr) : data.front().at("id");
    page["last_id"] = data.empty() ? json::value(nullptr) : data.back().at("id");
    page["data"] = std::move(data);
    return page;
}

}  // namespace

asio::awaitable<void> create_response(api_request& r) {
    auto in = co_await parse_model_body(r);
    if (!in) co_return;
    auto id = new_response_id();
    auto catalog = r.app.injected();  // kept while the request runs: the offer points into it
    auto offer = offer_of(r.app, *catalog->source);
    auto t = rw::to_chat(*in, id, offer);
    if (auto* err = std::get_if<api_error>(&t)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto& tr = std::get<rw::translated>(t);
    to_store keep;
    keep.owner = session_owner(r);
    keep.store = tr.view.store;
    keep.input_items = tr.view.input_items;
    if (!tr.view.previous_response_id.empty()) {
        auto prev = co_await r.app.responses->get(tr.view.previous_response_id, keep.owner, policy::unix_now_ms());
        if (auto* err = std::get_if<api_error>(&prev)) {
            auto e = *err;
            if (e.status == 404) e.param = "previous_response_id";
            co_await reply_error(r, e);
            co_return;
        }
        continue_from(std::get<sessions::stored_response>(prev).conversation, tr.chat, tr.view);
    }
    // A server-side session (x-session-id) keeps the conversation instead; the request's
    // instructions are sent first every time and never stored in it.
    session_hold hold;
    session_hold* held = nullptr;
    if (auto sid = r.req.header("x-session-id"); !sid.empty()) {
        if (!tr.view.previous_response_id.empty()) {
            co_await reply_error(r, both_ways());
            co_return;
        }
        auto instructions = take_instructions(tr.chat, tr.view);
        auto err = co_await open_session(r, sid, tr.chat, hold, nullptr);
        if (err) {
            co_await reply_error(r, *err);
            co_return;
        }
        held = &hold;
        put_first(tr.chat, std::move(instructions));
    }
    auto approved = settle_approvals(tr.chat.at("messages").get_array(), tr.view,
                                     r.app.cfg.agent_loop.limits.max_tool_calls_per_turn);
    if (auto* err = std::get_if<api_error>(&approved)) {
        if (held) co_await hold.svc->release(hold.t);
        co_await reply_error(r, *err);
        co_return;
    }
    auto& settled = std::get<approvals>(approved);
    // On a session the declines are part of what this request adds (they follow its history).
    if (held)
        hold.incoming.insert(hold.incoming.begin(), settled.declined.begin(), settled.declined.end());
    // What a follow-up continues: the stored conversation, then this request's own messages (its
    // instructions are not carried over; system and developer messages of its input are).
    keep.conversation = without_instructions(tr.chat.at("messages").get_array(), tr.view);
    r.rec.model = std::string(tr.chat.at("model").get_string());
    r.rec.stream = tr.view.stream;
    r.req.body.clear();  // what runs is the translation, not the client's bytes

    responses_channel channel(r, id, tr.view, keep, offer);
    api_request rr{r.app, r.services, r.req, channel, r.cancel, r.rec, r.headers, r.params, r.guard_scope,
                   std::move(r.access_scope)};
    chat_run how;
    how.stream = tr.view.stream;
    how.hold = held;
    how.hybrid = false;  // the stored conversation has the loop's own turns (mcp_call items)
    how.observer = &channel;
    how.run_first = std::move(settled.run);
    std::unordered_set<std::string> offered, hand_back;
    if (tr.view.mcp_servers) {
        how.mcp_servers = &*tr.view.mcp_servers;
        for (auto const& [name, ref] : tr.view.mcp_tools) {
            offered.insert(name);
            if (ref.approval) hand_back.insert(name);
        }
        how.mcp_tools = &offered;
        how.hand_back = &hand_back;
        how.on_offered = [&channel](std::vector<std::string> const& names) { channel.offered(names); };
    }
    std::exception_ptr failed;
    try {
        co_await run_chat(rr, tr.chat, how);
    } catch (...) {
        failed = std::current_exception();
    }
    r.access_scope = std::move(rr.access_scope);  // the leases and the spend are settled by the caller
    r.guard_scope = std::move(rr.guard_scope);
    // Not stored (an error, a cancelled request): the session's lease goes back all the same.
    if (held) co_await hold.svc->release(hold.t);
    if (failed) std::rethrow_exception(failed);
}

asio::awaitable<void> get_response(api_request& r) {
    auto got = co_await r.app.responses->get(std::string(r.param("id")), session_owner(r), policy::unix_now_ms());
    if (auto* err = std::get_if<api_error>(&got)) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, json::serialize(std::get<sessions::stored_response>(got).response));
}

asio::awaitable<void> delete_response(api_request& r) {
    auto id = std::string(r.param("id"));
    auto err = co_await r.app.responses->erase(id, session_owner(r), policy::unix_now_ms());
    if (err) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, json::serialize(deleted_json(id)));
}

asio::awaitable<void> response_input_items(api_request& r) {
    auto got = co_await r.app.responses->get(std::string(r.param("id")), session_owner(r), policy::unix_now_ms());
    if (auto* err = std::get_if<api_error>(&got)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto page = items_page(std::get<sessions::stored_response>(got).input_items, r.req);
    if (auto* err = std::get_if<api_error>(&page)) {
        co_await reply_error(r, *err);
        co_return;
    }
    co_await reply_json(r, json::serialize(std::get<json::object>(page)));
}

}  // namespace toolgate::gateway::api
