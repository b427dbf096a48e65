// word-filter: banned words and phrases, whole words only, in one pass over the text whatever the
// size of the list (an Aho-Corasick automaton built at start-up).
//
// config: words (a list), file (one word or phrase per line; blank lines and lines starting with
// '#' are skipped), case_sensitive (default false: ASCII letters match either case; other letters
// match as written), action (block, the default, or redact).
//
// Matching runs on the folded text (normalize.hpp: full-width letters, zero-width characters and
// Unicode spaces undone), with runs of whitespace read as one space so that a phrase matches across
// line breaks and double spaces. A match counts only at word boundaries: the characters on either
// side of it are not word characters (word_filter_chars.hpp: ASCII letters, digits and '_', and
// any non-ASCII letter), so "Scunthorpe" does not contain "cunt". A word that starts or ends with
// punctuation ("c++") has no boundary to respect on that side.
//
// redact replaces each match with one '*' per character of the match as read (a word spelled in
// full-width letters or with zero-width characters inside becomes as many stars as it has letters);
// the characters around it are kept. Verdicts name the rule "word", never the word.
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"
#include "guardrails/normalize.hpp"
#include "guardrails/word_filter_chars.hpp"

namespace toolgate::guardrails {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The text as the automaton reads it: folded, ASCII-lowered unless case-sensitive, whitespace runs
// as one ' '. `origin[j]` is the input byte scan byte j came from (origin[size] = input size); it is
// filled only when asked for (redaction).
struct scan_text {
    std::string text;
    std::vector<std::size_t> origin;
};

scan_text prepare(std::string_view in, bool case_sensitive, bool with_origin) {
    // Pure ASCII needs no folding (nor fold()'s origin map) when no origin is asked for.
    bool ascii = !with_origin && std::all_of(in.begin(), in.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    folded f;
    if (!ascii) f = fold(in);
    std::string_view folded_text = ascii ? in : std::string_view(f.text);
    scan_text out;
    out.text.resize(folded_text.size());
    if (with_origin) out.origin.resize(folded_text.size() + 1);
    char const* src = folded_text.data();
    char* dst = out.text.data();
    std::size_t* org = with_origin ? out.origin.data() : nullptr;
    std::size_t const n = folded_text.size();
    std::size_t j = 0;
    bool in_blank = false;
    for (std::size_t k = 0; k < n; ++k) {
        char c = src[k];
        if (is_blank(c)) {
            if (in_blank) continue;
            in_blank = true;
            c = ' ';
        } else {
            in_blank = false;
            if (!case_sensitive && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        dst[j] = c;
        if (org) org[j] = f.origin[k];
        ++j;
    }
    out.text.resize(j);
    if (with_origin) {
        out.origin[j] = in.size();
        out.origin.resize(j + 1);
    }
    return out;
}

// A word from the config as the automaton stores it; also trimmed.
std::string normalize_word(std::string_view w, bool case_sensitive) {
    auto s = prepare(w, case_sensitive, false).text;
    std::size_t b = 0, e = s.size();
    while (b < e && s[b] == ' ') ++b;
    while (e > b && s[e - 1] == ' ') --e;
    return s.substr(b, e - b);
}

// Whether the code point starting at s[i] / ending just before s[i] is a word character.
bool word_at(std::string_view s, std::size_t i) {
    if (i >= s.size()) return false;
    char32_t cp;
    detail::utf8_decode(s, i, cp);
    return detail::is_word_cp(cp);
}

bool word_before(std::string_view s, std::size_t i) {
    if (i == 0) return false;
    std::size_t b = i - 1;
    // Back to the lead byte of the sequence (at most three continuation bytes).
    for (int k = 0; k < 3 && b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80; ++k) --b;
    char32_t cp;
    auto n = detail::utf8_decode(s, b, cp);
    if (b + n != i) return false;  // a stray continuation byte: invalid, like U+FFFD a separator
    return detail::is_word_cp(cp);
}

// Aho-Corasick over bytes. States are numbered breadth first; the shallow ones, where a scan spends
// nearly all its time, get a dense row of the full transition function over byte classes (a
// class per byte that occurs in some word, one for all others), within a memory budget; deeper
// ones keep their children sorted in one flat array and fall back along failure links. Each state
// knows its nearest terminal suffix, kept apart for words that end in a word character (only worth
// following where the next character is not one) and for those that do not.
class automaton {
public:
    explicit automaton(std::vector<std::string> const& words) {
        // The trie, in insertion order.
        std::vector<std::vector<std::pair<unsigned char, std::int32_t>>> kids(1);
        struct end_info {
            bool terminal = false, starts_word = false, ends_word = false;
        };
        std::vector<end_info> ends(1);
        for (auto const& w : words) {
            std::int32_t at = 0;
            for (unsigned char c : w) {
                auto& ch = kids[at];
                auto it = std::find_if(ch.begin(), ch.end(), [c](auto const& p) { return p.first == c; });
                if (it != ch.end()) {
                    at = it->second;
                    continue;
                }
                auto next = static_cast<std::int32_t>(kids.size());
                ch.emplace_back(c, next);
                kids.emplace_back();
                ends.emplace_back();
                at = next;
            }
            ends[at] = end_info{true, word_at(w, 0), word_before(w, w.size())};
        }
        // Breadth-first numbering: a state's failure target and parent come before it.
        std::vector<std::int32_t> order{0}, id(kids.size(), 0);
        std::vector<std::uint32_t> depth_of(kids.size(), 0);
        for (std::size_t k = 0; k < order.size(); ++k) {
            auto& ch = kids[order[k]];
            std::sort(ch.begin(), ch.end());
            for (auto const& [c, t] : ch) {
                id[t] = static_cast<std::int32_t>(order.size());
                depth_of[t] = depth_of[order[k]] + 1;
                order.push_back(t);
            }
        }
        nodes_.resize(order.size());
        for (std::size_t v = 0; v < order.size(); ++v) {
            auto old = order[v];
            auto& n = nodes_[v];
            n.depth = depth_of[old];
            n.terminal = ends[old].terminal;
            n.starts_word = ends[old].starts_word;
            n.ends_word = ends[old].ends_word;
            n.first = static_cast<std::uint32_t>(labels_.size());
            n.count = static_cast<std::uint32_t>(kids[old].size());
            for (auto const& [c, t] : kids[old]) {
                labels_.push_back(c);
                targets_.push_back(id[t]);
            }
        }
        // Failure and output links, in breadth-first order.
        for (std::size_t v = 0; v < nodes_.size(); ++v) {
            auto& nv = nodes_[v];
            if (v != 0) {
                auto const& f = nodes_[nv.fail];
                nv.out_word = nv.terminal && nv.ends_word ? static_cast<std::int32_t>(v) : f.out_word;
                nv.out_other = nv.terminal && !nv.ends_word ? static_cast<std::int32_t>(v) : f.out_other;
            }
            for (std::uint32_t k = 0; k < nv.count; ++k) {
                auto t = targets_[nv.first + k];
                nodes_[t].fail = v == 0 ? 0 : sparse_step(nv.fail, labels_[nv.first + k]);
            }
        }
        // Byte classes and the dense rows.
        std::array<bool, 256> used{};
        for (auto c : labels_) used[c] = true;
        classes_ = 1;
        for (std::size_t c = 0; c < 256; ++c) class_of_[c] = used[c] ? static_cast<std::uint16_t>(classes_++) : 0;
        dense_ = std::min(nodes_.size(), std::max<std::size_t>(1, dense_budget / (classes_ * sizeof(std::int32_t))));
        delta_.assign(dense_ * classes_, 0);
        std::array<unsigned char, 257> sample{};  // a byte of each class
        for (std::size_t c = 0; c < 256; ++c) sample[class_of_[c]] = static_cast<unsigned char>(c);
        for (std::size_t v = 0; v < dense_; ++v)
            for (std::size_t k = 1; k < classes_; ++k) {
                auto t = child(static_cast<std::int32_t>(v), sample[k]);
                delta_[v * classes_ + k] = t >= 0 ? t : v == 0 ? 0 : delta_[nodes_[v].fail * classes_ + k];
            }
    }

    // Calls on_match(start, end) for every whole-word match in `s`, in order of end; stops when it
    // returns false.
    template <typename F>
    void scan(std::string_view s, F&& on_match) const {
        std::int32_t state = 0;
        auto const* data = reinterpret_cast<unsigned char const*>(s.data());
        for (std::size_t j = 0; j < s.size(); ++j) {
            state = step(state, data[j]);
            if (state == 0) continue;
            auto const& n = nodes_[state];
            if (n.out_word < 0 && n.out_other < 0) continue;
            std::size_t e = j + 1;
            if (n.out_word >= 0 && !word_at(s, e))
                for (auto t = n.out_word; t >= 0; t = nodes_[nodes_[t].fail].out_word)
                    if (!report(s, t, e, on_match)) return;
            for (auto t = n.out_other; t >= 0; t = nodes_[nodes_[t].fail].out_other)
                if (!report(s, t, e, on_match)) return;
        }
    }

private:
    static constexpr std::size_t dense_budget = 4u << 20;  // bytes of dense rows

    struct node {
        std::uint32_t first = 0, count = 0;  // children: labels_/targets_[first, first + count)
        std::int32_t fail = 0;
        std::int32_t out_word = -1, out_other = -1;  // nearest terminal suffix (self included)
        std::uint32_t depth = 0;
        bool terminal = false, starts_word = false, ends_word = false;
    };

    std::int32_t child(std::int32_t v, unsigned char c) const {
        auto const& n = nodes_[v];
        auto const* b = labels_.data() + n.first;
        auto const* e = b + n.count;
        auto const* it = n.count <= 8 ? std::find(b, e, c) : std::lower_bound(b, e, c);
        if (it == e || *it != c) return -1;
        return targets_[n.first + static_cast<std::uint32_t>(it - b)];
    }

    // Along failure links, for the states without a dense row (and while building).
    std::int32_t sparse_step(std::int32_t v, unsigned char c) const {
        for (;;) {
            if (static_cast<std::size_t>(v) < dense_) return delta_[v * classes_ + class_of_[c]];
            auto t = child(v, c);
            if (t >= 0) return t;
            if (v == 0) return 0;
            v = nodes_[v].fail;
        }
    }

    std::int32_t step(std::int32_t v, unsigned char c) const {
        if (static_cast<std::size_t>(v) < dense_) return delta_[v * classes_ + class_of_[c]];
        return sparse_step(v, c);
    }

    template <typename F>
    bool report(std::string_view s, std::int32_t t, std::size_t e, F& on_match) const {
        auto const& n = nodes_[t];
        std::size_t start = e - n.depth;
        if (n.starts_word && word_before(s, start)) return true;
        return on_match(start, e);
    }

    std::vector<node> nodes_;
    std::vector<unsigned char> labels_;
    std::vector<std::int32_t> targets_;
    std::array<std::uint16_t, 256> class_of_{};
    std::size_t classes_ = 1;
    std::size_t dense_ = 0;  // states [0, dense_) have a row in delta_
    std::vector<std::int32_t> delta_;
};

std::size_t code_points(std::string_view s) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp;
        i += detail::utf8_decode(s, i, cp);
        ++n;
    }
    return n;
}

class word_filter final : public guardrail {
public:
    word_filter(std::vector<std::string> const& words, bool case_sensitive, bool redact)
        : automaton_(words), case_sensitive_(case_sensitive), redact_(redact) {
        for (auto const& w : words) longest_ = std::max(longest_, w.size());
    }

    std::string_view name() const override { return "word-filter"; }

    // A word as written in the stream may be longer than its folded form: full-width letters are
    // three bytes each, zero-width characters add bytes in between. Four times the longest word
    // covers a word in full-width letters with some zero-width characters inside.
    std::size_t window() const override { return 4 * longest_ + 16; }

    verdict check(std::vector<text_part>& parts, json::object*, scope&) const override {
        verdict v;
        for (std::size_t p = 0; p < parts.size(); ++p) {
            auto st = prepare(parts[p].text, case_sensitive_, redact_);
            if (!redact_) {
                bool found = false;
                automaton_.scan(st.text, [&](std::size_t, std::size_t) {
                    found = true;
                    return false;
                });
                if (found) {
                    v.what = outcome::block;
                    v.rule = "word";
                    v.part = p;
                    v.detail = "the text contains a word or phrase this gateway does not allow";
                    return v;
                }
                continue;
            }
            // Matches, merged where they overlap or touch (scan order is by end, so starts can go back).
            std::vector<std::pair<std::size_t, std::size_t>> spans;
            automaton_.scan(st.text, [&](std::size_t s, std::size_t e) {
                spans.emplace_back(s, e);
                return true;
            });
            if (spans.empty()) continue;
            std::sort(spans.begin(), spans.end());
            std::vector<std::pair<std::size_t, std::size_t>> merged;
            for (auto const& sp : spans) {
                if (!merged.empty() && sp.first <= merged.back().second)
                    merged.back().second = std::max(merged.back().second, sp.second);
                else
                    merged.push_back(sp);
            }
            auto const& in = parts[p].text;
            std::string out;
            out.reserve(in.size());
            std::size_t at = 0;
            for (auto const& [s, e] : merged) {
                auto os = st.origin[s], oe = st.origin[e];
                out.append(in, at, os - at);
                out.append(code_points(std::string_view(st.text).substr(s, e - s)), '*');
                at = oe;
            }
            out.append(in, at, std::string::npos);
            parts[p].text = std::move(out);
            if (v.what == outcome::pass) {
                v.what = outcome::redact;
                v.rule = "word";
            }
        }
        return v;
    }

private:
    automaton automaton_;
    bool case_sensitive_;
    bool redact_;
    std::size_t longest_ = 0;
};

std::vector<std::string> file_words(std::string const& text, bool case_sensitive) {
    std::vector<std::string> out;
    std::size_t i = 0;
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // a UTF-8 byte order mark
    while (i < text.size()) {
        auto nl = text.find('\n', i);
        if (nl == std::string::npos) nl = text.size();
        std::string_view line(text.data() + i, nl - i);
        i = nl + 1;
        std::size_t b = 0;
        while (b < line.size() && is_blank(line[b])) ++b;
        if (b == line.size() || line[b] == '#') continue;
        auto w = normalize_word(line, case_sensitive);
        if (!w.empty()) out.push_back(std::move(w));
    }
    return out;
}

}  // namespace

std::unique_ptr<guardrail> make_word_filter(json::object const& config, build_context const& ctx) {
    cfg::only_keys(config, {"words", "file", "case_sensitive", "action"});
    bool case_sensitive = cfg::boolean(config, "case_sensitive", false);
    bool redact = cfg::choice(config, "action", {"block", "redact"}, "block") == "redact";
    auto listed = cfg::strings(config, "words");
    auto file = cfg::string(config, "file");
    if (!config.contains("words") && !file)
        throw config_error("config.words", "word-filter needs 'words' (a list) or 'file' (one word per line)");
    std::vector<std::string> words;
    for (std::size_t i = 0; i < listed.size(); ++i) {
        auto w = normalize_word(listed[i], case_sensitive);
        if (w.empty()) throw config_error("config.words[" + std::to_string(i) + "]", "a word may not be empty");
        words.push_back(std::move(w));
    }
    if (file) {
        auto more = file_words(cfg::read_file(ctx, *file, "file"), case_sensitive);
        words.insert(words.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    return std::make_unique<word_filter>(words, case_sensitive, redact);
}

}  // namespace toolgate::guardrails
