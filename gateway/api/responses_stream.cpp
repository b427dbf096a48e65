// The Responses API ingress's translation and its stream (responses_wire.hpp), this part without I/O:
// a chat stream as the Responses event stream.
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

#include "gateway/api/responses_items.hpp"
#include "gateway/api/responses_wire.hpp"

namespace toolgate::gateway::responses_wire {

namespace json = boost::json;
using namespace detail;

// ---- the stream ----

stream_translator::stream_translator(std::string id, request_view const& v, std::int64_t created_at)
    : id_(std::move(id)), view_(v), created_at_(created_at) {
    if (auto const* m = v.echo.if_contains("model"); m && m->is_string()) model_ = std::string(m->get_string());
}

json::object stream_translator::snapshot(std::string_view status) const {
    json::object r = view_.echo;
    r["id"] = id_;
    r["object"] = "response";
    r["created_at"] = created_at_;
    r["status"] = status;
    r["error"] = nullptr;
    r["incomplete_details"] = nullptr;
    r["model"] = model_;
    r["output"] = json::array();
    return r;
}

void stream_translator::emit(std::string_view type, json::object data, std::string& out) {
    data["type"] = type;
    data["sequence_number"] = seq_++;
    out += "event: ";
    out += type;
    out += "\ndata: ";
    out += json::serialize(data);
    out += "\n\n";
}

void stream_translator::start(std::string& out) {
    if (started_) return;
    started_ = true;
    json::object e;
    e["response"] = snapshot("in_progress");
    emit("response.created", e, out);
    emit("response.in_progress", std::move(e), out);
    drain(out);
}

void stream_translator::list_tools(json::object item) {
    mcp_event e{mcp_event::kind::list_tools, std::move(item), {}, {}, {}, {}};
    pending_.push_back(std::move(e));
}

void stream_translator::call_started(std::string call_id, std::string_view exposed, std::string arguments) {
    mcp_event e{mcp_event::kind::started, {}, std::move(call_id), std::string(exposed), std::move(arguments), {}};
    pending_.push_back(std::move(e));
}

void stream_translator::call_finished(std::string_view call_id, std::string output, std::string error) {
    mcp_event e{mcp_event::kind::finished, {}, std::string(call_id), {}, std::move(output), std::move(error)};
    pending_.push_back(std::move(e));
}

void stream_translator::drain(std::string& out) {
    if (!started_ || failed_) return;
    auto events = std::move(pending_);
    pending_.clear();
    for (auto& e : events) show(e, out);
}

// One piece of the gateway's MCP activity as output items and their events.
void stream_translator::show(mcp_event& e, std::string& out) {
    auto item_event = [&](std::string_view type, std::string const& id, int index) {
        json::object d;
        d["item_id"] = id;
        d["output_index"] = index;
        emit(type, std::move(d), out);
    };
    auto remember = [&](int index, json::object item) {
        done_items_.resize(std::max<std::size_t>(done_items_.size(), index + 1));
        done_items_[index] = std::move(item);
    };
    if (e.what == mcp_event::kind::list_tools) {
        close_message(out);
        int index = next_output_++;
        auto id = std::string(str_of(e.item, "id"));
        json::object added;
        added["output_index"] = index;
        added["item"] = e.item;
        emit("response.output_item.added", std::move(added), out);
        item_event("response.mcp_list_tools.in_progress", id, index);
        item_event("response.mcp_list_tools.completed", id, index);
        json::object done;
        done["output_index"] = index;
        done["item"] = e.item;
        emit("response.output_item.done", std::move(done), out);
        remember(index, std::move(e.item));
    } else if (e.what == mcp_event::kind::started) {
        close_message(out);
        mcp_running run;
        run.output_index = next_output_++;
        run.ref = tool_ref(view_, e.exposed);
        run.arguments = e.text;
        auto item = mcp_call_item(e.call_id, run.ref, run.arguments, "", "");
        item["output"] = nullptr;
        item["status"] = "in_progress";
        mark_approved(item, e.call_id, view_);
        auto id = std::string(str_of(item, "id"));
        json::object added;
        added["output_index"] = run.output_index;
        added["item"] = std::move(item);
        emit("response.output_item.added", std::move(added), out);
        item_event("response.mcp_call.in_progress", id, run.output_index);
        json::object args;
        args["item_id"] = id;
        args["output_index"] = run.output_index;
        args["delta"] = run.arguments;
        emit("response.mcp_call_arguments.delta", args, out);
        args.erase("delta");
        args["arguments"] = run.arguments;
        emit("response.mcp_call_arguments.done", std::move(args), out);
        running_[e.call_id] = std::move(run);
    } else {
        auto it = running_.find(e.call_id);
        if (it == running_.end()) return;
        auto& run = it->second;
        auto item = mcp_call_item(e.call_id, run.ref, run.arguments, e.text, e.error);
        mark_approved(item, e.call_id, view_);
        auto id = std::string(str_of(item, "id"));
        item_event(e.error.empty() ? "response.mcp_call.completed" : "response.mcp_call.failed", id, run.output_index);
        json::object done;
        done["output_index"] = run.output_index;
        done["item"] = item;
        emit("response.output_item.done", std::move(done), out);
        remember(run.output_index, std::move(item));
        running_.erase(it);
    }
}

void stream_translator::close_message(std::string& out) {
    if (message_index_ < 0) return;
    json::object part;
    part["type"] = "output_text";
    part["text"] = text_;
    part["annotations"] = json::array();
    json::object d;
    d["item_id"] = message_id_;
    d["output_index"] = message_index_;
    d["content_index"] = 0;
    d["text"] = text_;
    d["logprobs"] = json::array();
    emit("response.output_text.done", std::move(d), out);
    json::object pd;
    pd["item_id"] = message_id_;
    pd["output_index"] = message_index_;
    pd["content_index"] = 0;
    pd["part"] = std::move(part);
    emit("response.content_part.done", std::move(pd), out);
    auto item = output_message(message_id_, text_, "completed");
    json::object od;
    od["output_index"] = message_index_;
    od["item"] = item;
    emit("response.output_item.done", std::move(od), out);
    done_items_.resize(std::max<std::size_t>(done_items_.size(), message_index_ + 1));
    done_items_[message_index_] = std::move(item);
    message_index_ = -1;
}

void stream_translator::chunk(json::object const& c, std::string& out) {
    if (auto m = str_of(c, "model"); !m.empty()) model_ = std::string(m);
    if (auto const* u = c.if_contains("usage"); u && u->is_object()) {
        auto const& uo = u->get_object();
        if (auto const* p = uo.if_contains("prompt_tokens"); p && p->is_int64()) input_tokens_ = p->get_int64();
        if (auto const* k = uo.if_contains("completion_tokens"); k && k->is_int64()) output_tokens_ = k->get_int64();
    }
    start(out);
    auto const* cs = c.if_contains("choices");
    if (!cs || !cs->is_array() || cs->get_array().empty()) return;
    auto const* choice = cs->get_array()[0].if_object();
    if (!choice) return;
    auto const* dv = choice->if_contains("delta");
    if (auto const* d = dv ? dv->if_object() : nullptr) {
        if (auto const* t = d->if_contains("content"); t && t->is_string() && !t->get_string().empty()) {
            if (message_index_ < 0) {
                message_index_ = next_output_++;
                message_id_ = "msg_" + suffix_of(id_) + (message_index_ ? "_" + std::to_string(message_index_) : "");
                text_.clear();
                json::object item;
                item["id"] = message_id_;
                item["type"] = "message";
                item["status"] = "in_progress";
                item["role"] = "assistant";
                item["content"] = json::array();
                json::object a;
                a["output_index"] = message_index_;
                a["item"] = std::move(item);
                emit("response.output_item.added", std::move(a), out);
                json::object part;
                part["type"] = "output_text";
                part["text"] = "";
                part["annotations"] = json::array();
                json::object pa;
                pa["item_id"] = message_id_;
                pa["output_index"] = message_index_;
                pa["content_index"] = 0;
                pa["part"] = std::move(part);
                emit("response.content_part.added", std::move(pa), out);
            }
            text_ += t->get_string();
            json::object e;
            e["item_id"] = message_id_;
            e["output_index"] = message_index_;
            e["content_index"] = 0;
            e["delta"] = t->get_string();
            e["logprobs"] = json::array();
            emit("response.output_text.delta", std::move(e), out);
        }
        if (auto const* tcs = d->if_contains("tool_calls"); tcs && tcs->is_array()) {
            for (auto const& tv : tcs->get_array()) {
                auto const* tc = tv.if_object();
                if (!tc) continue;
                auto idx = calls_index_.index_of(*tc);
                auto const* fv = tc->if_contains("function");
                auto const* fn = fv ? fv->if_object() : nullptr;
                auto it = calls_.find(idx);
                if (it == calls_.end()) {
                    close_message(out);
                    call_item ci;
                    ci.call_id = std::string(str_of(*tc, "id"));
                    ci.id = "fc_" + ci.call_id;
                    ci.name = fn ? std::string(str_of(*fn, "name")) : std::string();
                    auto ref = view_.mcp_tools.find(ci.name);
                    ci.approval = ref != view_.mcp_tools.end() && ref->second.approval;
                    // An approval request is shown at the end, where it takes its place.
                    ci.output_index = ci.approval ? -1 : next_output_++;
                    if (ci.approval) {
                        ci.id = approval_id(ci.call_id);
                    } else {
                        json::object a;
                        a["output_index"] = ci.output_index;
                        a["item"] = function_item(ci.call_id, ci.name, "", "in_progress");
                        emit("response.output_item.added", std::move(a), out);
                    }
                    it = calls_.emplace(idx, std::move(ci)).first;
                }
                auto args = fn ? str_of(*fn, "arguments") : std::string_view();
                if (args.empty()) continue;
                it->second.arguments += args;
                if (it->second.approval) continue;  // shown whole at the end
                json::object e;
                e["item_id"] = it->second.id;
                e["output_index"] = it->second.output_index;
                e["delta"] = args;
                emit("response.function_call_arguments.delta", std::move(e), out);
            }
        }
    }
    if (auto f = str_of(*choice, "finish_reason"); !f.empty()) finish_reason_ = std::string(f);
}

void stream_translator::item(chat_stream_item const& it, std::string& out) {
    using kind = chat_stream_item::kind;
    if (ended_) return;
    if (it.what == kind::comment) {
        start(out);
        drain(out);
        out += ": keep-alive\n\n";  // clients skip comment lines
    } else if (it.what == kind::done) {
        close(out);
    } else if (it.what == kind::error) {
        // After the stream began: an error event (the SDKs raise it), and nothing after it; its
        // fields flat and in "error", as the API sends them.
        auto type = str_of(it.object, "type");
        auto code = str_of(it.object, "code");
        auto message = str_of(it.object, "message");
        if (type.empty()) type = "server_error";
        if (code.empty()) code = "server_error";
        if (message.empty()) message = "the stream failed";
        json::object err;
        err["type"] = type;
        err["code"] = code;
        err["message"] = message;
        err["param"] = nullptr;
        json::object ev;
        ev["code"] = code;
        ev["message"] = message;
        ev["param"] = nullptr;
        ev["error"] = std::move(err);
        emit("error", std::move(ev), out);
        failed_ = ended_ = true;
    } else {
        chunk(it.object, out);
    }
}

std::string stream_translator::feed(std::string_view bytes) {
    std::string out;
    std::vector<chat_stream_item> items;
    reader_.feed(bytes, items);
    for (auto const& it : items) item(it, out);
    return out;
}

std::string stream_translator::finish() {
    std::string out;
    std::vector<chat_stream_item> items;
    reader_.finish(items);
    for (auto const& it : items) item(it, out);
    close(out);
    return out;
}

void stream_translator::close(std::string& out) {
    if (ended_) return;
    ended_ = true;
    start(out);
    drain(out);
    while (!running_.empty()) {  // a call that never finished (the loop was cut short) ends failed
        mcp_event e{mcp_event::kind::finished, {}, running_.begin()->first, {}, {}, "the call did not finish"};
        show(e, out);
    }
    close_message(out);
    for (auto& [idx, c] : calls_) {
        if (c.approval) {
            // A call of a tool that needs approval: the request the client answers.
            c.output_index = next_output_++;
            auto item = approval_item(c.call_id, tool_ref(view_, c.name), c.arguments);
            json::object a;
            a["output_index"] = c.output_index;
            a["item"] = item;
            emit("response.output_item.added", std::move(a), out);
            json::object od;
            od["output_index"] = c.output_index;
            od["item"] = item;
            emit("response.output_item.done", std::move(od), out);
            done_items_.resize(std::max<std::size_t>(done_items_.size(), c.output_index + 1));
            done_items_[c.output_index] = std::move(item);
            continue;
        }
        json::object d;
        d["item_id"] = c.id;
        d["output_index"] = c.output_index;
        d["name"] = c.name;
        d["arguments"] = c.arguments;
        emit("response.function_call_arguments.done", std::move(d), out);
        auto item = function_item(c.call_id, c.name, c.arguments, "completed");
        json::object od;
        od["output_index"] = c.output_index;
        od["item"] = item;
        emit("response.output_item.done", std::move(od), out);
        done_items_.resize(std::max<std::size_t>(done_items_.size(), c.output_index + 1));
        done_items_[c.output_index] = std::move(item);
    }
    auto r = snapshot("completed");
    json::array output;
    for (auto& item : done_items_)
        if (!item.empty()) output.push_back(std::move(item));
    r["output"] = std::move(output);
    r["completed_at"] = created_at_;
    set_status(r, finish_reason_);
    r["usage"] = usage_of(input_tokens_, output_tokens_);
    final_ = r;
    json::object e;
    e["response"] = std::move(r);
    emit(final_.at("status") == "incomplete" ? "response.incomplete" : "response.completed", std::move(e), out);
}

}  // namespace toolgate::gateway::responses_wire
