#include "gateway/policy/guardrail_parts.hpp"

#include <boost/json/serialize.hpp>

#include <algorithm>

#include "guardrails/pii_restore.hpp"

namespace toolgate::gateway::policy::detail {

namespace {

std::optional<gr::part_kind> role_kind(std::string_view role) {
    if (role == "user") return gr::part_kind::user;
    if (role == "system" || role == "developer") return gr::part_kind::system;
    if (role == "assistant") return gr::part_kind::assistant;
    if (role == "tool" || role == "function") return gr::part_kind::tool;
    return std::nullopt;
}

// The JSON-escaped form of a text, as it stands inside a JSON string.
std::string json_escaped(std::string const& s) {
    auto q = json::serialize(json::value(s));
    return q.substr(1, q.size() - 2);
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

}  // namespace



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

}  // namespace toolgate::gateway::policy::detail
