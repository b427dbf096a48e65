#include "gateway/policy/guardrails.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <optional>

#include "common/config_reader.hpp"
#include "common/prometheus.hpp"
#include "guardrails/pii_restore.hpp"
#include "guardrails/schema_guard.hpp"

namespace toolgate::gateway::policy {

namespace gr = toolgate::guardrails;

namespace {

// ---- config ----

std::optional<gr::part_kind> part_kind_of(std::string_view s) {
    for (auto k : {gr::part_kind::system, gr::part_kind::user, gr::part_kind::assistant, gr::part_kind::tool,
                   gr::part_kind::mcp_call, gr::part_kind::mcp_result})
        if (gr::to_string(k) == s) return k;
    return std::nullopt;
}

bool json_flag(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_bool() && v->get_bool();
}

// ---- the parts of a request and of an answer ----

// Where a part's text lives in the body: messages[message].content, or its element `element` when
// the content is an array of parts.
struct part_ref {
    std::size_t message = 0;
    std::size_t element = std::numeric_limits<std::size_t>::max();  // max: the content is a string
};

std::optional<gr::part_kind> role_kind(std::string_view role) {
    if (role == "user") return gr::part_kind::user;
    if (role == "system" || role == "developer") return gr::part_kind::system;
    if (role == "assistant") return gr::part_kind::assistant;
    if (role == "tool" || role == "function") return gr::part_kind::tool;
    return std::nullopt;
}

void request_parts(json::object const& body, std::vector<gr::text_part>& parts, std::vector<part_ref>& refs) {
    auto const* messages = body.if_contains("messages");
    if (!messages || !messages->is_array()) return;
    auto const& arr = messages->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
        auto const* m = arr[i].if_object();
        if (!m) continue;
        auto const* role = m->if_contains("role");
        auto kind = role && role->is_string() ? role_kind(role->get_string()) : std::nullopt;
        if (!kind) continue;
        auto const* content = m->if_contains("content");
        if (!content) continue;
        if (content->is_string()) {
            parts.push_back(gr::text_part{*kind, i, std::string(content->get_string())});
            refs.push_back(part_ref{i});
        } else if (content->is_array()) {
            auto const& els = content->get_array();
            for (std::size_t e = 0; e < els.size(); ++e) {
                auto const* el = els[e].if_object();
                if (!el) continue;
                auto const* text = el->if_contains("text");
                if (text && text->is_string()) {
                    parts.push_back(gr::text_part{*kind, i, std::string(text->get_string())});
                    refs.push_back(part_ref{i, e});
                }
            }
        }
    }
}

void write_part(json::object& body, part_ref const& ref, std::string const& text) {
    auto* messages = body.if_contains("messages");
    if (!messages || !messages->is_array() || ref.message >= messages->get_array().size()) return;
    auto* m = messages->get_array()[ref.message].if_object();
    if (!m) return;
    auto* content = m->if_contains("content");
    if (!content) return;
    if (ref.element == std::numeric_limits<std::size_t>::max()) {
        *content = json::value(text);
        return;
    }
    if (!content->is_array() || ref.element >= content->get_array().size()) return;
    if (auto* el = content->get_array()[ref.element].if_object()) {
        if (auto* t = el->if_contains("text")) *t = json::value(text);
    }
}

// The answer's texts: choices[i].message.content (strings).
void answer_parts(json::object const& response, std::vector<gr::text_part>& parts) {
    auto const* choices = response.if_contains("choices");
    if (!choices || !choices->is_array()) return;
    auto const& arr = choices->get_array();
    for (std::size_t i = 0; i < arr.size(); ++i) {
        auto const* c = arr[i].if_object();
        auto const* msg = c ? c->if_contains("message") : nullptr;
        auto const* mo = msg ? msg->if_object() : nullptr;
        auto const* content = mo ? mo->if_contains("content") : nullptr;
        if (content && content->is_string()) parts.push_back(gr::text_part{gr::part_kind::assistant, i, std::string(content->get_string())});
    }
}

json::value* answer_content(json::object& response, std::size_t choice) {
    auto* choices = response.if_contains("choices");
    if (!choices || !choices->is_array() || choice >= choices->get_array().size()) return nullptr;
    auto* c = choices->get_array()[choice].if_object();
    auto* msg = c ? c->if_contains("message") : nullptr;
    auto* mo = msg ? msg->if_object() : nullptr;
    return mo ? mo->if_contains("content") : nullptr;
}

// The JSON-escaped form of a text, as it stands inside a JSON string.
std::string json_escaped(std::string const& s) {
    auto q = json::serialize(json::value(s));
    return q.substr(1, q.size() - 2);
}

// The same placeholders with JSON-escaped originals, for restoring inside JSON text (tool-call
// arguments), where a raw quote or backslash would break it.
gr::scope escaped_scope(gr::scope const& sc) {
    gr::scope out;
    for (auto const& [ph, orig] : sc.placeholders) out.placeholders.emplace_back(ph, json_escaped(orig));
    return out;
}

// pii-redact's placeholders back into the answer: contents and tool-call arguments.
void restore_answer(json::object& response, gr::scope const& sc) {
    auto* choices = response.if_contains("choices");
    if (!choices || !choices->is_array()) return;
    auto esc = escaped_scope(sc);
    for (auto& c : choices->get_array()) {
        auto* co = c.if_object();
        auto* msg = co ? co->if_contains("message") : nullptr;
        auto* mo = msg ? msg->if_object() : nullptr;
        if (!mo) continue;
        if (auto* content = mo->if_contains("content"); content && content->is_string())
            *content = json::value(gr::restore_placeholders(content->get_string(), sc));
        if (auto* calls = mo->if_contains("tool_calls"); calls && calls->is_array())
            for (auto& call : calls->get_array()) {
                auto* fo = call.is_object() ? call.get_object().if_contains("function") : nullptr;
                auto* args = fo && fo->is_object() ? fo->get_object().if_contains("arguments") : nullptr;
                if (args && args->is_string()) *args = json::value(gr::restore_placeholders(args->get_string(), esc));
            }
    }
}

// Replaces every occurrence of `from` in `text`; true when anything changed.
bool replace_all(std::string& text, std::string const& from, std::string const& to) {
    if (from.empty()) return false;
    bool any = false;
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
        any = true;
    }
    return any;
}

