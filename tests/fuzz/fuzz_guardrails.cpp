// What the guardrails read: any text a client, a model or an MCP server sends, checked by every
// guardrail plugin (word-filter, max-token, regex-guard, pii-redact, secret-scan, prompt-shield,
// schema-guard), and pii-redact's placeholders put back (whole and streamed). The first byte
// chooses the part's role; the text is cut into up to four parts at 0xff bytes.
// Oracles: no crash or sanitizer report; a verdict names a part that exists; a block names its
// rule; what pii-redact takes out, restore puts back exactly (the text without placeholders of its
// own); the streamed restore equals the whole one however the answer is split.
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "guardrails/guardrail.hpp"
#include "guardrails/pii_restore.hpp"

namespace json = boost::json;
namespace g = toolgate::guardrails;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct plugin {
    char const* name;
    char const* config;
};
constexpr plugin plugins[] = {
    {"word-filter", R"({"words": ["darn", "heck", "über", "a b"], "action": "redact"})"},
    {"max-token", R"({"max_input_tokens": 64, "max_output_tokens": 16, "max_messages": 3})"},
    {"regex-guard", R"({"patterns": ["(?i)project\\s+aurora", "[0-9]{4,}x"], "action": "block"})"},
    {"pii-redact", R"({"entities": ["email", "phone", "credit_card", "iban", "us_ssn", "ip_address"], "action": "redact", "restore": true})"},
    {"secret-scan", R"({"action": "redact"})"},
    {"prompt-shield", R"({"threshold": 0.7})"},
    {"schema-guard", R"({"schema": {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[A-Z]+-[0-9]+$"}, "n": {"type": "integer", "maximum": 10}}, "required": ["id"]}})"},
};

std::vector<std::unique_ptr<g::guardrail>> const& built() {
    static auto const all = [] {
        std::vector<std::unique_ptr<g::guardrail>> v;
        for (auto const& p : plugins) v.push_back(g::make(p.name, json::parse(p.config).as_object(), g::build_context{}));
        return v;
    }();
    return all;
}

json::object chat_body() {
    json::object b;
    b["model"] = "m";
    b["max_tokens"] = 100;
    return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    auto const& guards = built();
    auto kind = static_cast<g::part_kind>(data[0] % 6);
    std::string_view text(reinterpret_cast<char const*>(data + 1), size - 1);

    std::vector<g::text_part> original;
    for (std::size_t at = 0; at <= text.size() && original.size() < 4;) {
        auto cut = text.find('\xff', at);
        if (cut == std::string_view::npos) cut = text.size();
        g::text_part p;
        p.kind = kind;
        p.index = original.size();
        p.text = std::string(text.substr(at, cut - at));
        original.push_back(std::move(p));
        at = cut + 1;
    }

    for (auto const& guard : guards) {
        auto parts = original;
        auto body = chat_body();
        g::scope s;
        auto v = guard->check(parts, &body, s);
        require(parts.size() == original.size());
        if (v.what == g::outcome::block) {
            require(v.part < parts.size());
            require(!v.rule.empty());
        }
        if (guard->name() != "pii-redact" || v.what != g::outcome::redact) continue;
        // Restore puts back what was taken out, unless the text had placeholder-like text of its own.
        for (std::size_t i = 0; i < parts.size(); ++i) {
            auto restored = g::restore_placeholders(parts[i].text, s);
            if (original[i].text.find('<') == std::string::npos) require(restored == original[i].text);
            // Streamed, in pieces of 3 bytes: the same as whole.
            g::placeholder_restorer r(s);
            std::string streamed;
            std::string_view redacted = parts[i].text;
            for (std::size_t k = 0; k < redacted.size(); k += 3) streamed += r.feed(redacted.substr(k, 3));
            streamed += r.finish();
            require(streamed == restored);
        }
    }
    return 0;
}
