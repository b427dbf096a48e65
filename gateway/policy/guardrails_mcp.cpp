// The guardrails outside the chat turn: on the /mcp front, a tools/call's arguments and its results,
// screened by the input guardrails whose apply_to has mcp_call / mcp_result; and the plain texts of
// the routes that are not chat (screen_texts).
#include "gateway/policy/guardrails.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "gateway/policy/guardrail_parts.hpp"

namespace toolgate::gateway::policy {

using namespace detail;

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

std::optional<api_error> screen_texts(guardrail_settings const& settings, plugin_stage stage,
                                      std::vector<std::string*> const& texts, std::string const& param,
                                      std::vector<std::string>* log) {
    auto kind = stage == plugin_stage::before_request ? gr::part_kind::user : gr::part_kind::assistant;
    std::vector<gr::text_part> parts;
    for (auto const* t : texts) parts.push_back(gr::text_part{kind, 0, *t});
    if (parts.empty()) return std::nullopt;
    gr::scope sc;
    for (auto const& p : settings.plugins) {
        if (p->stage != stage || !applies(*p, kind)) continue;
        auto v = p->impl->check(parts, nullptr, sc);
        count(*p, v.what);
        if (v.what != gr::outcome::pass && log) log->push_back(p->name + ":" + std::string(gr::to_string(v.what)) + ":" + v.rule);
        if (v.what == gr::outcome::block) return violation(*p, v, param);
        if (v.what == gr::outcome::redact)
            for (std::size_t i = 0; i < texts.size(); ++i) *texts[i] = parts[i].text;
    }
    return std::nullopt;
}

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

}  // namespace toolgate::gateway::policy