// In an agent loop the previous turns' answers were restored for the client and the tools, and
// came back into the conversation: their originals go out as placeholders again, so the provider
// never sees them. True when the body changed.
bool reredact_assistant(json::object& body, gr::scope const& sc) {
    if (sc.placeholders.empty()) return false;
    auto* messages = body.if_contains("messages");
    if (!messages || !messages->is_array()) return false;
    bool changed = false;
    for (auto& m : messages->get_array()) {
        auto* mo = m.if_object();
        auto* role = mo ? mo->if_contains("role") : nullptr;
        if (!role || !role->is_string() || role->get_string() != "assistant") continue;
        if (auto* content = mo->if_contains("content"); content && content->is_string()) {
            std::string text(content->get_string());
            bool any = false;
            for (auto const& [ph, orig] : sc.placeholders) any = replace_all(text, orig, ph) || any;
            if (any) *content = json::value(text), changed = true;
        }
        if (auto* calls = mo->if_contains("tool_calls"); calls && calls->is_array())
            for (auto& call : calls->get_array()) {
                auto* fo = call.is_object() ? call.get_object().if_contains("function") : nullptr;
                auto* args = fo && fo->is_object() ? fo->get_object().if_contains("arguments") : nullptr;
                if (!args || !args->is_string()) continue;
                std::string text(args->get_string());
                bool any = false;
                for (auto const& [ph, orig] : sc.placeholders) any = replace_all(text, json_escaped(orig), ph) || any;
                if (any) *args = json::value(text), changed = true;
            }
    }
    return changed;
}

bool applies(guardrail_plugin const& p, gr::part_kind k) {
    return std::find(p.apply_to.begin(), p.apply_to.end(), k) != p.apply_to.end();
}

void count(guardrail_plugin const& p, gr::outcome o) {
    p.verdicts[static_cast<std::size_t>(o)].fetch_add(1, std::memory_order_relaxed);
}

void note(turn_context& ctx, guardrail_plugin const& p, gr::verdict const& v) {
    if (ctx.guardrail_log) ctx.guardrail_log->push_back(p.name + ":" + std::string(gr::to_string(v.what)) + ":" + v.rule);
}

api_error violation(guardrail_plugin const& p, gr::verdict const& v, std::string param) {
    std::string msg = "blocked by the guardrail '" + p.name + "'";
    if (!v.rule.empty()) msg += " (rule " + v.rule + ")";
    if (!v.detail.empty()) msg += ": " + v.detail;
    api_error e{400, "guardrail_violation", p.name, std::move(msg)};
    e.param = std::move(param);
    return e;
}

