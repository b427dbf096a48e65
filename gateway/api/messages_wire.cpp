// The Messages API ingress translation (messages_wire.hpp): plain functions, no I/O.
#include "gateway/api/messages_wire.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <optional>

#include "common/json_util.hpp"
#include "guardrails/token_estimate.hpp"

namespace toolgate::gateway::messages_wire {

namespace json = boost::json;

namespace {

api_error bad(std::string msg, std::string_view param = {}) {
    auto err = api_error::bad_request(std::move(msg), "invalid_request");
    if (!param.empty()) err.param = std::string(param);
    return err;
}

std::string_view str_of(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

// Text blocks (or a string) as one text; `what` names the field in errors.
std::variant<std::string, api_error> text_of(json::value const& v, std::string const& what) {
    if (v.is_string()) return std::string(v.get_string());
    if (!v.is_array()) return bad(what + ": must be a string or a list of text blocks", what);
    std::string out;
    for (auto const& b : v.get_array()) {
        auto const* o = b.if_object();
        if (!o || str_of(*o, "type") != "text" || !o->contains("text") || !o->at("text").is_string())
            return bad(what + ": only text blocks are allowed here", what);
        if (!out.empty()) out += "\n";
        out += o->at("text").get_string();
    }
    return out;
}

// A user message's image block as a chat image part.
std::variant<json::object, api_error> image_part(json::object const& block, std::string const& where) {
    auto const* src = block.if_contains("source");
    auto const* s = src ? src->if_object() : nullptr;
    if (!s) return bad(where + ".source: required", where);
    std::string url;
    if (str_of(*s, "type") == "base64") {
        auto media = str_of(*s, "media_type");
        auto data = str_of(*s, "data");
        if (media.empty() || data.empty()) return bad(where + ".source: base64 needs media_type and data", where);
        url = "data:" + std::string(media) + ";base64," + std::string(data);
    } else if (str_of(*s, "type") == "url") {
        url = std::string(str_of(*s, "url"));
        if (url.empty()) return bad(where + ".source.url: required", where);
    } else {
        return bad(where + ".source.type: must be base64 or url", where);
    }
    json::object image_url;
    image_url["url"] = url;
    json::object part;
    part["type"] = "image_url";
    part["image_url"] = std::move(image_url);
    return part;
}

json::object text_part(std::string text) {
    json::object p;
    p["type"] = "text";
    p["text"] = std::move(text);
    return p;
}

// A tool_result block as a chat tool message.
std::variant<json::object, api_error> tool_message(json::object const& block, std::string const& where) {
    auto id = str_of(block, "tool_use_id");
    if (id.empty()) return bad(where + ".tool_use_id: required", where);
    std::string text;
    if (auto const* c = block.if_contains("content"); c && !c->is_null()) {
        if (c->is_string()) {
            text = c->get_string();
        } else if (c->is_array()) {
            for (auto const& part : c->get_array()) {
                auto const* p = part.if_object();
                auto type = p ? str_of(*p, "type") : std::string_view();
                if (type == "text") {
                    if (!text.empty()) text += "\n";
                    text += str_of(*p, "text");
                } else if (type == "image") {
                    if (!text.empty()) text += "\n";
                    text += "(the tool returned an image, which is not passed on)";
                } else {
                    return bad(where + ".content: only text and image blocks are allowed", where);
                }
            }
        } else {
            return bad(where + ".content: must be a string or a list of blocks", where);
        }
    }
    if (auto const* e = block.if_contains("is_error"); e && e->is_bool() && e->get_bool()) text = "Error: " + text;
    json::object m;
    m["role"] = "tool";
    m["tool_call_id"] = id;
    m["content"] = std::move(text);
    return m;
}

// One Messages message as one or more chat messages, appended to `out`.
std::optional<api_error> add_message(json::object const& m, std::size_t i, json::array& out) {
    auto where = "messages[" + std::to_string(i) + "]";
    auto role = str_of(m, "role");
    if (role != "user" && role != "assistant") return bad(where + ".role: must be user or assistant", where);
    auto const* content = m.if_contains("content");
    if (!content || (!content->is_string() && !content->is_array()))
        return bad(where + ".content: must be a string or a list of content blocks", where);
    if (content->is_string()) {
        json::object cm;
        cm["role"] = role;
        cm["content"] = content->get_string();
        out.push_back(std::move(cm));
        return std::nullopt;
    }
    json::array parts, tool_calls, tool_results;
    bool only_text = true;
    std::string text;
    std::size_t k = 0;
    for (auto const& b : content->get_array()) {
        auto bw = where + ".content[" + std::to_string(k++) + "]";
        auto const* block = b.if_object();
        if (!block) return bad(bw + ": must be a content block", bw);
        auto type = str_of(*block, "type");
        if (type == "text") {
            auto t = std::string(str_of(*block, "text"));
            parts.push_back(text_part(t));
            text += (text.empty() ? "" : "\n") + t;
        } else if (type == "image" && role == "user") {
            auto p = image_part(*block, bw);
            if (auto* err = std::get_if<api_error>(&p)) return *err;
            parts.push_back(std::move(std::get<json::object>(p)));
            only_text = false;
        } else if (type == "document" && role == "user") {
            auto const* src = block->if_contains("source");
            auto const* s = src ? src->if_object() : nullptr;
            if (!s || str_of(*s, "type") != "text")
                return bad(bw + ": only documents with a text source are supported", bw);
            auto t = std::string(str_of(*s, "data"));
            parts.push_back(text_part(t));
            text += (text.empty() ? "" : "\n") + t;
        } else if (type == "tool_result" && role == "user") {
            auto tm = tool_message(*block, bw);
            if (auto* err = std::get_if<api_error>(&tm)) return *err;
            tool_results.push_back(std::move(std::get<json::object>(tm)));
        } else if (type == "tool_use" && role == "assistant") {
            auto id = str_of(*block, "id");
            auto name = str_of(*block, "name");
            if (id.empty() || name.empty()) return bad(bw + ": tool_use needs id and name", bw);
            json::object fn;
            fn["name"] = name;
            auto const* input = block->if_contains("input");
            fn["arguments"] = input && input->is_object() ? json::serialize(*input) : std::string("{}");
            json::object call;
            call["id"] = id;
            call["type"] = "function";
            call["function"] = std::move(fn);
            tool_calls.push_back(std::move(call));
        } else if ((type == "thinking" || type == "redacted_thinking") && role == "assistant") {
            continue;  // the model's earlier reasoning: not sent on to other providers
        } else {
            return bad(bw + ": a " + std::string(type.empty() ? "block without a type" : type) +
                           " block is not supported in a " + std::string(role) + " message",
                       bw);
        }
    }
    // Tool results answer the assistant turn before: they come first, as tool messages.
    for (auto& t : tool_results) out.push_back(std::move(t));
    if (parts.empty() && tool_calls.empty()) return std::nullopt;
    json::object cm;
    cm["role"] = role;
    if (role == "assistant") {
        cm["content"] = text.empty() ? json::value(nullptr) : json::value(text);
        if (!tool_calls.empty()) cm["tool_calls"] = std::move(tool_calls);
    } else if (only_text) {
        cm["content"] = text;
    } else {
        cm["content"] = std::move(parts);
    }
    out.push_back(std::move(cm));
    return std::nullopt;
}

std::variant<json::value, api_error> tool_choice(json::value const& v) {
    auto const* o = v.if_object();
    auto type = o ? str_of(*o, "type") : std::string_view();
    if (type == "auto") return json::value("auto");
    if (type == "any") return json::value("required");
    if (type == "none") return json::value("none");
    if (type == "tool") {
        auto name = str_of(*o, "name");
        if (name.empty()) return bad("tool_choice.name: required with type tool", "tool_choice");
        json::object fn;
        fn["name"] = name;
        json::object out;
        out["type"] = "function";
        out["function"] = std::move(fn);
        return json::value(std::move(out));
    }
    return bad("tool_choice.type: must be auto, any, tool or none", "tool_choice");
}

std::string stop_reason_of(std::string_view finish) {
    if (finish == "length") return "max_tokens";
    if (finish == "tool_calls" || finish == "function_call") return "tool_use";
    if (finish == "content_filter") return "refusal";
    return "end_turn";
}

void write_event(std::string_view type, json::object const& data, std::string& out) {
    out += "event: ";
    out += type;
    out += "\ndata: ";
    out += json::serialize(data);
    out += "\n\n";
}

}  // namespace

std::variant<json::object, api_error> to_chat(json::object const& in) {
    static constexpr std::string_view known[] = {"model",     "messages", "max_tokens", "system",        "tools",
                                                 "tool_choice", "stop_sequences", "stream", "temperature", "top_p",
                                                 "top_k",     "metadata", "thinking",   "service_tier"};
    for (auto const& kv : in) {
        bool ok = false;
        for (auto k : known) ok = ok || kv.key() == k;
        if (kv.key() == "mcp_servers")
            return bad("mcp_servers: the MCP connector is not used here; toolgate offers its own MCP servers' tools "
                       "and runs them itself",
                       "mcp_servers");
        if (!ok) return bad(std::string(kv.key()) + ": Extra inputs are not permitted", kv.key());
    }
    json::object out;
    auto model = str_of(in, "model");
    if (model.empty()) return bad("model: Field required", "model");
    out["model"] = model;
    auto const* mt = in.if_contains("max_tokens");
    if (!mt || !mt->is_int64() || mt->get_int64() < 1) return bad("max_tokens: Field required (a whole number >= 1)", "max_tokens");
    out["max_tokens"] = mt->get_int64();

    json::array messages;
    if (auto const* s = in.if_contains("system"); s && !s->is_null()) {
        auto text = text_of(*s, "system");
        if (auto* err = std::get_if<api_error>(&text)) return *err;
        json::object sm;
        sm["role"] = "system";
        sm["content"] = std::move(std::get<std::string>(text));
        messages.push_back(std::move(sm));
    }
    auto const* ms = in.if_contains("messages");
    if (!ms || !ms->is_array() || ms->get_array().empty()) return bad("messages: Field required (a non-empty list)", "messages");
    std::size_t i = 0;
    for (auto const& m : ms->get_array()) {
        auto const* mo = m.if_object();
        if (!mo) return bad("messages[" + std::to_string(i) + "]: must be an object", "messages");
        if (auto err = add_message(*mo, i++, messages)) return *err;
    }
    out["messages"] = std::move(messages);

    if (auto const* t = in.if_contains("tools"); t && !t->is_null()) {
        if (!t->is_array()) return bad("tools: must be a list", "tools");
        json::array tools;
        std::size_t k = 0;
        for (auto const& tv : t->get_array()) {
            auto where = "tools[" + std::to_string(k++) + "]";
            auto const* to = tv.if_object();
            if (!to) return bad(where + ": must be an object", "tools");
            auto type = str_of(*to, "type");
            if (!type.empty() && type != "custom")
                return bad(where + ": '" + std::string(type) +
                               "' is one of Anthropic's server tools; toolgate offers its MCP servers' tools instead",
                           "tools");
            auto name = str_of(*to, "name");
            if (name.empty()) return bad(where + ".name: required", "tools");
            json::object fn;
            fn["name"] = name;
            if (auto d = str_of(*to, "description"); !d.empty()) fn["description"] = d;
            auto const* schema = to->if_contains("input_schema");
            if (!schema || !schema->is_object()) return bad(where + ".input_schema: required (an object)", "tools");
            fn["parameters"] = *schema;
            json::object tool;
            tool["type"] = "function";
            tool["function"] = std::move(fn);
            tools.push_back(std::move(tool));
        }
        if (!tools.empty()) out["tools"] = std::move(tools);
    }
    if (auto const* tc = in.if_contains("tool_choice"); tc && !tc->is_null()) {
        auto c = tool_choice(*tc);
        if (auto* err = std::get_if<api_error>(&c)) return *err;
        out["tool_choice"] = std::move(std::get<json::value>(c));
        auto const* dp = tc->get_object().if_contains("disable_parallel_tool_use");
        if (dp && dp->is_bool() && dp->get_bool() && out.contains("tools")) out["parallel_tool_calls"] = false;
    }
    if (auto const* s = in.if_contains("stop_sequences"); s && !s->is_null()) {
        if (!s->is_array()) return bad("stop_sequences: must be a list of strings", "stop_sequences");
        for (auto const& x : s->get_array())
            if (!x.is_string()) return bad("stop_sequences: must be a list of strings", "stop_sequences");
        if (!s->get_array().empty()) out["stop"] = *s;
    }
    for (char const* k : {"temperature", "top_p"})
        if (auto const* v = in.if_contains(k); v && !v->is_null()) {
            if (!v->is_number()) return bad(std::string(k) + ": must be a number", k);
            out[k] = *v;
        }
    if (auto const* md = in.if_contains("metadata"); md && md->is_object())
        if (auto u = str_of(md->get_object(), "user_id"); !u.empty()) out["user"] = u;
    if (auto const* s = in.if_contains("stream"); s && !s->is_null()) {
        if (!s->is_bool()) return bad("stream: must be a boolean", "stream");
        if (s->get_bool()) {
            out["stream"] = true;
            json::object so;
            so["include_usage"] = true;
            out["stream_options"] = std::move(so);
        }
    }
    return out;
}

json::object to_message(json::object const& completion, std::string const& id) {
    json::array content;
    std::string finish;
    if (auto const* cs = completion.if_contains("choices"); cs && cs->is_array() && !cs->get_array().empty()) {
        auto const* choice = cs->get_array()[0].if_object();
        auto const* mv = choice ? choice->if_contains("message") : nullptr;
        auto const* m = mv ? mv->if_object() : nullptr;
        if (choice) finish = std::string(str_of(*choice, "finish_reason"));
        if (m) {
            if (auto const* c = m->if_contains("content"); c && c->is_string() && !c->get_string().empty())
                content.push_back(text_part(std::string(c->get_string())));
            if (auto const* tcs = m->if_contains("tool_calls"); tcs && tcs->is_array()) {
                for (auto const& tc : tcs->get_array()) {
                    auto const* t = tc.if_object();
                    if (!t) continue;
                    auto const* fn = t->if_contains("function");
                    auto const* f = fn ? fn->if_object() : nullptr;
                    json::object block;
                    block["type"] = "tool_use";
                    block["id"] = str_of(*t, "id");
                    block["name"] = f ? str_of(*f, "name") : std::string_view();
                    json::value input = json::object();
                    if (f) {
                        boost::system::error_code ec;
                        auto parsed = parse_bounded(str_of(*f, "arguments"), ec);
                        if (!ec && parsed.is_object()) input = std::move(parsed);
                    }
                    block["input"] = std::move(input);
                    content.push_back(std::move(block));
                }
            }
        }
    }
    json::object usage;
    usage["input_tokens"] = 0;
    usage["output_tokens"] = 0;
    if (auto const* u = completion.if_contains("usage"); u && u->is_object()) {
        if (auto const* p = u->get_object().if_contains("prompt_tokens"); p && p->is_number()) usage["input_tokens"] = *p;
        if (auto const* c = u->get_object().if_contains("completion_tokens"); c && c->is_number()) usage["output_tokens"] = *c;
    }
    json::object out;
    out["id"] = id;
    out["type"] = "message";
    out["role"] = "assistant";
    out["model"] = str_of(completion, "model");
    out["content"] = std::move(content);
    out["stop_reason"] = stop_reason_of(finish);
    out["stop_sequence"] = nullptr;
    out["usage"] = std::move(usage);
    // What toolgate's agent loop ran (iterations, tool calls): kept, SDKs ignore fields they do not know.
    if (auto const* tg = completion.if_contains("toolgate")) out["toolgate"] = *tg;
    return out;
}

std::string_view error_type(int status) {
    switch (status) {
        case 401: return "authentication_error";
        case 402: return "billing_error";
        case 403: return "permission_error";
        case 404: return "not_found_error";
        case 413: return "request_too_large";
        case 429: return "rate_limit_error";
        case 503:
        case 529: return "overloaded_error";
        case 504: return "timeout_error";
        default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

std::string error_body(int status, std::string_view openai_body) {
    std::string message(openai_body);
    boost::system::error_code ec;
    auto v = parse_bounded(openai_body, ec);
    if (!ec && v.is_object()) {
        auto const* e = v.get_object().if_contains("error");
        auto const* eo = e ? e->if_object() : nullptr;
        if (eo) message = std::string(str_of(*eo, "message"));
    }
    json::object err;
    err["type"] = error_type(status);
    err["message"] = message;
    json::object out;
    out["type"] = "error";
    out["error"] = std::move(err);
    return json::serialize(out);
}

std::int64_t count_tokens(json::object const& chat_body) {
    std::size_t n = 0;
    if (auto const* ms = chat_body.if_contains("messages"); ms && ms->is_array())
        for (auto const& m : ms->get_array()) {
            auto const* o = m.if_object();
            if (!o) continue;
            n += 4;  // each message's role and framing
            if (auto const* c = o->if_contains("content"); c && !c->is_null())
                n += guardrails::estimate_tokens(c->is_string() ? std::string(c->get_string()) : json::serialize(*c));
            if (auto const* tc = o->if_contains("tool_calls")) n += guardrails::estimate_tokens(json::serialize(*tc));
        }
    if (auto const* t = chat_body.if_contains("tools")) n += guardrails::estimate_tokens(json::serialize(*t));
    return static_cast<std::int64_t>(n);
}

// ---- the stream ----

void stream_translator::start(std::string& out) {
    if (started_) return;
    started_ = true;
    json::object usage;
    usage["input_tokens"] = input_tokens_;
    usage["output_tokens"] = 0;
    json::object m;
    m["id"] = id_;
    m["type"] = "message";
    m["role"] = "assistant";
    m["model"] = model_;
    m["content"] = json::array();
    m["stop_reason"] = nullptr;
    m["stop_sequence"] = nullptr;
    m["usage"] = std::move(usage);
    json::object e;
    e["type"] = "message_start";
    e["message"] = std::move(m);
    write_event("message_start", e, out);
}

void stream_translator::open_block(json::object block, std::string& out) {
    close_block(out);
    block_ = next_block_++;
    json::object e;
    e["type"] = "content_block_start";
    e["index"] = block_;
    e["content_block"] = std::move(block);
    write_event("content_block_start", e, out);
}

void stream_translator::close_block(std::string& out) {
    if (block_ < 0) return;
    json::object e;
    e["type"] = "content_block_stop";
    e["index"] = block_;
    write_event("content_block_stop", e, out);
    block_ = -1;
    text_open_ = false;
}

void stream_translator::chunk(json::object const& c, std::string& out) {
    if (model_.empty()) model_ = std::string(str_of(c, "model"));
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
            if (!text_open_) {
                json::object block;
                block["type"] = "text";
                block["text"] = "";
                open_block(std::move(block), out);
                text_open_ = true;
            }
            json::object delta;
            delta["type"] = "text_delta";
            delta["text"] = t->get_string();
            json::object e;
            e["type"] = "content_block_delta";
            e["index"] = block_;
            e["delta"] = std::move(delta);
            write_event("content_block_delta", e, out);
        }
        if (auto const* tcs = d->if_contains("tool_calls"); tcs && tcs->is_array()) {
            for (auto const& tv : tcs->get_array()) {
                auto const* tc = tv.if_object();
                if (!tc) continue;
                auto idx = calls_index_.index_of(*tc);
                auto const* fv = tc->if_contains("function");
                auto const* fn = fv ? fv->if_object() : nullptr;
                auto it = tool_blocks_.find(idx);
                if (it == tool_blocks_.end()) {
                    json::object block;
                    block["type"] = "tool_use";
                    block["id"] = str_of(*tc, "id");
                    block["name"] = fn ? str_of(*fn, "name") : std::string_view();
                    block["input"] = json::object();
                    open_block(std::move(block), out);
                    it = tool_blocks_.emplace(idx, block_).first;
                }
                auto args = fn ? str_of(*fn, "arguments") : std::string_view();
                if (args.empty()) continue;
                json::object delta;
                delta["type"] = "input_json_delta";
                delta["partial_json"] = args;
                json::object e;
                e["type"] = "content_block_delta";
                e["index"] = it->second;
                e["delta"] = std::move(delta);
                write_event("content_block_delta", e, out);
            }
        }
    }
    if (auto f = str_of(*choice, "finish_reason"); !f.empty()) stop_reason_ = stop_reason_of(f);
}

void stream_translator::item(chat_stream_item const& it, std::string& out) {
    using kind = chat_stream_item::kind;
    if (ended_) return;
    if (it.what == kind::comment) {
        json::object ping;
        ping["type"] = "ping";
        write_event("ping", ping, out);
    } else if (it.what == kind::done) {
        close(out);
    } else if (it.what == kind::error) {
        // An error after the stream began: Anthropic's error event, and nothing after it.
        auto type = str_of(it.object, "type");
        auto code = str_of(it.object, "code");
        int status = 500;
        if (type == "rate_limit_error" || code == "rate_limit_exceeded") status = 429;
        else if (type == "invalid_request_error") status = 400;
        else if (code == "overloaded" || code == "upstream_unavailable") status = 503;
        auto message = str_of(it.object, "message");
        json::object err;
        err["type"] = error_type(status);
        err["message"] = message.empty() ? std::string_view("the stream failed") : message;
        json::object ev;
        ev["type"] = "error";
        ev["error"] = std::move(err);
        write_event("error", ev, out);
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
    close_block(out);
    json::object delta;
    delta["stop_reason"] = stop_reason_;
    delta["stop_sequence"] = nullptr;
    json::object usage;
    usage["input_tokens"] = input_tokens_;
    usage["output_tokens"] = output_tokens_;
    json::object e;
    e["type"] = "message_delta";
    e["delta"] = std::move(delta);
    e["usage"] = std::move(usage);
    write_event("message_delta", e, out);
    json::object stop;
    stop["type"] = "message_stop";
    write_event("message_stop", stop, out);
}

}  // namespace toolgate::gateway::messages_wire
