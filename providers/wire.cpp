#include "providers/wire.hpp"

#include "common/resilience.hpp"
#include "common/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <unordered_map>

namespace toolgate::providers {

api_error map_upstream_status(std::string const& provider_name, int status, std::string_view body,
                              std::string_view retry_after) {
    std::string upstream_message;
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (!ec && v.is_object()) {
        if (auto const* e = v.get_object().if_contains("error")) {
            if (e->is_object()) {
                if (auto const* m = e->get_object().if_contains("message"); m && m->is_string())
                    upstream_message = std::string(m->get_string());
            } else if (e->is_string()) {
                upstream_message = std::string(e->get_string());
            }
        } else if (v.is_array() && !v.get_array().empty()) {
            // (Gemini sometimes wraps its error object in an array.)
        }
    }
    if (upstream_message.size() > 1000) upstream_message.resize(1000);
    std::string prefix = "upstream provider '" + provider_name + "'";
    api_error out;
    switch (status) {
        case 400:
        case 404:
        case 413:
        case 422:
            out = {status == 422 ? 400 : status, "invalid_request_error", "upstream_rejected",
                   prefix + " rejected the request" + (upstream_message.empty() ? "" : ": " + upstream_message)};
            break;
        case 401:
        case 403:
            out = api_error::upstream(502, prefix + " refused the gateway's credentials (status " + std::to_string(status) + ")",
                                      "upstream_auth_failed");
            break;
        case 429:
            out = {429, "rate_limit_error", "upstream_rate_limited",
                   prefix + " is rate limiting" + (upstream_message.empty() ? "" : ": " + upstream_message)};
            break;
        case 503:
        case 529:  // Anthropic: overloaded
            out = api_error::upstream(503, prefix + " is overloaded or unavailable (status " + std::to_string(status) + ")",
                                      "upstream_unavailable");
            break;
        default:
            out = api_error::upstream(502, prefix + " failed with status " + std::to_string(status));
    }
    // Retry-After is passed on for rate limits and overload only, and only when it is plainly a
    // number of seconds or an HTTP date (no header injection through it).
    if ((out.status == 429 || out.status == 503) && !retry_after.empty() && retry_after.size() <= 64 &&
        retry_after.find_first_of("\r\n") == std::string_view::npos)
        out.retry_after = std::string(retry_after);
    return out;
}

void note_upstream(int& status_out, std::optional<std::chrono::milliseconds>& retry_out, int status,
                   std::string_view retry_after, std::string_view retry_after_ms) {
    status_out = status;
    if (retry_after.empty() && retry_after_ms.empty()) return;
    auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    retry_out = resilience::parse_retry_after(retry_after, retry_after_ms, now.count());
}

api_error wire_format::decode_error(int status, std::string_view body, std::string_view retry_after) const {
    return map_upstream_status(name_, status, body, retry_after);
}

std::optional<api_error> wire_format::encode_embeddings(json::object const&, native_request&) const {
    return api_error::bad_request("provider '" + name_ + "' has no embeddings", "embeddings_unsupported");
}

decoded wire_format::decode_embeddings(std::string_view, std::string const&) const {
    decoded d;
    d.error = api_error::bad_request("provider '" + name_ + "' has no embeddings", "embeddings_unsupported");
    return d;
}

namespace {
api_error no_images(std::string const& name) {
    return api_error::bad_request("provider '" + name + "' does not serve /v1/images/generations; route this model to "
                                      "an OpenAI-compatible or a Gemini provider",
                                  "unsupported_for_provider");
}
}  // namespace

std::optional<api_error> wire_format::encode_images(json::object const&, native_request&) const { return no_images(name_); }

decoded wire_format::decode_images(std::string_view, std::string const&) const {
    decoded d;
    d.error = no_images(name_);
    return d;
}

std::optional<api_error> wire_format::encode_embeddings_calls(json::object const& body, std::vector<native_request>& out) const {
    native_request nr;
    if (auto err = encode_embeddings(body, nr)) return err;
    out.push_back(std::move(nr));
    return std::nullopt;
}

decoded wire_format::decode_embeddings_calls(std::vector<std::string> const& bodies, std::string const& model) const {
    return decode_embeddings(bodies.empty() ? std::string_view() : std::string_view(bodies.front()), model);
}

namespace wire {

std::optional<api_error> embedding_inputs(json::object const& body, std::string const& provider, std::size_t max_inputs,
                                          std::vector<std::string>& out) {
    auto const* in = body.if_contains("input");
    if (in && in->is_string()) {
        out.emplace_back(in->get_string());
    } else if (in && in->is_array() && !in->get_array().empty()) {
        for (auto const& x : in->get_array()) {
            if (!x.is_string())
                return api_error::bad_request("provider '" + provider + "' embeds text only: 'input' must be strings",
                                              "unsupported_for_provider");
            out.emplace_back(x.get_string());
        }
    } else {
        return api_error::bad_request("'input' must be a string or a non-empty array of strings", "invalid_input");
    }
    if (out.size() > max_inputs)
        return api_error::bad_request("provider '" + provider + "' takes at most " + std::to_string(max_inputs) +
                                          " inputs in one embeddings request",
                                      "too_many_inputs");
    return std::nullopt;
}

void embeddings_to_base64(json::object& list) {
    auto* data = list.if_contains("data");
    if (!data || !data->is_array()) return;
    for (auto& item : data->get_array()) {
        auto* o = item.if_object();
        auto* e = o ? o->if_contains("embedding") : nullptr;
        if (!e || !e->is_array()) continue;
        std::string raw;
        raw.reserve(e->get_array().size() * 4);
        for (auto const& x : e->get_array()) {
            float f = x.is_number() ? static_cast<float>(x.to_number<double>()) : 0.0f;
            std::uint32_t bits;
            std::memcpy(&bits, &f, 4);
            for (int k = 0; k < 4; ++k) raw.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
        }
        *e = base64(raw);
    }
}

std::string text_of(json::value const* content) {
    if (content == nullptr || content->is_null()) return {};
    if (content->is_string()) return std::string(content->get_string());
    std::string out;
    if (content->is_array()) {
        for (auto const& part : content->get_array()) {
            auto const* o = part.if_object();
            if (!o) continue;
            auto const* t = o->if_contains("text");
            if (t && t->is_string()) {
                if (!out.empty()) out.push_back('\n');
                out.append(t->get_string());
            }
        }
    }
    return out;
}

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

json::object chunk(std::string const& id, json::value const& created, std::string const& model, json::object delta,
                   json::value finish_reason) {
    return json::object{{"id", id},
                        {"object", "chat.completion.chunk"},
                        {"created", created},
                        {"model", model},
                        {"choices", json::array{json::object{{"index", 0},
                                                             {"delta", std::move(delta)},
                                                             {"logprobs", nullptr},
                                                             {"finish_reason", std::move(finish_reason)}}}}};
}

json::object usage_json(usage const& u) {
    return json::object{{"prompt_tokens", u.prompt_tokens},
                        {"completion_tokens", u.completion_tokens},
                        {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json::object usage_chunk(std::string const& id, json::value const& created, std::string const& model, usage const& u) {
    return json::object{{"id", id},          {"object", "chat.completion.chunk"}, {"created", created},
                        {"model", model},    {"choices", json::array()},          {"usage", usage_json(u)}};
}

std::string_view str(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

std::int64_t num(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    if (!v) return 0;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), INT64_MAX));
    // Only doubles that an int64 holds are converted (the rest, NaN included, would be undefined).
    if (v->is_double() && v->get_double() > -9.2e18 && v->get_double() < 9.2e18) return static_cast<std::int64_t>(v->get_double());
    return 0;
}

std::optional<std::string> user_parts(json::value const* content, std::function<void(std::string_view)> const& text,
                                      std::function<std::optional<std::string>(std::string_view url)> const& image) {
    if (!content || content->is_null()) return std::nullopt;
    if (content->is_string()) {
        text(content->get_string());
        return std::nullopt;
    }
    if (!content->is_array()) return "message content must be a string or an array of parts";
    for (auto const& p : content->get_array()) {
        auto const* po = p.if_object();
        if (!po) return "content parts must be objects";
        auto type = str(*po, "type");
        if (type == "text") {
            text(str(*po, "text"));
        } else if (type == "image_url") {
            auto const* iu = po->if_contains("image_url");
            if (auto err = image(iu && iu->is_object() ? str(iu->get_object(), "url") : std::string_view())) return err;
        } else {
            return "content part type '" + std::string(type) + "' is not supported";
        }
    }
    return std::nullopt;
}

std::optional<json::value> answer_value(std::string_view body, std::string const& provider, decoded& d) {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    if (!ec && v.is_object()) return v;
    d.error = api_error::upstream(502, "upstream provider '" + provider + "' returned a malformed response");
    d.error->detail = "unparseable body: " + std::string(body.substr(0, 200));
    return std::nullopt;
}

json::object openai_tool_call(std::string_view id, std::string_view name, json::value const* input) {
    return json::object{{"id", id},
                        {"type", "function"},
                        {"function", json::object{{"name", name}, {"arguments", input ? json::serialize(*input) : std::string("{}")}}}};
}

std::optional<std::pair<std::string, std::string>> data_url(std::string_view url) {
    if (!url.starts_with("data:")) return std::nullopt;
    auto comma = url.find(',');
    auto semi = url.find(";base64");
    if (comma == std::string_view::npos || semi == std::string_view::npos || semi > comma) return std::nullopt;
    return std::pair{std::string(url.substr(5, semi - 5)), std::string(url.substr(comma + 1))};
}

json::object arguments_object(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text.empty() ? std::string_view("{}") : text, ec);
    if (ec || !v.is_object()) return json::object();
    return std::move(v.get_object());
}

json::array stop_sequences(json::object const& body) {
    json::array seqs;
    if (auto const* s = body.if_contains("stop"); s && !s->is_null()) {
        if (s->is_string()) seqs.push_back(*s);
        else if (s->is_array()) seqs = s->get_array();
    }
    return seqs;
}

std::optional<std::int64_t> max_tokens(json::object const& body) {
    for (char const* k : {"max_completion_tokens", "max_tokens"})
        if (auto const* v = body.if_contains(k); v && v->is_int64() && v->get_int64() > 0) return v->get_int64();
    return std::nullopt;
}

std::optional<std::string> read_chat(json::object const& body, chat_view& out) {
    if (auto const* n = body.if_contains("n"); n && n->is_number() && n->to_number<double>() > 1)
        return "'n' greater than 1 is not supported";
    auto const* msgs = body.if_contains("messages");
    if (!msgs || !msgs->is_array()) return "'messages' must be an array";
    std::unordered_map<std::string, std::string> call_names;  // tool_call id -> function name
    for (auto const& mv : msgs->get_array()) {
        auto const* m = mv.if_object();
        if (!m) return "every message must be an object";
        auto role = str(*m, "role");
        auto const* content = m->if_contains("content");
        message_view v;
        v.content = content;
        if (role == "system" || role == "developer") {
            auto text = text_of(content);
            if (!text.empty()) out.system += (out.system.empty() ? "" : "\n\n") + text;
            continue;
        } else if (role == "user") {
            v.who = message_view::role::user;
        } else if (role == "assistant") {
            v.who = message_view::role::assistant;
            v.text = text_of(content);
            if (auto const* tc = m->if_contains("tool_calls"); tc && tc->is_array()) {
                for (auto const& c : tc->get_array()) {
                    auto const* co = c.if_object();
                    auto const* fn = co ? co->if_contains("function") : nullptr;
                    if (!fn || !fn->is_object()) return "tool_calls entries need a function";
                    auto const& f = fn->get_object();
                    tool_call_view call{std::string(str(*co, "id")), std::string(str(f, "name")),
                                        arguments_object(str(f, "arguments"))};
                    call_names[call.id] = call.name;
                    v.calls.push_back(std::move(call));
                }
            }
        } else if (role == "tool") {
            v.who = message_view::role::tool;
            v.text = text_of(content);
            v.tool_call_id = std::string(str(*m, "tool_call_id"));
            if (auto it = call_names.find(v.tool_call_id); it != call_names.end()) v.tool_name = it->second;
        } else {
            return "message role '" + std::string(role) + "' is not supported";
        }
        out.messages.push_back(std::move(v));
    }
    if (out.messages.empty()) return "at least one user or assistant message is needed";
    if (auto const* tools = body.if_contains("tools"); tools && tools->is_array()) {
        for (auto const& t : tools->get_array()) {
            auto const* fn = t.is_object() ? t.get_object().if_contains("function") : nullptr;
            if (!fn || !fn->is_object()) return "only function tools are supported";
            auto const& f = fn->get_object();
            out.tools.push_back({str(f, "name"), str(f, "description"), f.if_contains("parameters")});
        }
    }
    if (auto const* tc = body.if_contains("tool_choice"); tc && !tc->is_null()) {
        if (tc->is_string()) {
            auto c = tc->get_string();
            out.tool_choice = c == "required" ? chat_view::choice::required
                              : c == "none"   ? chat_view::choice::none
                                              : chat_view::choice::automatic;
        } else if (tc->is_object()) {
            auto const* fn = tc->get_object().if_contains("function");
            out.tool_choice = chat_view::choice::named;
            out.choice_name = fn && fn->is_object() ? str(fn->get_object(), "name") : std::string_view();
        }
    }
    if (auto const* p = body.if_contains("parallel_tool_calls"); p && p->is_bool()) out.parallel_tool_calls = p->get_bool();
    return std::nullopt;
}

void append_turn(json::array& turns, std::string_view role, std::string_view items_key, json::array items) {
    if (items.empty()) return;
    if (!turns.empty() && str(turns.back().as_object(), "role") == role) {
        auto& existing = turns.back().as_object().at(items_key).as_array();
        for (auto& x : items) existing.push_back(std::move(x));
        return;
    }
    json::object turn;
    turn["role"] = role;
    turn[items_key] = std::move(items);
    turns.push_back(std::move(turn));
}

}  // namespace wire

}  // namespace toolgate::providers