std::string withheld_notice(guardrail_plugin const& p, gr::verdict const& v) {
    return "[toolgate] This tool result was withheld: the guardrail '" + p.name + "' flagged it (" +
           (v.rule.empty() ? std::string("policy") : v.rule) + "). Do not retry the same call for the same content.";
}

// Runs the before_request plugins over the request. Returns the error to answer, if any.
std::optional<api_error> check_request(guardrail_settings const& s, turn_context& ctx, gr::scope& sc) {
    auto& body = ctx.request.body;
    bool changed = ctx.loop_turn && reredact_assistant(body, sc);
    std::vector<gr::text_part> parts;
    std::vector<part_ref> refs;
    request_parts(body, parts, refs);
    for (auto const& pp : s.plugins) {
        auto const& p = *pp;
        if (p.stage != plugin_stage::before_request) continue;
        // A plugin reports its first finding; in a loop each blocked tool result is withheld and
        // the plugin looks again, until it passes or blocks something that is not a tool result.
        for (std::size_t round = 0; round <= parts.size(); ++round) {
            std::vector<gr::text_part> sel;
            std::vector<std::size_t> where;
            for (std::size_t i = 0; i < parts.size(); ++i)
                if (applies(p, parts[i].kind)) {
                    sel.push_back(parts[i]);
                    where.push_back(i);
                }
            auto v = p.impl->check(sel, &body, sc);  // max-token may rewrite max_tokens (a redact)
            count(p, v.what);
            if (v.what == gr::outcome::pass) break;
            note(ctx, p, v);
            if (v.what == gr::outcome::redact) {
                for (std::size_t k = 0; k < sel.size(); ++k) {
                    auto& orig = parts[where[k]];
                    if (sel[k].text == orig.text) continue;
                    orig.text = sel[k].text;
                    write_part(body, refs[where[k]], orig.text);
                }
                changed = true;
                break;
            }
            if (where.empty()) return violation(p, v, std::string());
            std::size_t gi = where[std::min(v.part, where.size() - 1)];
            bool in_tool = parts[gi].kind == gr::part_kind::tool;
            auto notice = withheld_notice(p, v);
            if (ctx.loop_turn && in_tool && v.rule != "max_messages" && parts[gi].text != notice) {
                // The model reads a notice instead of the tool's text; the loop goes on.
                parts[gi].text = std::move(notice);
                write_part(body, refs[gi], parts[gi].text);
                changed = true;
                continue;
            }
            return violation(p, v, "messages[" + std::to_string(parts[gi].index) + "]");
        }
    }
    if (changed) ctx.request.raw_body.clear();  // the body goes out re-serialised
    return std::nullopt;
}

// Runs the after_request plugins over a whole (non-streamed) answer. `schema_failure` is set when
// a repairing schema-guard failed (the caller may ask the model once more).
std::optional<api_error> check_answer(guardrail_settings const& s, turn_context& ctx, gr::scope& sc, std::size_t restorable,
                                      turn_result& result, guardrail_plugin const** schema_failure,
                                      std::string* schema_errors) {
    std::vector<gr::text_part> parts;
    answer_parts(result.response, parts);
    bool changed = false;
    for (auto const& pp : s.plugins) {
        auto const& p = *pp;
        if (p.stage != plugin_stage::after_request) continue;
        std::vector<gr::text_part> sel;
        for (auto const& part : parts)
            if (applies(p, part.kind)) sel.push_back(part);
        gr::verdict v;
        if (p.whole) {
            // One answer per choice (schema-guard reads one JSON document).
            for (std::size_t k = 0; k < sel.size() && v.what == gr::outcome::pass; ++k) {
                std::vector<gr::text_part> one(1, sel[k]);
                v = p.impl->check(one, &ctx.request.body, sc);
                if (v.what != gr::outcome::pass) v.part = k;
            }
        } else {
            v = p.impl->check(sel, &ctx.request.body, sc);
        }
        count(p, v.what);
        if (v.what == gr::outcome::pass) continue;
        note(ctx, p, v);
        if (v.what == gr::outcome::redact) {
            for (auto const& part : sel)
                if (auto* c = answer_content(result.response, part.index)) *c = json::value(part.text);
            for (auto& part : parts)
                for (auto const& ns : sel)
                    if (ns.index == part.index) part.text = ns.text;
            changed = true;
            continue;
        }
        if (p.repair && schema_failure && gr::is_repairable(v)) {
            *schema_failure = &p;
            *schema_errors = v.detail;
            return std::nullopt;
        }
        auto e = violation(p, v, "choices[" + std::to_string(v.part < sel.size() ? sel[v.part].index : 0) + "].message");
        return e;
    }
    bool restore = false;
    for (auto const& p : s.plugins) restore = restore || (p->restore && restorable > 0);
    if (restore) {
        // Only the request's placeholders: an after_request redaction stays redacted.
        gr::scope inbound;
        inbound.placeholders.assign(sc.placeholders.begin(), sc.placeholders.begin() + static_cast<std::ptrdiff_t>(restorable));
        restore_answer(result.response, inbound);
        changed = true;
    }
    if (changed) result.raw_response.clear();
    return std::nullopt;
}

