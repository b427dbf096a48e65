// The response cache's pure parts (cache_parts.hpp).
#include "gateway/policy/cache_parts.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "agentloop/loop.hpp"
#include "common/ids.hpp"
#include "providers/wire.hpp"
#include "state/key_store.hpp"

namespace toolgate::gateway::policy::cache_detail {

namespace {

void canonical_number(double d, std::string& out) {
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9007199254740992.0) {
        out += std::to_string(static_cast<std::int64_t>(d));
        return;
    }
    if (!std::isfinite(d)) {
        // A number too large for a double parses as infinity: written as one that parses back so.
        // (NaN never comes out of a parser; it is kept apart from every number all the same.)
        out += std::isnan(d) ? "NaN" : (d > 0 ? "1e999" : "-1e999");
        return;
    }
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
    out.append(buf, ec == std::errc() ? end : buf);
}

bool decides_answer(std::string_view key) {
    return key != "model" && key != "stream" && key != "stream_options" && key != "user" && key != "metadata" &&
           key != "store";
}

using providers::wire::str;

std::int64_t index_of(json::object const& choice) {
    auto const* i = choice.if_contains("index");
    if (i && i->is_int64()) return i->get_int64();
    if (i && i->is_uint64()) return static_cast<std::int64_t>(i->get_uint64());
    return 0;
}

// One choice of a stream, put back together.
struct choice_state {
    bool content_seen = false;
    std::string content;
    bool refusal_seen = false;
    std::string refusal;
    agentloop::call_assembler calls;
    json::value finish = nullptr;
};

json::object assembled_message(choice_state const& c) {
    json::object m;
    m["role"] = "assistant";
    if (c.content_seen) m["content"] = c.content;
    else m["content"] = nullptr;
    if (c.refusal_seen) m["refusal"] = c.refusal;
    if (!c.calls.calls().empty()) {
        json::array calls;
        for (auto const& a : c.calls.calls()) {
            json::object fn;
            fn["name"] = a.name;
            fn["arguments"] = a.arguments;
            json::object call;
            call["id"] = a.id;
            call["type"] = "function";
            call["function"] = std::move(fn);
            calls.push_back(std::move(call));
        }
        m["tool_calls"] = std::move(calls);
    }
    return m;
}

json::object response_from_chunks(cached_answer const& a) {
    std::map<std::int64_t, choice_state> choices;
    json::object out;
    for (auto const& text : a.chunks) {
        boost::system::error_code ec;
        auto v = json::parse(text, ec);
        if (ec || !v.is_object()) continue;
        auto& chunk = v.get_object();
        if (out.empty()) {
            out["id"] = str(chunk, "id");
            out["object"] = "chat.completion";
            if (auto const* c = chunk.if_contains("created")) out["created"] = *c;
            out["model"] = str(chunk, "model");
            if (auto const* f = chunk.if_contains("system_fingerprint")) out["system_fingerprint"] = *f;
        }
        auto const* list = chunk.if_contains("choices");
        if (!list || !list->is_array()) continue;
        for (auto const& cv : list->get_array()) {
            auto const* c = cv.if_object();
            if (!c) continue;
            auto& st = choices[index_of(*c)];
            if (auto const* d = c->if_contains("delta"); d && d->is_object()) {
                auto const& delta = d->get_object();
                if (auto const* t = delta.if_contains("content"); t && t->is_string()) {
                    st.content_seen = true;
                    st.content += t->get_string();
                }
                if (auto const* t = delta.if_contains("refusal"); t && t->is_string()) {
                    st.refusal_seen = true;
                    st.refusal += t->get_string();
                }
                if (auto const* tc = delta.if_contains("tool_calls"); tc && tc->is_array())
                    for (auto const& f : tc->get_array())
                        if (f.is_object()) st.calls.add(f.get_object());
            }
            if (auto const* f = c->if_contains("finish_reason"); f && f->is_string()) st.finish = *f;
        }
    }
    json::array list;
    for (auto const& [index, st] : choices) {
        json::object c;
        c["index"] = index;
        c["message"] = assembled_message(st);
        c["logprobs"] = nullptr;
        c["finish_reason"] = st.finish;
        list.push_back(std::move(c));
    }
    if (out.empty()) out["object"] = "chat.completion";
    out["choices"] = std::move(list);
    return out;
}

// A whole answer's choices as chunks: one with the message, one with the finish reason.
void chunks_from_response(json::object const& r, std::vector<std::string>& out) {
    std::string id(str(r, "id"));
    std::string model(str(r, "model"));
    json::value created = nullptr;
    if (auto const* c = r.if_contains("created")) created = *c;
    auto const* fp = r.if_contains("system_fingerprint");
    auto emit = [&](std::int64_t index, json::object delta, json::value finish) {
        auto chunk = providers::wire::chunk(id, created, model, std::move(delta), std::move(finish));
        chunk["choices"].get_array()[0].get_object()["index"] = index;
        if (fp) chunk["system_fingerprint"] = *fp;
        out.push_back(json::serialize(chunk));
    };
    auto const* choices = r.if_contains("choices");
    if (!choices || !choices->is_array()) return;
    for (auto const& cv : choices->get_array()) {
        auto const* c = cv.if_object();
        if (!c) continue;
        auto index = index_of(*c);
        json::object delta;
        delta["role"] = "assistant";
        if (auto const* m = c->if_contains("message"); m && m->is_object()) {
            auto const& msg = m->get_object();
            if (auto const* t = msg.if_contains("content"); t && t->is_string()) delta["content"] = *t;
            if (auto const* t = msg.if_contains("refusal"); t && t->is_string()) delta["refusal"] = *t;
            if (auto const* tc = msg.if_contains("tool_calls"); tc && tc->is_array() && !tc->get_array().empty()) {
                json::array calls;
                std::int64_t i = 0;
                for (auto const& call : tc->get_array()) {
                    if (!call.is_object()) continue;
                    json::object f = call.get_object();
                    f["index"] = i++;
                    calls.push_back(std::move(f));
                }
                delta["tool_calls"] = std::move(calls);
            }
        }
        emit(index, std::move(delta), nullptr);
        json::value finish = nullptr;
        if (auto const* f = c->if_contains("finish_reason")) finish = *f;
        emit(index, json::object(), std::move(finish));
    }
}

// Tool-call ids (assistant tool_calls[].id, tool messages' tool_call_id) as "#0", "#1", ... in order
// of first appearance.
void normalize_call_ids(json::array& messages) {
    std::vector<std::string> seen;
    auto ordinal = [&seen](json::string const& id) {
        for (std::size_t i = 0; i < seen.size(); ++i)
            if (seen[i] == id) return "#" + std::to_string(i);
        seen.emplace_back(id);
        return "#" + std::to_string(seen.size() - 1);
    };
    for (auto& mv : messages) {
        auto* m = mv.if_object();
        if (!m) continue;
        if (auto* calls = m->if_contains("tool_calls"); calls && calls->is_array())
            for (auto& cv : calls->get_array())
                if (auto* c = cv.if_object())
                    if (auto* id = c->if_contains("id"); id && id->is_string()) *id = ordinal(id->get_string());
        if (auto* id = m->if_contains("tool_call_id"); id && id->is_string()) *id = ordinal(id->get_string());
    }
}

}  // namespace

