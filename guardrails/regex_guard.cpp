// regex-guard: the operator's own patterns (RE2 syntax), all of them in one RE2::Set pass, in time
// linear in the text whatever the pattern (RE2 has no backtracking), so a pattern cannot stall a
// worker.
//
// config: patterns (a list; each a pattern, or {name, pattern} to name its rule; an unnamed one's
// rule is "pattern_<i>", its position in the list), action (block, the default, or redact: each
// match becomes "[redacted]"), max_match_bytes (default 256: the longest match a stream is held
// back for, in bytes of the text as written).
//
// Patterns run on the folded text (normalize.hpp), so full-width letters and zero-width characters
// do not hide a match; case is the pattern's business ((?i)). The set says which patterns match;
// only those are run again, one by one, to find where (for redaction). A pattern that matches the
// empty text is refused (it would match every message). Should the set's DFA run out of memory on
// some text, each pattern runs alone instead: slower, still linear.
//
// Linear, but the constant depends on the pattern. Ordinary patterns (literals, classes, \b,
// bounded repeats of a class after a literal) run at DFA speed: 1000 of them scan 1 MB in about
// 10 ms. A pattern whose DFA has exponentially many states, the classic being a broad class repeated
// a fixed number of times after a common character (`a[ab]{20}c`, `x.{16}y`), makes RE2's set DFA
// rebuild its state cache over and over (the set has no NFA fallback): measured 0.3 s per MB for
// `a[ab]{16}c` and 1 s per MB for `a[ab]{20}c` on text made to hit it. Such a pattern cannot hang
// a worker, but operators should avoid it; request size limits bound the cost.
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/normalize.hpp"

namespace toolgate::guardrails {

namespace {

constexpr std::int64_t regex_memory = 64 << 20;  // per compiled set, and per pattern
constexpr std::string_view replacement = "[redacted]";

RE2::Options options() {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(regex_memory);
    return o;
}

struct pattern {
    std::string rule;
    std::unique_ptr<RE2> re;
};

class regex_guard final : public guardrail {
public:
    regex_guard(std::vector<pattern> patterns, std::unique_ptr<RE2::Set> set, bool redact, std::size_t max_match)
        : patterns_(std::move(patterns)), set_(std::move(set)), redact_(redact), max_match_(max_match) {}

    std::string_view name() const override { return "regex-guard"; }
    std::size_t window() const override { return max_match_; }

    verdict check(std::vector<text_part>& parts, json::object*, scope&) const override {
        verdict v;
        for (std::size_t p = 0; p < parts.size(); ++p) {
            auto f = fold(parts[p].text);
            auto hits = matching(f.text);
            if (hits.empty()) continue;
            if (!redact_) {
                v.what = outcome::block;
                v.rule = patterns_[hits.front()].rule;
                v.part = p;
                v.detail = "the text matches a pattern this gateway does not allow";
                return v;
            }
            auto spans = positions(f.text, hits);
            if (spans.empty()) continue;  // only empty matches: nothing to take out
            auto const& in = parts[p].text;
            std::string out;
            out.reserve(in.size());
            std::size_t at = 0;
            for (auto const& [s, e] : spans) {
                auto os = f.origin[s], oe = f.origin[e];
                out.append(in, at, os - at);
                out.append(replacement);
                at = oe;
            }
            out.append(in, at, std::string::npos);
            parts[p].text = std::move(out);
            if (v.what == outcome::pass) {
                v.what = outcome::redact;
                v.rule = patterns_[hits.front()].rule;
            }
        }
        return v;
    }

private:
    // The patterns that match somewhere in `text`, in config order.
    std::vector<int> matching(std::string_view text) const {
        std::vector<int> hits;
        RE2::Set::ErrorInfo err{RE2::Set::kNoError};
        if (!set_->Match(text, &hits, &err) && err.kind != RE2::Set::kNoError) {
            hits.clear();  // out of memory: one pattern at a time
            for (std::size_t i = 0; i < patterns_.size(); ++i)
                if (patterns_[i].re->Match(text, 0, text.size(), RE2::UNANCHORED, nullptr, 0))
                    hits.push_back(static_cast<int>(i));
        }
        std::sort(hits.begin(), hits.end());
        return hits;
    }