// The repair turn's request: the failed answer and the validation errors, for one more try.
void add_repair_messages(json::object& body, turn_result const& failed, std::string const& errors) {
    auto* messages = body.if_contains("messages");
    if (!messages || !messages->is_array()) return;
    std::string answer;
    std::vector<gr::text_part> parts;
    answer_parts(failed.response, parts);
    if (!parts.empty()) answer = parts[0].text;
    json::object assistant;
    assistant["role"] = "assistant";
    assistant["content"] = answer;
    json::object user;
    user["role"] = "user";
    user["content"] = "Your answer does not match the required JSON schema:\n" + errors +
                      "\nAnswer again with only JSON that matches the schema.";
    messages->get_array().push_back(std::move(assistant));
    messages->get_array().push_back(std::move(user));
}

api_error schema_unrepaired(guardrail_plugin const& p, std::string const& errors) {
    api_error e{422, "guardrail_violation", p.name,
                "the answer does not match the JSON schema, also after one repair attempt: " + errors};
    e.param = "choices[0].message";
    return e;
}

// ---- streamed answers ----

// Wraps the turn's sink: each choice's content is held back by the plugins' window, checked as it
// grows, and released (with placeholders restored) once no rule can match it any more.
class guarded_sink final : public providers::chat_sink {
public:
    // `inbound`: the request's placeholders (what restore puts back); `sc`: the request's scope.
    guarded_sink(guardrail_settings const& s, turn_context& ctx, gr::scope& sc, gr::scope const& inbound,
                 providers::chat_sink& inner)
        : s_(s), ctx_(ctx), sc_(sc), inbound_(inbound), escaped_(escaped_scope(inbound)), inner_(inner) {
        for (auto const& p : s.plugins) {
            restore_ = restore_ || p->restore;
            if (p->stage != plugin_stage::after_request || !applies(*p, gr::part_kind::assistant)) continue;
            checked_.push_back(p.get());
            if (p->whole) window_ = std::numeric_limits<std::size_t>::max();
            else window_ = std::max(window_, p->impl->window());
        }
    }

