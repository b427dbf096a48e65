// The Responses API ingress translation (responses_wire.hpp): plain functions, no I/O.
#include "gateway/api/responses_wire.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>

#include "common/json_util.hpp"

namespace toolgate::gateway::responses_wire {

namespace json = boost::json;

namespace {

api_error bad(std::string msg, std::string_view param = {}) {
    auto err = api_error::bad_request(std::move(msg), "invalid_request");
    if (!param.empty()) err.param = std::string(param);
    return err;
}

api_error unsupported(std::string msg, std::string_view param) {
    auto err = api_error::bad_request(std::move(msg), "unsupported_parameter");
    err.param = std::string(param);
    return err;
}

std::string_view str_of(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

std::string suffix_of(std::string const& id) {
    auto u = id.find('_');
    return u == std::string::npos ? id : id.substr(u + 1);
}

json::object text_part(std::string_view type, std::string text) {
    json::object p;
    p["type"] = type;
    p["text"] = std::move(text);
    return p;
}

// A message item's content as a chat message's content (a string when it is all text).
std::variant<json::value, api_error> content_of(json::value const& c, std::string const& where) {
    if (c.is_string()) return json::value(c.get_string());
    if (!c.is_array()) return bad(where + ".content: must be a string or a list of parts", where);
    json::array parts;
    std::string text;
    bool only_text = true;
    std::size_t k = 0;
    for (auto const& pv : c.get_array()) {
        auto pw = where + ".content[" + std::to_string(k++) + "]";
        auto const* p = pv.if_object();
        auto type = p ? str_of(*p, "type") : std::string_view();
        if (type == "input_text" || type == "output_text" || type == "text") {
            auto t = std::string(str_of(*p, "text"));
            text += (text.empty() ? "" : "\n") + t;
            parts.push_back(text_part("text", t));
        } else if (type == "input_image") {
            auto url = str_of(*p, "image_url");
            if (url.empty()) return unsupported(pw + ": an image by file_id is not supported; send image_url", pw);
            json::object iu;
            iu["url"] = url;
            if (auto d = str_of(*p, "detail"); !d.empty() && d != "original") iu["detail"] = d;
            json::object part;
            part["type"] = "image_url";
            part["image_url"] = std::move(iu);
            parts.push_back(std::move(part));
            only_text = false;
        } else if (type == "refusal") {
            auto t = std::string(str_of(*p, "refusal"));
            text += (text.empty() ? "" : "\n") + t;
            parts.push_back(text_part("text", t));
        } else {
            return unsupported(pw + ": a '" + std::string(type) + "' part is not supported", pw);
        }
    }
    if (only_text) return json::value(text);
    return json::value(std::move(parts));
}

std::string output_text_of(json::value const& o) {
    if (o.is_string()) return std::string(o.get_string());
    std::string out;
    if (o.is_array())
        for (auto const& pv : o.get_array())
            if (auto const* p = pv.if_object()) {
                if (!out.empty()) out += "\n";
                out += str_of(*p, "text");
            }
    return out;
}

json::object message_item(std::string id, std::string_view role, json::value content) {
    json::object m;
    m["id"] = std::move(id);
    m["type"] = "message";
    m["role"] = role;
    m["content"] = std::move(content);
    return m;
}

// The input as chat messages (appended to `messages`) and as items with ids.
std::optional<api_error> add_input(json::value const& input, std::string const& id, json::array& messages,
                                   json::array& items) {
    std::size_t n = 0;
    auto item_id = [&] { return "item_" + suffix_of(id) + "_" + std::to_string(n++); };
    if (input.is_string()) {
        json::object m;
        m["role"] = "user";
        m["content"] = input.get_string();
        messages.push_back(std::move(m));
        json::array parts;
        parts.push_back(text_part("input_text", std::string(input.get_string())));
        items.push_back(message_item(item_id(), "user", std::move(parts)));
        return std::nullopt;
    }
    if (!input.is_array()) return bad("input: must be a string or a list of items", "input");
    std::size_t i = 0;
    for (auto const& iv : input.get_array()) {
        auto where = "input[" + std::to_string(i++) + "]";
        auto const* it = iv.if_object();
        if (!it) return bad(where + ": must be an object", "input");
        json::object stored = *it;
        if (str_of(stored, "id").empty()) stored["id"] = item_id();
        auto type = str_of(*it, "type");
        auto role = str_of(*it, "role");
        if ((type.empty() || type == "message") && !role.empty()) {
            if (role != "user" && role != "assistant" && role != "system" && role != "developer")
                return bad(where + ".role: must be user, assistant, system or developer", "input");
            auto const* c = it->if_contains("content");
            if (!c) return bad(where + ".content: required", "input");
            auto content = content_of(*c, where);
            if (auto* err = std::get_if<api_error>(&content)) return *err;
            json::object m;
            m["role"] = role;
            m["content"] = std::move(std::get<json::value>(content));
            messages.push_back(std::move(m));
            if (!stored.contains("type")) stored["type"] = "message";
        } else if (type == "function_call") {
            auto call_id = str_of(*it, "call_id");
            auto name = str_of(*it, "name");
            if (call_id.empty() || name.empty()) return bad(where + ": a function_call needs call_id and name", "input");
            json::object fn;
            fn["name"] = name;
            fn["arguments"] = str_of(*it, "arguments");
            json::object call;
            call["id"] = call_id;
            call["type"] = "function";
            call["function"] = std::move(fn);
            // Calls one after another belong to one assistant turn.
            json::object* last = messages.empty() ? nullptr : messages.back().if_object();
            if (last && str_of(*last, "role") == "assistant") {
                auto* tc = last->if_contains("tool_calls");
                if (!tc) {
                    (*last)["tool_calls"] = json::array();
                    tc = last->if_contains("tool_calls");
                }
                tc->get_array().push_back(std::move(call));
            } else {
                json::object m;
                m["role"] = "assistant";
                m["content"] = nullptr;
                json::array calls;
                calls.push_back(std::move(call));
                m["tool_calls"] = std::move(calls);
                messages.push_back(std::move(m));
            }
        } else if (type == "function_call_output") {
            auto call_id = str_of(*it, "call_id");
            if (call_id.empty()) return bad(where + ".call_id: required", "input");
            json::object m;
            m["role"] = "tool";
            m["tool_call_id"] = call_id;
            auto const* o = it->if_contains("output");
            m["content"] = o ? output_text_of(*o) : std::string();
            messages.push_back(std::move(m));
        } else if (type == "reasoning") {
            // A model's earlier reasoning: listed with the input, not sent on to other providers.
        } else {
            return unsupported(where + ": a '" + std::string(type.empty() ? "(no type)" : type) +
                                   "' item is not supported here",
                               "input");
        }
        items.push_back(std::move(stored));
    }
    return std::nullopt;
}

void set_echo_defaults(json::object& e) {
    auto def = [&](char const* k, json::value v) {
        if (!e.contains(k)) e[k] = std::move(v);
    };
    def("instructions", nullptr);
    def("tools", json::array());
    def("tool_choice", "auto");
    def("temperature", 1.0);
    def("top_p", 1.0);
    def("parallel_tool_calls", true);
    def("metadata", json::object());
    json::object fmt;
    fmt["type"] = "text";
    json::object text;
    text["format"] = std::move(fmt);
    def("text", std::move(text));
    def("max_output_tokens", nullptr);
    def("previous_response_id", nullptr);
    def("truncation", "disabled");
    def("user", nullptr);
}

json::object usage_of(std::int64_t in, std::int64_t out) {
    json::object cached;
    cached["cached_tokens"] = 0;
    json::object reasoning;
    reasoning["reasoning_tokens"] = 0;
    json::object u;
    u["input_tokens"] = in;
    u["input_tokens_details"] = std::move(cached);
    u["output_tokens"] = out;
    u["output_tokens_details"] = std::move(reasoning);
    u["total_tokens"] = in + out;
    return u;
}

json::object function_item(std::string_view call_id, std::string_view name, std::string_view arguments,
                           std::string_view status) {
    json::object f;
    f["type"] = "function_call";
    f["id"] = "fc_" + std::string(call_id);
    f["call_id"] = call_id;
    f["name"] = name;
    f["arguments"] = arguments;
    f["status"] = status;
    return f;
}

json::object output_message(std::string const& id, std::string text, std::string_view status) {
    json::object part;
    part["type"] = "output_text";
    part["text"] = std::move(text);
    part["annotations"] = json::array();
    json::array content;
    content.push_back(std::move(part));
    json::object m;
    m["type"] = "message";
    m["id"] = id;
    m["status"] = status;
    m["role"] = "assistant";
    m["content"] = std::move(content);
    return m;
}

// The finish reason as the Response's status and incomplete_details.
void set_status(json::object& r, std::string_view finish) {
    if (finish == "length" || finish == "content_filter") {
        r["status"] = "incomplete";
        json::object d;
        d["reason"] = finish == "length" ? "max_output_tokens" : "content_filter";
        r["incomplete_details"] = std::move(d);
    } else {
        r["status"] = "completed";
        r["incomplete_details"] = nullptr;
    }
}

}  // namespace

std::variant<translated, api_error> to_chat(json::object const& in, std::string const& response_id,
                                            std::vector<std::string> const& mcp_servers) {
    translated out;
    auto& chat = out.chat;
    auto& v = out.view;
    auto model = str_of(in, "model");
    if (model.empty()) return bad("model: required", "model");
    chat["model"] = model;
    v.echo["model"] = model;
    if (auto const* b = in.if_contains("background"); b && b->is_bool() && b->get_bool())
        return unsupported("background: responses run in the foreground here", "background");
    if (auto const* c = in.if_contains("conversation"); c && !c->is_null())
        return unsupported("conversation: use previous_response_id", "conversation");

    json::array messages;
    if (auto const* ins = in.if_contains("instructions"); ins && !ins->is_null()) {
        if (!ins->is_string()) return bad("instructions: must be a string", "instructions");
        json::object sm;
        sm["role"] = "system";
        sm["content"] = ins->get_string();
        messages.push_back(std::move(sm));
        v.echo["instructions"] = *ins;
    }
    auto const* input = in.if_contains("input");
    if (!input || input->is_null()) return bad("input: required", "input");
    if (auto err = add_input(*input, response_id, messages, v.input_items)) return *err;
    if (v.input_items.empty()) return bad("input: must not be empty", "input");
    bool something = false;
    for (auto const& m : messages) something = something || str_of(m.as_object(), "role") != "system";
    if (!something) return bad("input: has no message, call or call output to answer", "input");
    chat["messages"] = std::move(messages);

    if (auto const* t = in.if_contains("tools"); t && !t->is_null()) {
        if (!t->is_array()) return bad("tools: must be a list", "tools");
        json::array tools;
        std::size_t k = 0;
        for (auto const& tv : t->get_array()) {
            auto where = "tools[" + std::to_string(k++) + "]";
            auto const* to = tv.if_object();
            if (!to) return bad(where + ": must be an object", "tools");
            auto type = str_of(*to, "type");
            if (type == "function") {
                auto name = str_of(*to, "name");
                if (name.empty()) return bad(where + ".name: required", "tools");
                json::object fn;
                fn["name"] = name;
                if (auto d = str_of(*to, "description"); !d.empty()) fn["description"] = d;
                if (auto const* p = to->if_contains("parameters"); p && !p->is_null()) fn["parameters"] = *p;
                if (auto const* s = to->if_contains("strict"); s && s->is_bool()) fn["strict"] = *s;
                json::object tool;
                tool["type"] = "function";
                tool["function"] = std::move(fn);
                tools.push_back(std::move(tool));
            } else if (type == "mcp") {
                auto label = std::string(str_of(*to, "server_label"));
                if (auto const* ra = to->if_contains("require_approval");
                    ra && !(ra->is_string() && ra->get_string() == "never"))
                    return unsupported(where + ".require_approval: only \"never\" is supported (toolgate runs its MCP tools "
                                               "under its own policies)",
                                       "tools");
                if (auto const* at = to->if_contains("allowed_tools"); at && !at->is_null())
                    return unsupported(where + ".allowed_tools: not supported yet; limit the tools with a key's mcp_tools",
                                       "tools");
                if (!v.mcp_servers) v.mcp_servers.emplace();
                if (label == "toolgate") {
                    for (auto const& s : mcp_servers) v.mcp_servers->push_back(s);
                } else if (std::find(mcp_servers.begin(), mcp_servers.end(), label) != mcp_servers.end()) {
                    v.mcp_servers->push_back(label);
                } else {
                    return bad(where + ".server_label: '" + label +
                                   "' is not one of the gateway's MCP servers (\"toolgate\" for all of them); toolgate does "
                                   "not connect to servers named in a request",
                               "tools");
                }
            } else {
                return unsupported(where + ": '" + std::string(type) +
                                       "' tools are not supported (function and mcp tools are; the gateway's MCP tools "
                                       "run in its agent loop)",
                                   "tools");
            }
        }
        if (!tools.empty()) chat["tools"] = std::move(tools);
        v.echo["tools"] = *t;
    }
    if (auto const* tc = in.if_contains("tool_choice"); tc && !tc->is_null()) {
        if (tc->is_string()) {
            auto s = tc->get_string();
            if (s != "auto" && s != "none" && s != "required") return bad("tool_choice: must be auto, none or required", "tool_choice");
            chat["tool_choice"] = *tc;
        } else if (auto const* o = tc->if_object(); o && str_of(*o, "type") == "function" && !str_of(*o, "name").empty()) {
            json::object fn;
            fn["name"] = str_of(*o, "name");
            json::object c;
            c["type"] = "function";
            c["function"] = std::move(fn);
            chat["tool_choice"] = std::move(c);
        } else {
            return unsupported("tool_choice: only auto, none, required and {type: function, name} are supported",
                               "tool_choice");
        }
        v.echo["tool_choice"] = *tc;
    }
    if (auto const* t = in.if_contains("text"); t && !t->is_null()) {
        auto const* to = t->if_object();
        auto const* f = to ? to->if_contains("format") : nullptr;
        auto const* fo = f ? f->if_object() : nullptr;
        auto type = fo ? str_of(*fo, "type") : std::string_view("text");
        if (type == "json_object") {
            json::object rf;
            rf["type"] = "json_object";
            chat["response_format"] = std::move(rf);
        } else if (type == "json_schema") {
            auto const* schema = fo->if_contains("schema");
            if (str_of(*fo, "name").empty() || !schema || !schema->is_object())
                return bad("text.format: json_schema needs name and schema", "text");
            json::object js;
            js["name"] = str_of(*fo, "name");
            js["schema"] = *schema;
            if (auto const* s = fo->if_contains("strict"); s && s->is_bool()) js["strict"] = *s;
            if (auto d = str_of(*fo, "description"); !d.empty()) js["description"] = d;
            json::object rf;
            rf["type"] = "json_schema";
            rf["json_schema"] = std::move(js);
            chat["response_format"] = std::move(rf);
        } else if (type != "text") {
            return bad("text.format.type: must be text, json_object or json_schema", "text");
        }
        v.echo["text"] = *t;
    }
    if (auto const* m = in.if_contains("max_output_tokens"); m && !m->is_null()) {
        if (!m->is_int64() || m->get_int64() < 1) return bad("max_output_tokens: must be a whole number >= 1", "max_output_tokens");
        chat["max_tokens"] = *m;
        v.echo["max_output_tokens"] = *m;
    }
    for (char const* k : {"temperature", "top_p"})
        if (auto const* x = in.if_contains(k); x && !x->is_null()) {
            if (!x->is_number()) return bad(std::string(k) + ": must be a number", k);
            chat[k] = *x;
            v.echo[k] = *x;
        }
    if (auto const* p = in.if_contains("parallel_tool_calls"); p && p->is_bool()) {
        if (chat.contains("tools")) chat["parallel_tool_calls"] = *p;
        v.echo["parallel_tool_calls"] = *p;
    }
    if (auto u = str_of(in, "user"); !u.empty()) {
        chat["user"] = u;
        v.echo["user"] = u;
    }
    if (auto const* r = in.if_contains("reasoning"); r && r->is_object()) {
        if (auto e = str_of(r->get_object(), "effort"); !e.empty()) chat["reasoning_effort"] = e;
        v.echo["reasoning"] = *r;
    }
    if (auto const* md = in.if_contains("metadata"); md && md->is_object()) v.echo["metadata"] = *md;
    if (auto const* s = in.if_contains("store"); s && s->is_bool()) v.store = s->get_bool();
    v.echo["store"] = v.store;
    if (auto const* p = in.if_contains("previous_response_id"); p && !p->is_null()) {
        if (!p->is_string() || p->get_string().empty()) return bad("previous_response_id: must be a response id", "previous_response_id");
        v.previous_response_id = std::string(p->get_string());
        v.echo["previous_response_id"] = *p;
    }
    if (auto const* s = in.if_contains("stream"); s && !s->is_null()) {
        if (!s->is_bool()) return bad("stream: must be a boolean", "stream");
        v.stream = s->get_bool();
    }
    chat["stream"] = v.stream;
    if (v.stream) {
        json::object so;
        so["include_usage"] = true;
        chat["stream_options"] = std::move(so);
    }
    set_echo_defaults(v.echo);
    return out;
}

json::object to_response(json::object const& completion, std::string const& id, request_view const& v,
                         std::int64_t created_at) {
    json::object r = v.echo;
    r["id"] = id;
    r["object"] = "response";
    r["created_at"] = created_at;
    r["completed_at"] = created_at;
    r["error"] = nullptr;
    if (auto m = str_of(completion, "model"); !m.empty()) r["model"] = m;
    json::array output;
    std::string finish;
    if (auto const* cs = completion.if_contains("choices"); cs && cs->is_array() && !cs->get_array().empty()) {
        auto const* choice = cs->get_array()[0].if_object();
        auto const* mv = choice ? choice->if_contains("message") : nullptr;
        auto const* m = mv ? mv->if_object() : nullptr;
        if (choice) finish = std::string(str_of(*choice, "finish_reason"));
        if (m) {
            if (auto const* c = m->if_contains("content"); c && c->is_string() && !c->get_string().empty())
                output.push_back(output_message("msg_" + suffix_of(id), std::string(c->get_string()), "completed"));
            if (auto const* tcs = m->if_contains("tool_calls"); tcs && tcs->is_array())
                for (auto const& tc : tcs->get_array()) {
                    auto const* t = tc.if_object();
                    auto const* fn = t ? t->if_contains("function") : nullptr;
                    auto const* f = fn ? fn->if_object() : nullptr;
                    if (!f) continue;
                    output.push_back(function_item(str_of(*t, "id"), str_of(*f, "name"), str_of(*f, "arguments"), "completed"));
                }
        }
    }
    r["output"] = std::move(output);
    set_status(r, finish);
    std::int64_t in = 0, out = 0;
    if (auto const* u = completion.if_contains("usage"); u && u->is_object()) {
        if (auto const* p = u->get_object().if_contains("prompt_tokens"); p && p->is_int64()) in = p->get_int64();
        if (auto const* c = u->get_object().if_contains("completion_tokens"); c && c->is_int64()) out = c->get_int64();
    }
    r["usage"] = usage_of(in, out);
    if (auto const* tg = completion.if_contains("toolgate")) r["toolgate"] = *tg;
    return r;
}

json::array output_messages(json::object const& response) {
    json::array out;
    json::object m;
    m["role"] = "assistant";
    std::string text;
    json::array calls;
    if (auto const* o = response.if_contains("output"); o && o->is_array())
        for (auto const& iv : o->get_array()) {
            auto const* it = iv.if_object();
            if (!it) continue;
            if (str_of(*it, "type") == "message") {
                if (auto const* c = it->if_contains("content")) text += output_text_of(*c);
            } else if (str_of(*it, "type") == "function_call") {
                json::object fn;
                fn["name"] = str_of(*it, "name");
                fn["arguments"] = str_of(*it, "arguments");
                json::object call;
                call["id"] = str_of(*it, "call_id");
                call["type"] = "function";
                call["function"] = std::move(fn);
                calls.push_back(std::move(call));
            }
        }
    m["content"] = text.empty() ? json::value(nullptr) : json::value(text);
    if (!calls.empty()) m["tool_calls"] = std::move(calls);
    if (!text.empty() || m.contains("tool_calls")) out.push_back(std::move(m));
    return out;
}

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

std::int64_t stream_translator::call_index(json::object const& tc) {
    // A fragment's index; without one (some OpenAI-compatible servers), a new id is a new call.
    if (auto const* i = tc.if_contains("index"); i && (i->is_int64() || i->is_uint64()))
        return i->is_int64() ? i->get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(i->get_uint64(), 1u << 30));
    auto id = str_of(tc, "id");
    if (!id.empty() && id != last_call_id_) {
        last_call_id_ = std::string(id);
        last_index_ = calls_.empty() ? 0 : calls_.rbegin()->first + 1;
    }
    return last_index_;
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
                auto idx = call_index(*tc);
                auto const* fv = tc->if_contains("function");
                auto const* fn = fv ? fv->if_object() : nullptr;
                auto it = calls_.find(idx);
                if (it == calls_.end()) {
                    close_message(out);
                    call_item ci;
                    ci.call_id = std::string(str_of(*tc, "id"));
                    ci.id = "fc_" + ci.call_id;
                    ci.name = fn ? std::string(str_of(*fn, "name")) : std::string();
                    ci.output_index = next_output_++;
                    json::object a;
                    a["output_index"] = ci.output_index;
                    a["item"] = function_item(ci.call_id, ci.name, "", "in_progress");
                    emit("response.output_item.added", std::move(a), out);
                    it = calls_.emplace(idx, std::move(ci)).first;
                }
                auto args = fn ? str_of(*fn, "arguments") : std::string_view();
                if (args.empty()) continue;
                it->second.arguments += args;
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
    close_message(out);
    for (auto& [idx, c] : calls_) {
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
