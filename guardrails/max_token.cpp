// max-token: limits on a chat request's size, checked before it goes out.
//
//   max_messages       more messages than this: block, rule "max_messages".
//   max_input_tokens   more estimated input tokens (token_estimate.hpp) than this: block, rule
//                      "max_input_tokens". The estimate covers every message of the body (text
//                      content, text elements of array content, tool-call arguments and names),
//                      whatever apply_to selects, plus 3 tokens per message for the role and
//                      separators as OpenAI's own counting does; images and audio are not counted.
//                      The parts given are the body's own texts, so with a body only MCP parts
//                      are added; without a body (MCP traffic) the parts are what is counted.
//   max_output_tokens  a max_tokens or max_completion_tokens above it is capped to it (on_output:
//                      cap, the default; outcome redact, rule "max_output_tokens") or refused
//                      (on_output: reject). A request that names neither is left alone.
//
// A block names the part of the first message over max_messages, or the largest part for
// max_input_tokens (so that in an agent loop an oversized tool result is what gets withheld); the
// details give numbers only (counts and limits), never message text.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/token_estimate.hpp"

namespace toolgate::guardrails {

namespace {

constexpr std::size_t per_message_tokens = 3;

std::optional<std::size_t> limit(json::object const& c, std::string_view k) {
    if (!c.if_contains(k) || c.at(k).is_null()) return std::nullopt;
    double d = cfg::number(c, k, 0, 1, 1e15);
    if (d != std::floor(d)) throw config_error(cfg::key_of(k), "'" + std::string(k) + "' must be a whole number");
    return static_cast<std::size_t>(d);
}

bool is_mcp(part_kind k) { return k == part_kind::mcp_call || k == part_kind::mcp_result; }

// Every text of one message of the body that the model reads (name, content, tool-call names and
// arguments), each given to `f`.
template <class F>
void for_each_text(json::value const& m, F&& f) {
    auto const* o = m.if_object();
    if (!o) return;
    if (auto const* name = o->if_contains("name"); name && name->is_string()) f(name->get_string());
    if (auto const* content = o->if_contains("content")) {
        if (content->is_string()) {
            f(content->get_string());
        } else if (content->is_array()) {
            for (auto const& el : content->get_array()) {
                auto const* eo = el.if_object();
                auto const* text = eo ? eo->if_contains("text") : nullptr;
                if (text && text->is_string()) f(text->get_string());
            }
        }
    }
    if (auto const* calls = o->if_contains("tool_calls"); calls && calls->is_array()) {
        for (auto const& call : calls->get_array()) {
            auto const* co = call.if_object();
            auto const* fn = co ? co->if_contains("function") : nullptr;
            auto const* fo = fn ? fn->if_object() : nullptr;
            if (!fo) continue;
            if (auto const* n = fo->if_contains("name"); n && n->is_string()) f(n->get_string());
            if (auto const* a = fo->if_contains("arguments"); a && a->is_string()) f(a->get_string());
        }
    }
}

// The tokens of one message of the body: what the model reads of it.
std::size_t message_tokens(json::value const& m) {
    if (!m.is_object()) return 0;
    std::size_t t = per_message_tokens;
    for_each_text(m, [&](std::string_view s) { t += estimate_tokens(s); });
    return t;
}

// An upper bound of message_tokens() from sizes alone: the estimator charges at most one token per
// byte (no piece costs more than 1/100 token per byte beyond its first, see token_estimate.cpp),
// so twice the bytes plus a little per text is safely above it. When even this bound is under the
// limit, nothing needs estimating (the common case: a prompt far below max_input_tokens).
std::size_t text_bound(std::string_view t) { return 2 * t.size() + 4; }

std::size_t message_bound(json::value const& m) {
    if (!m.is_object()) return 0;
    std::size_t b = per_message_tokens;
    for_each_text(m, [&](std::string_view s) { b += text_bound(s); });
    return b;
}

std::string whole(double d) {
    return d < 1e18 ? std::to_string(static_cast<std::uint64_t>(d)) : std::string("more than 10^18");
}

verdict blocked(std::string rule, std::size_t part, std::string detail) {
    verdict v;
    v.what = outcome::block;
    v.rule = std::move(rule);
    v.part = part;
    v.detail = std::move(detail);
    return v;
}

class max_token final : public guardrail {
public:
    max_token(std::optional<std::size_t> in, std::optional<std::size_t> out, std::optional<std::size_t> messages,
              bool cap)
        : max_input_(in), max_output_(out), max_messages_(messages), cap_(cap) {}