    std::optional<api_error> const& error() const { return error_; }

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        if (error_) co_return false;
        auto* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array() || choices->get_array().empty()) co_return co_await inner_.on_chunk(chunk, raw);
        remember_identity(chunk);
        bool changed = false;
        for (auto& c : choices->get_array()) {
            auto* co = c.if_object();
            if (!co) continue;
            auto idx = choice_index(*co);
            auto& st = streams_[idx];
            auto* delta = co->if_contains("delta");
            auto* d = delta && delta->is_object() ? &delta->get_object() : nullptr;
            auto* content = d ? d->if_contains("content") : nullptr;
            if (content && content->is_string() && !content->get_string().empty()) {
                st.held.append(content->get_string());
                if (!scan(st, idx)) co_return false;
                *content = json::value(release(st, false));
                changed = true;
            }
            // Tool-call arguments (JSON text) get the originals back too, JSON-escaped: the
            // gateway's own tools (agent loop) and the client's need the real values.
            if (restore_ && d)
                if (auto* calls = d->if_contains("tool_calls"); calls && calls->is_array())
                    for (auto& call : calls->get_array()) {
                        auto* callo = call.if_object();
                        auto* fn = callo ? callo->if_contains("function") : nullptr;
                        auto* args = fn && fn->is_object() ? fn->get_object().if_contains("arguments") : nullptr;
                        if (!args || !args->is_string()) continue;
                        auto* ci = callo->if_contains("index");
                        auto k = ci && ci->is_int64() ? ci->get_int64() : 0;
                        auto it = st.args.try_emplace(k, escaped_).first;
                        *args = json::value(it->second.feed(args->get_string()));
                        changed = true;
                    }
            auto* fin = co->if_contains("finish_reason");
            if (fin && !fin->is_null()) {
                // The end of this choice: what is held has been checked and goes out now.
                if (!final_check(st, idx)) co_return false;
                st.finished = true;
                if (auto tails = arg_tails(st); !tails.empty()) {
                    if (!d) d = &(*co)["delta"].emplace_object();
                    append_tool_call_tails(*d, std::move(tails));
                    changed = true;
                }
                auto rest = release(st, true);
                if (!rest.empty()) {
                    if (!d) d = &(*co)["delta"].emplace_object();  // a finish chunk without a delta
                    if (auto* cc = d->if_contains("content"); cc && cc->is_string())
                        *cc = json::value(std::string(cc->get_string()) + rest);
                    else
                        (*d)["content"] = rest;
                    changed = true;
                }
            }
        }
        co_return co_await inner_.on_chunk(chunk, changed ? std::string_view() : raw);
    }

    asio::awaitable<bool> flush() override { co_return co_await inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { co_return co_await inner_.on_comment(text); }

    // The stream ended without a finish_reason for some choice: what is held is checked and sent
    // (nothing may be lost). False when that last check blocks (error() is set).
    asio::awaitable<bool> drain() {
        for (auto& [idx, st] : streams_) {
            if (st.finished) continue;
            if (!final_check(st, idx)) co_return false;
            st.finished = true;
            auto rest = release(st, true);
            auto tails = arg_tails(st);
            if (rest.empty() && tails.empty()) continue;
            auto c = content_chunk(idx, rest);
            if (!tails.empty()) {
                auto& d = c.at("choices").as_array()[0].as_object().at("delta").as_object();
                if (rest.empty()) d.erase("content");
                append_tool_call_tails(d, std::move(tails));
            }
            if (!co_await inner_.on_chunk(c, no_raw_)) co_return true;
        }
        co_return true;
    }

private:
    struct stream_state {
        std::string held;  // checked, not yet sent
        std::optional<gr::placeholder_restorer> restorer;
        std::map<std::int64_t, gr::placeholder_restorer> args;  // per tool-call index
        bool finished = false;
    };

    // What the argument restorers still hold (a possible placeholder prefix), per call index.
    static std::vector<std::pair<std::int64_t, std::string>> arg_tails(stream_state& st) {
        std::vector<std::pair<std::int64_t, std::string>> out;
        for (auto& [k, r] : st.args)
            if (auto t = r.finish(); !t.empty()) out.emplace_back(k, std::move(t));
        st.args.clear();
        return out;
    }

    static void append_tool_call_tails(json::object& delta, std::vector<std::pair<std::int64_t, std::string>> tails) {
        json::array* calls = nullptr;
        if (auto* c = delta.if_contains("tool_calls"); c && c->is_array()) calls = &c->get_array();
        else calls = &delta["tool_calls"].emplace_array();
        for (auto& [k, t] : tails) {
            json::object fn;
            fn["arguments"] = std::move(t);
            json::object call;
            call["index"] = k;
            call["function"] = std::move(fn);
            calls->push_back(std::move(call));
        }
    }

    void remember_identity(json::object const& chunk) {
        for (auto key : {"id", "model", "created"})
            if (auto const* v = chunk.if_contains(key)) identity_[key] = *v;
    }

    // A chunk that carries only `text` for choice `idx`, in the stream's own id and model.
    json::object content_chunk(std::int64_t idx, std::string const& text) const {
        json::object c = identity_;
        c["object"] = "chat.completion.chunk";
        json::object delta;
        delta["content"] = text;
        json::object choice;
        choice["index"] = idx;
        choice["delta"] = std::move(delta);
        choice["finish_reason"] = nullptr;
        json::array choices;
        choices.push_back(std::move(choice));
        c["choices"] = std::move(choices);
        return c;
    }

    static std::int64_t choice_index(json::object const& c) {
        auto const* i = c.if_contains("index");
        return i && i->is_int64() ? i->get_int64() : 0;
    }

    // Checks the held text; redacting plugins rewrite it. False on a block (error_ is set).
    bool scan(stream_state& st, std::int64_t idx, bool at_end = false) {
        for (auto const* p : checked_) {
            if (p->whole && !at_end) continue;
            std::vector<gr::text_part> parts;
            parts.push_back(gr::text_part{gr::part_kind::assistant, static_cast<std::size_t>(idx), st.held});
            auto v = p->impl->check(parts, &ctx_.request.body, sc_);
            if (v.what == gr::outcome::pass) continue;
            count(*p, v.what);
            flagged_ = true;
            note(ctx_, *p, v);
            if (v.what == gr::outcome::redact) {
                st.held = parts[0].text;
                continue;
            }
            error_ = violation(*p, v, "choices[" + std::to_string(idx) + "].delta");
            return false;
        }
        return true;
    }

    bool final_check(stream_state& st, std::int64_t idx) {
        bool any_whole = false;
        for (auto const* p : checked_) any_whole = any_whole || p->whole;
        if (any_whole && !scan(st, idx, true)) return false;
        if (!flagged_)
            for (auto const* p : checked_) count(*p, gr::outcome::pass);  // one verdict per clean streamed answer
        return true;
    }

    // What can go out now: all but the last window bytes (on a UTF-8 boundary), restored.
    std::string release(stream_state& st, bool all) {
        std::size_t n = st.held.size();
        if (!all) {
            n = window_ >= st.held.size() ? 0 : st.held.size() - window_;
            while (n > 0 && n < st.held.size() && (static_cast<unsigned char>(st.held[n]) & 0xC0) == 0x80) --n;
        }
        std::string out = st.held.substr(0, n);
        st.held.erase(0, n);
        if (!restore_) return out;
        if (!st.restorer) st.restorer.emplace(inbound_);
        auto r = st.restorer->feed(out);
        if (all) r += st.restorer->finish();
        return r;
    }

    guardrail_settings const& s_;
    turn_context& ctx_;
    gr::scope& sc_;
    gr::scope const& inbound_;
    gr::scope escaped_;  // inbound_ with JSON-escaped originals, for tool-call arguments
    providers::chat_sink& inner_;
    json::object identity_;  // id, model, created of the stream's chunks
    std::string_view no_raw_;
    std::vector<guardrail_plugin const*> checked_;
    std::size_t window_ = 0;
    bool restore_ = false;
    std::map<std::int64_t, stream_state> streams_;
    std::optional<api_error> error_;
    bool flagged_ = false;
};