    // Where the matching patterns match (non-empty matches), merged where they overlap.
    std::vector<std::pair<std::size_t, std::size_t>> positions(std::string_view text,
                                                               std::vector<int> const& hits) const {
        std::vector<std::pair<std::size_t, std::size_t>> spans;
        for (int i : hits) {
            auto const& re = *patterns_[static_cast<std::size_t>(i)].re;
            std::size_t pos = 0;
            re2::StringPiece m;
            while (pos <= text.size() && re.Match(text, pos, text.size(), RE2::UNANCHORED, &m, 1)) {
                auto s = static_cast<std::size_t>(m.data() - text.data());
                auto e = s + m.size();
                if (e > s) {
                    spans.emplace_back(s, e);
                    pos = e;
                } else {
                    pos = s + 1;  // an empty match: step over one byte
                }
            }
        }
        std::sort(spans.begin(), spans.end());
        std::vector<std::pair<std::size_t, std::size_t>> merged;
        for (auto const& sp : spans) {
            if (!merged.empty() && sp.first < merged.back().second)
                merged.back().second = std::max(merged.back().second, sp.second);
            else
                merged.push_back(sp);
        }
        return merged;
    }

    std::vector<pattern> patterns_;
    std::unique_ptr<RE2::Set> set_;
    bool redact_;
    std::size_t max_match_;
};

}  // namespace

std::unique_ptr<guardrail> make_regex_guard(json::object const& config, build_context const&) {
    cfg::only_keys(config, {"patterns", "action", "max_match_bytes"});
    bool redact = cfg::choice(config, "action", {"block", "redact"}, "block") == "redact";
    double max_match = cfg::number(config, "max_match_bytes", 256, 1, 1 << 20);
    if (max_match != static_cast<double>(static_cast<std::size_t>(max_match)))
        throw config_error("config.max_match_bytes", "'max_match_bytes' must be a whole number");
    auto const* list = config.if_contains("patterns");
    if (!list || !list->is_array() || list->get_array().empty())
        throw config_error("config.patterns", "'patterns' must be a non-empty list of patterns or {name, pattern}");
    auto const& entries = list->get_array();

    auto set = std::make_unique<RE2::Set>(options(), RE2::UNANCHORED);
    std::vector<pattern> patterns;
    for (std::size_t i = 0; i < entries.size(); ++i) {
        std::string key = "config.patterns[" + std::to_string(i) + "]";
        pattern p;
        std::string text;
        if (entries[i].is_string()) {
            text = entries[i].get_string();
            p.rule = "pattern_" + std::to_string(i);
        } else if (entries[i].is_object()) {
            auto const& o = entries[i].get_object();
            for (auto const& kv : o)
                if (kv.key() != "name" && kv.key() != "pattern")
                    throw config_error(key + "." + std::string(kv.key()),
                                       "unknown key '" + std::string(kv.key()) + "' (known: name, pattern)");
            auto const* n = o.if_contains("name");
            auto const* pt = o.if_contains("pattern");
            if (!pt || !pt->is_string()) throw config_error(key + ".pattern", "'pattern' must be a string");
            if (n && !(n->is_string() && !n->get_string().empty()))
                throw config_error(key + ".name", "'name' must be a non-empty string");
            text = pt->get_string();
            p.rule = n ? std::string(n->get_string()) : "pattern_" + std::to_string(i);
        } else {
            throw config_error(key, "every entry of 'patterns' must be a pattern or {name, pattern}");
        }
        std::string error;
        if (set->Add(text, &error) < 0) throw config_error(key, "RE2 refuses the pattern: " + error);
        p.re = std::make_unique<RE2>(text, options());
        if (!p.re->ok()) throw config_error(key, "RE2 refuses the pattern: " + p.re->error());
        // A pattern that matches the empty text matches every message: surely a mistake.
        if (p.re->Match("", 0, 0, RE2::UNANCHORED, nullptr, 0))
            throw config_error(key, "the pattern matches the empty text, so it would match every message");
        patterns.push_back(std::move(p));
    }
    if (!set->Compile()) throw config_error("config.patterns", "the patterns need more memory than RE2 is given");
    return std::make_unique<regex_guard>(std::move(patterns), std::move(set), redact,
                                         static_cast<std::size_t>(max_match));
}

}  // namespace toolgate::guardrails