void canonical_json(json::value const& v, std::string& out) {
    switch (v.kind()) {
        case json::kind::null: out += "null"; return;
        case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
        case json::kind::int64: out += std::to_string(v.get_int64()); return;
        case json::kind::uint64: out += std::to_string(v.get_uint64()); return;
        case json::kind::double_: canonical_number(v.get_double(), out); return;
        case json::kind::string: out += json::serialize(v); return;
        case json::kind::array: {
            out.push_back('[');
            bool first = true;
            for (auto const& e : v.get_array()) {
                if (!first) out.push_back(',');
                first = false;
                canonical_json(e, out);
            }
            out.push_back(']');
            return;
        }
        case json::kind::object: {
            auto const& o = v.get_object();
            std::vector<json::key_value_pair const*> items;
            items.reserve(o.size());
            for (auto const& kv : o) items.push_back(&kv);
            std::sort(items.begin(), items.end(), [](auto a, auto b) { return a->key() < b->key(); });
            out.push_back('{');
            bool first = true;
            for (auto const* kv : items) {
                if (!first) out.push_back(',');
                first = false;
                out += json::serialize(json::string_view(kv->key()));
                out.push_back(':');
                canonical_json(kv->value(), out);
            }
            out.push_back('}');
            return;
        }
    }
}

