#include "common/multipart.hpp"

#include <algorithm>
#include <cctype>

namespace toolgate::multipart {

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// A header parameter (`name="value"` or `name=value`) of a header value; nullopt when absent.
std::optional<std::string> param(std::string_view header, std::string_view key) {
    auto const n = header.size();
    std::size_t i = header.find(';');
    while (i != std::string_view::npos && i < n) {
        ++i;  // past the ';'
        auto eq = header.find('=', i);
        if (eq == std::string_view::npos) return std::nullopt;
        auto k = lower(trim(header.substr(i, eq - i)));
        i = eq + 1;
        while (i < n && (header[i] == ' ' || header[i] == '\t')) ++i;
        std::string value;
        if (i < n && header[i] == '"') {
            for (++i; i < n && header[i] != '"'; ++i) {
                if (header[i] == '\\' && i + 1 < n) ++i;
                value += header[i];
            }
            if (i >= n) return std::nullopt;  // no closing quote
            i = header.find(';', i + 1);
        } else {
            auto end = header.find(';', i);
            value = std::string(trim(header.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i)));
            i = end;
        }
        if (k == key) return value;
    }
    return std::nullopt;
}

// The next "\r\n--boundary" that is a delimiter line (followed by "--", or by optional white
// space and a line end) from `from`; data that merely starts like one is skipped.
std::size_t delimiter_at(std::string_view body, std::string_view delim, std::size_t from) {
    for (;;) {
        auto at = body.find(delim, from);
        if (at == std::string_view::npos) return at;
        auto after = at + delim.size();
        if (body.substr(after, 2) == "--") return at;
        while (after < body.size() && (body[after] == ' ' || body[after] == '\t')) ++after;
        if (body.substr(after, 2) == "\r\n") return at;
        from = at + 1;
    }
}

}  // namespace

std::optional<std::string> boundary_of(std::string_view content_type) {
    auto semi = content_type.find(';');
    if (lower(trim(content_type.substr(0, semi))) != "multipart/form-data") return std::nullopt;
    auto b = param(content_type, "boundary");
    if (!b || b->empty() || b->size() > 70) return std::nullopt;
    return b;
}

std::optional<std::vector<part>> parse(std::string_view body, std::string_view boundary, std::size_t max_parts) {
    std::string delim = "--" + std::string(boundary);
    // The first delimiter may follow a preamble; a delimiter elsewhere starts a line.
    std::size_t pos = 0;
    if (body.substr(0, delim.size()) != delim) {
        pos = body.find("\r\n" + delim);
        if (pos == std::string_view::npos) return std::nullopt;
        pos += 2;
    }
    std::string next_delim = "\r\n" + delim;
    std::vector<part> parts;
    for (;;) {
        pos += delim.size();
        if (body.substr(pos, 2) == "--") return parts;  // the closing delimiter (an epilogue may follow)
        // Transport padding, then the line's end.
        while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
        if (body.substr(pos, 2) != "\r\n") return std::nullopt;
        pos += 2;
        if (parts.size() >= max_parts) return std::nullopt;
        part p;
        bool named = false;
        // Headers, up to an empty line.
        for (;;) {
            auto eol = body.find("\r\n", pos);
            if (eol == std::string_view::npos || eol - pos > 8 * 1024) return std::nullopt;
            auto line = body.substr(pos, eol - pos);
            pos = eol + 2;
            if (line.empty()) break;
            auto colon = line.find(':');
            if (colon == std::string_view::npos) return std::nullopt;
            auto name = lower(trim(line.substr(0, colon)));
            auto value = trim(line.substr(colon + 1));
            if (name == "content-disposition") {
                auto n = param(value, "name");
                if (!n) return std::nullopt;
                p.name = std::move(*n);
                named = true;
                if (auto f = param(value, "filename")) p.filename = std::move(*f);
            } else if (name == "content-type") {
                p.content_type = std::string(value);
            }
        }
        if (!named) return std::nullopt;
        auto end = delimiter_at(body, next_delim, pos);
        if (end == std::string_view::npos) return std::nullopt;
        p.data_begin = pos;
        p.data = body.substr(pos, end - pos);
        parts.push_back(std::move(p));
        pos = end + 2;
    }
}

part const* field(std::vector<part> const& parts, std::string_view name) {
    for (auto const& p : parts)
        if (p.filename.empty() && p.name == name) return &p;
    return nullptr;
}

std::string with_field(std::string_view body, std::vector<part> const& parts, std::string_view name,
                       std::string_view value) {
    auto const* f = field(parts, name);
    if (!f) return std::string(body);
    std::string out;
    out.reserve(body.size() + value.size());
    out.append(body.substr(0, f->data_begin));
    out.append(value);
    out.append(body.substr(f->data_begin + f->data.size()));
    return out;
}

}  // namespace toolgate::multipart