bool checks_streams(guardrail_settings const& s) {
    for (auto const& p : s.plugins)
        if ((p->stage == plugin_stage::after_request && applies(*p, gr::part_kind::assistant)) || p->restore) return true;
    return false;
}

class guardrail_filter final : public turn_filter {
public:
    explicit guardrail_filter(std::shared_ptr<guardrail_settings const> s) : s_(std::move(s)) {}
    std::string_view name() const override { return "guardrails"; }

    asio::awaitable<turn_result> on_turn(turn_context& ctx, next_fn const& next) override {
        // One scope for all turns of a request (the agent loop's): a value keeps its placeholder.
        gr::scope local;
        gr::scope& sc = ctx.guardrail_scope ? *ctx.guardrail_scope : local;
        if (auto err = check_request(*s_, ctx, sc)) {
            turn_result blocked;
            blocked.error = std::move(*err);
            co_return blocked;
        }
        // What restore may put back: the placeholders the requests made, not an answer's own.
        gr::scope inbound;
        inbound.placeholders = sc.placeholders;
        std::size_t restorable = sc.placeholders.size();
        if (ctx.sink && checks_streams(*s_)) {
            auto* outer = ctx.sink;
            guarded_sink g(*s_, ctx, sc, inbound, *outer);
            ctx.sink = &g;
            struct restore_sink {
                turn_context& c;
                providers::chat_sink* s;
                restore_sink(turn_context& cc, providers::chat_sink* ss) : c(cc), s(ss) {}
                ~restore_sink() { c.sink = s; }
            };
            restore_sink put_back(ctx, outer);  // also when next() throws
            auto r = co_await next(ctx);
            ctx.sink = outer;
            if (!r.error && !g.error()) co_await g.drain();
            if (g.error()) {
                r.error = *g.error();
                r.chunks_sent = true;
            }
            co_return r;
        }
        auto r = co_await next(ctx);
        if (r.error || ctx.sink) co_return r;
        guardrail_plugin const* failed = nullptr;
        std::string errors;
        if (auto err = check_answer(*s_, ctx, sc, restorable, r, &failed, &errors)) {
            r.error = std::move(*err);
            co_return r;
        }
        if (!failed) co_return r;
        // schema-guard repair: once, with the validation errors.
        add_repair_messages(ctx.request.body, r, errors);
        ctx.request.raw_body.clear();
        auto again = co_await next(ctx);
        again.tokens.add(r.tokens);  // both attempts were paid for
        if (again.error) co_return again;
        guardrail_plugin const* failed_again = nullptr;
        std::string errors_again;
        if (auto err = check_answer(*s_, ctx, sc, restorable, again, &failed_again, &errors_again)) {
            again.error = std::move(*err);
            co_return again;
        }
        if (failed_again) again.error = schema_unrepaired(*failed_again, errors_again);
        co_return again;
    }

private:
    std::shared_ptr<guardrail_settings const> s_;
};

