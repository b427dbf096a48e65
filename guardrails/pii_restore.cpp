#include "guardrails/pii_restore.hpp"

#include <cstring>

namespace toolgate::guardrails {

namespace {

bool is_placeholder_char(char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

// Appends `in` to `out` with known placeholders replaced. With `final` false, a tail that could
// still become a placeholder is not appended: its offset is returned (in.size() when there is none).
template <class Lookup>
std::size_t restore_into(std::string& out, std::string_view in, std::size_t longest, bool final, Lookup const& lookup) {
    std::size_t i = 0;
    while (i < in.size()) {
        auto const* lt = static_cast<char const*>(std::memchr(in.data() + i, '<', in.size() - i));
        if (!lt) break;
        auto p = static_cast<std::size_t>(lt - in.data());
        out.append(in.substr(i, p - i));
        std::size_t j = p + 1;
        while (j < in.size() && j - p < longest && is_placeholder_char(in[j])) ++j;
        if (j < in.size() && in[j] == '>' && j > p + 1) {
            auto name = in.substr(p, j + 1 - p);
            if (auto const* original = lookup(name))
                out.append(*original);
            else
                out.append(name);
            i = j + 1;
            continue;
        }
        if (!final && j == in.size() && in.size() - p < longest) return p;  // may still grow into one
        out.push_back('<');
        i = p + 1;
    }
    if (i < in.size()) out.append(in.substr(i));
    return in.size();
}

std::size_t longest_of(scope const& s) {
    std::size_t n = 0;
    for (auto const& [name, original] : s.placeholders) n = std::max(n, name.size());
    return n;
}

}  // namespace

std::string restore_placeholders(std::string_view text, scope const& s) {
    if (s.placeholders.empty()) return std::string(text);
    std::unordered_map<std::string_view, std::string const*> by_name;
    by_name.reserve(s.placeholders.size());
    for (auto const& [name, original] : s.placeholders) by_name.emplace(name, &original);
    std::string out;
    out.reserve(text.size());
    restore_into(out, text, longest_of(s), true, [&](std::string_view name) -> std::string const* {
        auto it = by_name.find(name);
        return it == by_name.end() ? nullptr : it->second;
    });
    return out;
}

placeholder_restorer::placeholder_restorer(scope const& s) : s_(&s) { index(); }

void placeholder_restorer::index() {
    auto const& ph = s_->placeholders;
    if (ph.size() < indexed_) {  // the scope was reset: start over
        by_name_.clear();
        indexed_ = 0;
        longest_ = 0;
    }
    for (; indexed_ < ph.size(); ++indexed_) {
        by_name_.emplace(ph[indexed_].first, indexed_);
        longest_ = std::max(longest_, ph[indexed_].first.size());
    }
}

std::string placeholder_restorer::feed(std::string_view chunk) {
    index();
    std::string out;
    if (longest_ == 0 && pending_.empty()) {
        out.assign(chunk);
        return out;
    }
    std::string buf = std::move(pending_);
    pending_.clear();
    buf.append(chunk);
    out.reserve(buf.size());
    auto const& ph = s_->placeholders;
    auto held = restore_into(out, buf, longest_, false, [&](std::string_view name) -> std::string const* {
        auto it = by_name_.find(std::string(name));
        return it == by_name_.end() ? nullptr : &ph[it->second].second;
    });
    pending_.assign(buf, held, std::string::npos);
    return out;
}

std::string placeholder_restorer::finish() {
    index();
    std::string out = std::move(pending_);
    pending_.clear();
    return out;
}

}  // namespace toolgate::guardrails