std::string request_fingerprint(json::object const& body, bool without_last_user) {
    json::object kept;
    kept.reserve(body.size());
    for (auto const& kv : body)
        if (decides_answer(kv.key())) kept.emplace(kv.key(), kv.value());
    if (auto* m = kept.if_contains("messages"); m && m->is_array()) {
        normalize_call_ids(m->get_array());
        if (without_last_user && !m->get_array().empty())
            if (auto* last = m->get_array().back().if_object()) last->erase("content");
    }
    std::string out;
    out.reserve(256);
    canonical_json(kept, out);
    return out;
}

std::string short_hash(std::string_view text) { return state::sha256_hex(text).substr(0, 16); }

std::string entry_key(std::string_view scope_label, std::string_view requested_model, std::string_view route,
                      std::string_view fingerprint) {
    std::string all;
    all.reserve(scope_label.size() + route.size() + fingerprint.size() + 8);
    all.append("v1\n").append(scope_label).append("\n").append(route).append("\n").append(fingerprint);
    return short_hash(scope_label) + ":" + short_hash(requested_model) + ":" + state::sha256_hex(all);
}

std::string encode(cached_answer const& a) {
    json::object o;
    o["v"] = 1;
    o["provider"] = a.provider;
    o["model"] = a.model;
    json::array u;
    u.push_back(a.tokens.prompt_tokens);
    u.push_back(a.tokens.completion_tokens);
    u.push_back(a.tokens.present);
    o["usage"] = std::move(u);
    if (!a.chunks.empty()) {
        json::array c;
        c.reserve(a.chunks.size());
        for (auto const& t : a.chunks) c.emplace_back(t);
        o["chunks"] = std::move(c);
    } else {
        o["response"] = a.response;
    }
    return json::serialize(o);
}