    std::string_view name() const override { return "max-token"; }

    std::vector<part_kind> default_apply_to() const override {
        return {part_kind::user, part_kind::system, part_kind::tool, part_kind::assistant};
    }

    verdict check(std::vector<text_part>& parts, json::object* body, scope&) const override {
        json::array const* messages = nullptr;
        if (body)
            if (auto const* m = body->if_contains("messages"); m && m->is_array()) messages = &m->get_array();

        if (max_messages_) {
            std::size_t count = messages ? messages->size() : distinct_messages(parts);
            if (count > *max_messages_) {
                // The part of the first message over the limit (param "messages[N]").
                std::size_t at = 0;
                for (std::size_t i = 0; i < parts.size(); ++i)
                    if (!is_mcp(parts[i].kind) && parts[i].index >= *max_messages_) {
                        at = i;
                        break;
                    }
                return blocked("max_messages", at,
                               "the request has " + std::to_string(count) + " messages; the limit is " +
                                   std::to_string(*max_messages_));
            }
        }

        std::size_t bound = 0;
        if (max_input_) {
            if (messages)
                for (auto const& m : *messages) bound += message_bound(m);
            for (auto const& p : parts)
                if (!messages || is_mcp(p.kind)) bound += text_bound(p.text);
        }
        if (max_input_ && bound > *max_input_) {
            std::size_t tokens = 0;
            if (messages)
                for (auto const& m : *messages) tokens += message_tokens(m);
            // Message parts are the body's texts, counted above when there is a body.
            for (auto const& p : parts)
                if (!messages || is_mcp(p.kind)) tokens += estimate_tokens(p.text);
            if (tokens > *max_input_)
                return blocked("max_input_tokens", largest_part(parts),
                               "the input is about " + std::to_string(tokens) + " tokens; the limit is " +
                                   std::to_string(*max_input_));
        }

        if (max_output_ && body) return check_output(*body);
        return {};
    }

private:
    static std::size_t largest_part(std::vector<text_part> const& parts) {
        std::size_t largest = 0, most = 0;
        for (std::size_t i = 0; i < parts.size(); ++i)
            if (auto t = estimate_tokens(parts[i].text); t > most) largest = i, most = t;
        return largest;
    }

    static std::size_t distinct_messages(std::vector<text_part> const& parts) {
        std::vector<std::size_t> seen;
        for (auto const& p : parts) {
            if (is_mcp(p.kind)) continue;
            bool found = false;
            for (auto s : seen) found = found || s == p.index;
            if (!found) seen.push_back(p.index);
        }
        return seen.size();
    }

    verdict check_output(json::object& body) const {
        verdict v;
        for (std::string_view key : {std::string_view("max_tokens"), std::string_view("max_completion_tokens")}) {
            auto* value = body.if_contains(key);
            if (!value || value->is_null()) continue;
            double asked;
            if (value->is_int64())
                asked = static_cast<double>(value->get_int64());
            else if (value->is_uint64())
                asked = static_cast<double>(value->get_uint64());
            else if (value->is_double())
                asked = value->get_double();
            else
                return blocked("max_output_tokens", 0, "'" + std::string(key) + "' must be a number");  // fail closed
            if (!(asked > static_cast<double>(*max_output_))) continue;
            if (!cap_)
                return blocked(
                    "max_output_tokens", 0,
                    "'" + std::string(key) + "' is " + whole(asked) + "; the limit is " + std::to_string(*max_output_));
            *value = static_cast<std::int64_t>(*max_output_);
            v.what = outcome::redact;
            v.rule = "max_output_tokens";
        }
        return v;
    }

    std::optional<std::size_t> max_input_, max_output_, max_messages_;
    bool cap_;
};

}  // namespace

std::unique_ptr<guardrail> make_max_token(json::object const& config, build_context const&) {
    cfg::only_keys(config, {"max_input_tokens", "max_output_tokens", "max_messages", "on_output"});
    auto in = limit(config, "max_input_tokens");
    auto out = limit(config, "max_output_tokens");
    auto messages = limit(config, "max_messages");
    bool cap = cfg::choice(config, "on_output", {"cap", "reject"}, "cap") == "cap";
    if (!in && !out && !messages)
        throw config_error("config",
                           "max-token needs at least one of max_input_tokens, max_output_tokens, max_messages");
    return std::make_unique<max_token>(in, out, messages, cap);
}

}  // namespace toolgate::guardrails