std::vector<gr::part_kind> parse_apply_to(reader const& r, YAML::Node const& n, std::string const& path) {
    std::vector<gr::part_kind> out;
    if (!n.IsSequence()) r.fail(n, path, "must be a list of user, system, assistant, tool, mcp_call, mcp_result");
    std::size_t i = 0;
    for (auto const& item : n) {
        auto s = r.str(item, path + "[" + std::to_string(i) + "]");
        auto k = part_kind_of(s);
        if (!k) r.fail(item, path + "[" + std::to_string(i) + "]", "must be one of user, system, assistant, tool, mcp_call, mcp_result");
        out.push_back(*k);
        ++i;
    }
    return out;
}

}  // namespace

std::shared_ptr<guardrail_settings const> parse_plugins(reader const& r, YAML::Node const& node, std::string const& base_dir) {
    auto out = std::make_shared<guardrail_settings>();
    if (!node.IsSequence()) r.fail(node, "plugins", "must be a list of {name, stage, enabled, apply_to, config}");
    std::size_t i = 0;
    for (auto const& item : node) {
        std::string path = "plugins[" + std::to_string(i++) + "]";
        r.check_keys(item, path, {"name", "stage", "enabled", "apply_to", "config"});
        if (!item["name"]) r.fail(item, path, "'name' is required");
        auto name = r.str(item["name"], path + ".name");
        path += " (" + name + ")";
        bool known = false;
        for (auto k : gr::known()) known = known || k == name;
        if (!known) {
            std::string list;
            for (auto k : gr::known()) list += (list.empty() ? "" : ", ") + std::string(k);
            r.fail(item["name"], path + ".name", "unknown plugin (known: " + list + ")");
        }
        bool enabled = item["enabled"] ? r.boolean(item["enabled"], path + ".enabled") : true;
        json::object config;
        if (auto c = item["config"]) {
            if (!c.IsMap() && !c.IsNull()) r.fail(c, path + ".config", "must be a mapping");
            if (c.IsMap()) config = r.to_json(c, path + ".config").as_object();
        }
        auto p = std::make_unique<guardrail_plugin>();
        p->name = name;
        gr::build_context bc;
        bc.base_dir = base_dir;
        try {
            p->impl = gr::make(name, config, bc);
        } catch (gr::config_error const& e) {
            r.fail(item["config"] ? item["config"] : item, path + "." + e.key, e.what());
        } catch (std::exception const& e) {
            r.fail(item, path, e.what());
        }
        p->restore = name == "pii-redact" && json_flag(config, "restore");
        p->repair = gr::wants_repair(*p->impl);
        p->whole = name == "schema-guard";
        std::string stage = name == "schema-guard" ? "after_request" : "before_request";
        if (auto st = item["stage"]) stage = r.str(st, path + ".stage");
        if (stage == "before_request") p->stage = plugin_stage::before_request;
        else if (stage == "after_request") p->stage = plugin_stage::after_request;
        else if (stage == "on_error")
            r.fail(item["stage"], path + ".stage",
                   "guardrails run before_request or after_request (on_error is for plugins that handle errors)");
        else r.fail(item["stage"], path + ".stage", "must be before_request or after_request");
        if (name == "schema-guard" && p->stage != plugin_stage::after_request)
            r.fail(item["stage"], path + ".stage", "schema-guard checks answers: its stage is after_request");
        if (auto a = item["apply_to"]) p->apply_to = parse_apply_to(r, a, path + ".apply_to");
        else if (p->stage == plugin_stage::after_request) p->apply_to = {gr::part_kind::assistant};
        else {
            // Input guardrails read the /mcp front's traffic too: tools/call arguments and results.
            p->apply_to = p->impl->default_apply_to();
            if (applies(*p, gr::part_kind::tool)) {
                p->apply_to.push_back(gr::part_kind::mcp_call);
                p->apply_to.push_back(gr::part_kind::mcp_result);
            }
        }
        if (enabled) out->plugins.push_back(std::move(p));
    }
    return out;
}

std::shared_ptr<turn_filter> make_guardrail_filter(std::shared_ptr<guardrail_settings const> settings) {
    if (!settings || settings->empty()) return nullptr;
    return std::make_shared<guardrail_filter>(std::move(settings));
}

