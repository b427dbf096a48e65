#include "providers/eventstream.hpp"

#include <array>

namespace toolgate::providers::eventstream {

namespace {

constexpr std::size_t prelude_bytes = 12;  // total length, headers length, prelude CRC
constexpr std::size_t overhead = 16;       // the prelude and the message CRC

std::array<std::uint32_t, 256> const& crc_table() {
    static auto const table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    return table;
}

std::uint64_t big_endian(std::string_view b, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
    return v;
}

void put_big_endian(std::string& out, std::uint64_t v, std::size_t n) {
    for (std::size_t i = n; i-- > 0;) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// The headers of one message; false when they do not parse exactly to their end.
bool parse_headers(std::string_view h, std::vector<std::pair<std::string, header_value>>& out) {
    using kind = header_value::kind;
    std::size_t at = 0;
    while (at < h.size()) {
        std::size_t name_len = static_cast<unsigned char>(h[at++]);
        if (name_len == 0 || at + name_len + 1 > h.size()) return false;
        std::string name(h.substr(at, name_len));
        at += name_len;
        auto type = static_cast<unsigned char>(h[at++]);
        if (type > static_cast<unsigned char>(kind::uuid)) return false;
        header_value v;
        v.type = static_cast<kind>(type);
        auto fixed = [&](std::size_t n, bool is_signed) {
            if (at + n > h.size()) return false;
            auto raw = big_endian(h, at, n);
            if (is_signed && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~std::uint64_t(0) << (8 * n);  // sign extension
            v.number = static_cast<std::int64_t>(raw);
            at += n;
            return true;
        };
        switch (v.type) {
            case kind::bool_true:
            case kind::bool_false: break;
            case kind::byte: if (!fixed(1, true)) return false; break;
            case kind::int16: if (!fixed(2, true)) return false; break;
            case kind::int32: if (!fixed(4, true)) return false; break;
            case kind::int64:
            case kind::timestamp: if (!fixed(8, true)) return false; break;
            case kind::bytes:
            case kind::string: {
                if (at + 2 > h.size()) return false;
                auto n = static_cast<std::size_t>(big_endian(h, at, 2));
                at += 2;
                if (at + n > h.size()) return false;
                v.text = std::string(h.substr(at, n));
                at += n;
                break;
            }
            case kind::uuid:
                if (at + 16 > h.size()) return false;
                v.text = std::string(h.substr(at, 16));
                at += 16;
                break;
        }
        out.emplace_back(std::move(name), std::move(v));
    }
    return true;
}

}  // namespace

std::string_view to_string(error e) {
    switch (e) {
        case error::none: return "none";
        case error::too_large: return "message larger than the limit";
        case error::bad_length: return "impossible message or headers length";
        case error::bad_prelude_crc: return "prelude checksum mismatch";
        case error::bad_message_crc: return "message checksum mismatch";
        case error::bad_header: return "malformed header";
    }
    return "unknown";
}

std::string_view message::header(std::string_view name) const {
    for (auto const& [k, v] : headers)
        if (k == name && v.type == header_value::kind::string) return v.text;
    return {};
}

std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
    auto const& t = crc_table();
    crc = ~crc;
    for (unsigned char c : data) crc = t[(crc ^ c) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

bool decoder::feed(std::string_view bytes, std::vector<message>& out) {
    if (failure_ != error::none) return false;
    buf_.append(bytes);
    for (;;) {
        std::string_view rest(buf_.data() + at_, buf_.size() - at_);
        if (rest.size() < prelude_bytes) break;
        auto total = static_cast<std::size_t>(big_endian(rest, 0, 4));
        auto headers_len = static_cast<std::size_t>(big_endian(rest, 4, 4));
        if (crc32(rest.substr(0, 8)) != big_endian(rest, 8, 4)) return fail(error::bad_prelude_crc);
        if (total < overhead || headers_len > total - overhead) return fail(error::bad_length);
        if (total > max_) return fail(error::too_large);
        if (rest.size() < total) break;
        if (crc32(rest.substr(0, total - 4)) != big_endian(rest, total - 4, 4)) return fail(error::bad_message_crc);
        message m;
        if (!parse_headers(rest.substr(prelude_bytes, headers_len), m.headers)) return fail(error::bad_header);
        m.payload = std::string(rest.substr(prelude_bytes + headers_len, total - overhead - headers_len));
        out.push_back(std::move(m));
        at_ += total;
    }
    if (at_ > 0 && (at_ == buf_.size() || at_ > 64 * 1024)) {
        buf_.erase(0, at_);
        at_ = 0;
    }
    return true;
}

std::string encode(message const& m) {
    using kind = header_value::kind;
    std::string headers;
    for (auto const& [name, v] : m.headers) {
        headers.push_back(static_cast<char>(name.size()));
        headers += name;
        headers.push_back(static_cast<char>(v.type));
        switch (v.type) {
            case kind::bool_true:
            case kind::bool_false: break;
            case kind::byte: put_big_endian(headers, static_cast<std::uint64_t>(v.number), 1); break;
            case kind::int16: put_big_endian(headers, static_cast<std::uint64_t>(v.number), 2); break;
            case kind::int32: put_big_endian(headers, static_cast<std::uint64_t>(v.number), 4); break;
            case kind::int64:
            case kind::timestamp: put_big_endian(headers, static_cast<std::uint64_t>(v.number), 8); break;
            case kind::bytes:
            case kind::string:
                put_big_endian(headers, v.text.size(), 2);
                headers += v.text;
                break;
            case kind::uuid: headers += v.text.substr(0, 16); break;
        }
    }
    std::string out;
    std::size_t total = overhead + headers.size() + m.payload.size();
    put_big_endian(out, total, 4);
    put_big_endian(out, headers.size(), 4);
    put_big_endian(out, crc32(out), 4);
    out += headers;
    out += m.payload;
    put_big_endian(out, crc32(out), 4);
    return out;
}

}  // namespace toolgate::providers::eventstream