std::optional<cached_answer> decode(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    auto const& o = v.get_object();
    auto const* ver = o.if_contains("v");
    if (!ver || !ver->is_int64() || ver->get_int64() != 1) return std::nullopt;
    cached_answer a;
    a.provider = str(o, "provider");
    a.model = str(o, "model");
    // They become response headers: nothing that could end a header line.
    auto printable = [](std::string const& t) {
        return t.size() <= 256 && std::none_of(t.begin(), t.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
    };
    if (!printable(a.provider) || !printable(a.model)) return std::nullopt;
    if (auto const* u = o.if_contains("usage"); u && u->is_array() && u->get_array().size() == 3) {
        auto const& arr = u->get_array();
        a.tokens.prompt_tokens = providers::token_count(&arr[0]);
        a.tokens.completion_tokens = providers::token_count(&arr[1]);
        a.tokens.present = arr[2].is_bool() && arr[2].get_bool();
    }
    if (auto const* c = o.if_contains("chunks"); c && c->is_array()) {
        for (auto const& t : c->get_array())
            if (t.is_string()) a.chunks.emplace_back(t.get_string());
        if (a.chunks.empty()) return std::nullopt;
    } else if (auto const* r = o.if_contains("response"); r && r->is_string() && !r->get_string().empty()) {
        a.response = r->get_string();
    } else {
        return std::nullopt;
    }
    return a;
}

std::vector<std::string> replay_chunks(cached_answer const& a, bool include_usage) {
    std::vector<std::string> out;
    std::string id, model;
    json::value created = nullptr;
    if (!a.chunks.empty()) {
        out = a.chunks;
        boost::system::error_code ec;
        auto first = json::parse(a.chunks.front(), ec);
        if (!ec && first.is_object()) {
            id = str(first.get_object(), "id");
            model = str(first.get_object(), "model");
            if (auto const* c = first.get_object().if_contains("created")) created = *c;
        }
    } else {
        boost::system::error_code ec;
        auto r = json::parse(a.response, ec);
        if (ec || !r.is_object()) return out;
        chunks_from_response(r.get_object(), out);
        id = str(r.get_object(), "id");
        model = str(r.get_object(), "model");
        if (auto const* c = r.get_object().if_contains("created")) created = *c;
    }
    if (include_usage) out.push_back(json::serialize(providers::wire::usage_chunk(id, created, model, a.tokens)));
    return out;
}

json::object replay_response(cached_answer const& a) {
    json::object out;
    if (a.chunks.empty()) {
        boost::system::error_code ec;
        auto r = json::parse(a.response, ec);
        if (!ec && r.is_object()) out = std::move(r.get_object());
        return out;
    }
    out = response_from_chunks(a);
    if (a.tokens.present) out["usage"] = providers::wire::usage_json(a.tokens);
    return out;
}

std::size_t choices_asked(json::object const& body) {
    auto const* n = body.if_contains("n");
    if (n && n->is_int64() && n->get_int64() > 1 && n->get_int64() <= 128) return static_cast<std::size_t>(n->get_int64());
    return 1;
}

bool refresh_call_ids(json::object& o, std::vector<std::pair<std::string, std::string>>& renamed) {
    bool changed = false;
    auto fresh = [&renamed](std::string_view old) {
        for (auto const& [from, to] : renamed)
            if (from == old) return to;
        renamed.emplace_back(std::string(old), "call_" + fast_hex(24));
        return renamed.back().second;
    };
    auto* choices = o.if_contains("choices");
    if (!choices || !choices->is_array()) return false;
    for (auto& cv : choices->get_array()) {
        auto* c = cv.if_object();
        if (!c) continue;
        for (auto const* part : {"delta", "message"}) {
            auto* m = c->if_contains(part);
            auto* calls = m && m->is_object() ? m->get_object().if_contains("tool_calls") : nullptr;
            if (!calls || !calls->is_array()) continue;
            for (auto& call : calls->get_array())
                if (auto* id = call.is_object() ? call.get_object().if_contains("id") : nullptr; id && id->is_string()) {
                    *id = fresh(id->get_string());
                    changed = true;
                }
        }
    }
    return changed;
}

bool storable(json::object const& response, std::size_t expected_choices) {
    auto const* choices = response.if_contains("choices");
    if (!choices || !choices->is_array() || choices->get_array().size() != expected_choices) return false;
    json::value const* first = nullptr;
    for (auto const& cv : choices->get_array()) {
        auto const* c = cv.if_object();
        if (!c) return false;
        auto finish = str(*c, "finish_reason");
        if (finish != "stop" && finish != "tool_calls") return false;
        auto const* m = c->if_contains("message");
        if (!m) return false;
        if (!first) first = m;
        else if (*first != *m) return false;  // several different answers: a replay would choose one
    }
    return true;
}

bool usage_only(json::object const& chunk) {
    auto const* c = chunk.if_contains("choices");
    bool no_choices = !c || (c->is_array() && c->get_array().empty());
    auto const* u = chunk.if_contains("usage");
    return no_choices && u && u->is_object();
}

std::optional<std::string> semantic_text(json::object const& body, std::size_t max_messages) {
    auto const* m = body.if_contains("messages");
    if (!m || !m->is_array() || m->get_array().empty()) return std::nullopt;
    std::size_t counted = 0;
    for (auto const& msg : m->get_array()) {
        auto const* o = msg.if_object();
        if (!o) return std::nullopt;
        auto role = str(*o, "role");
        if (role != "system" && role != "developer") ++counted;
    }
    if (counted > max_messages) return std::nullopt;
    auto const* last = m->get_array().back().if_object();
    if (!last || str(*last, "role") != "user") return std::nullopt;
    auto const* content = last->if_contains("content");
    if (!content) return std::nullopt;
    if (content->is_string()) return std::string(content->get_string());
    if (!content->is_array()) return std::nullopt;
    std::string text;
    for (auto const& part : content->get_array()) {
        auto const* p = part.if_object();
        if (!p || str(*p, "type") != "text") return std::nullopt;  // images and files: exact only
        if (!text.empty()) text.push_back('\n');
        text += str(*p, "text");
    }
    return text;
}

cache_directives parse_cache_control(std::string_view header) {
    cache_directives d;
    std::size_t pos = 0;
    while (pos <= header.size()) {
        auto comma = header.find(',', pos);
        auto item = header.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        std::string lower(item);
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (lower == "no-store") d.no_store = true;
        else if (lower == "no-cache") d.no_cache = true;
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return d;
}

}  // namespace toolgate::gateway::policy::cache_detail