namespace {

std::optional<std::string> refusal(guardrail_plugin const& p, gr::verdict const& v, std::string_view what) {
    return std::string(what) + " blocked by the guardrail '" + p.name + "'" + (v.rule.empty() ? "" : " (rule " + v.rule + ")") +
           (v.detail.empty() ? "" : ": " + v.detail);
}

bool any_applies(guardrail_settings const& s, gr::part_kind k) {
    for (auto const& p : s.plugins)
        if (p->stage == plugin_stage::before_request && applies(*p, k)) return true;
    return false;
}

}  // namespace

mcp_screens make_mcp_screens(std::shared_ptr<guardrail_settings const> settings) {
    mcp_screens out;
    if (!settings) return out;
    if (any_applies(*settings, gr::part_kind::mcp_call))
        out.arguments = [settings](std::string const&, json::object& args) -> std::optional<std::string> {
            gr::scope sc;
            std::vector<gr::text_part> parts;
            parts.push_back(gr::text_part{gr::part_kind::mcp_call, 0, json::serialize(args)});
            for (auto const& p : settings->plugins) {
                if (p->stage != plugin_stage::before_request || !applies(*p, gr::part_kind::mcp_call)) continue;
                auto v = p->impl->check(parts, nullptr, sc);
                count(*p, v.what);
                if (v.what == gr::outcome::block) return refusal(*p, v, "The tool call's arguments were");
                if (v.what == gr::outcome::redact) {
                    boost::system::error_code ec;
                    auto parsed = json::parse(parts[0].text, ec);
                    if (ec || !parsed.is_object()) return refusal(*p, v, "The tool call's arguments were");
                    args = std::move(parsed.get_object());
                }
            }
            return std::nullopt;
        };
    if (any_applies(*settings, gr::part_kind::mcp_result))
        out.result = [settings](std::string const&, json::object& result) -> std::optional<std::string> {
            // The texts of the result: content[].text, embedded resources' text, and
            // structuredContent (as JSON text, re-read after a redaction).
            gr::scope sc;
            std::vector<gr::text_part> parts;
            std::vector<json::value*> where;  // the string each part came from
            if (auto* content = result.if_contains("content"); content && content->is_array())
                for (auto& item : content->get_array()) {
                    auto* io = item.if_object();
                    if (!io) continue;
                    auto* t = io->if_contains("text");
                    if (!t) {
                        auto* res = io->if_contains("resource");
                        t = res && res->is_object() ? res->get_object().if_contains("text") : nullptr;
                    }
                    if (t && t->is_string()) {
                        parts.push_back(gr::text_part{gr::part_kind::mcp_result, 0, std::string(t->get_string())});
                        where.push_back(t);
                    }
                }
            auto* structured = result.if_contains("structuredContent");
            std::size_t structured_at = parts.size();
            if (structured && !structured->is_null())
                parts.push_back(gr::text_part{gr::part_kind::mcp_result, 0, json::serialize(*structured)});
            if (parts.empty()) return std::nullopt;
            for (auto const& p : settings->plugins) {
                if (p->stage != plugin_stage::before_request || !applies(*p, gr::part_kind::mcp_result)) continue;
                auto v = p->impl->check(parts, nullptr, sc);
                count(*p, v.what);
                if (v.what == gr::outcome::block) return refusal(*p, v, "The tool's result was");
                if (v.what != gr::outcome::redact) continue;
                for (std::size_t k = 0; k < where.size(); ++k) *where[k] = json::value(parts[k].text);
                if (structured_at < parts.size()) {
                    boost::system::error_code ec;
                    auto parsed = json::parse(parts[structured_at].text, ec);
                    if (ec) return refusal(*p, v, "The tool's result was");
                    *structured = std::move(parsed);
                }
            }
            return std::nullopt;
        };
    return out;
}

std::string guardrail_metrics(guardrail_settings const& settings) {
    if (settings.empty()) return {};
    prometheus::writer w;
    w.family("toolgate_guardrail_verdicts_total", "counter", "Guardrail verdicts, by plugin, stage and outcome.");
    for (auto const& p : settings.plugins) {
        std::string_view stage = p->stage == plugin_stage::before_request ? "before_request" : "after_request";
        for (auto o : {gr::outcome::pass, gr::outcome::redact, gr::outcome::block})
            w.sample("toolgate_guardrail_verdicts_total",
                     {{"plugin", p->name}, {"stage", stage}, {"outcome", gr::to_string(o)}},
                     p->verdicts[static_cast<std::size_t>(o)].load(std::memory_order_relaxed));
    }
    return w.take();
}

}  // namespace toolgate::gateway::policy
