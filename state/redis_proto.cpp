#include "state/redis_proto.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace toolgate::state::detail {

namespace {

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
    // The password is not repeated: the message goes to the start-up log.
    std::string shown(url);
    // Everything before the last '@' but a scheme that comes before it is masked, also in text
    // that is no URL at all (found by tests/fuzz/fuzz_redis_url.cpp).
    if (auto at = shown.rfind('@'); at != std::string::npos) {
        std::size_t from = 0;  // after a leading "scheme://", else from the start
        auto scheme = shown.find("://");
        if (scheme != std::string::npos && scheme < at && scheme > 0 &&
            shown.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == scheme)
            from = scheme + 3;
        shown.replace(from, at - from, "***");
    }
    throw std::invalid_argument("state.redis.url \"" + shown + "\": " + std::string(why) +
                                " (expected redis://[:password@]host[:port][/db])");
}

redis_reply convert(redisReply const* r) {
    redis_reply out;
    switch (r->type) {
        case REDIS_REPLY_STRING: out.type = redis_reply::kind::string; break;
        case REDIS_REPLY_STATUS: out.type = redis_reply::kind::status; break;
        case REDIS_REPLY_ERROR: out.type = redis_reply::kind::error; break;
        case REDIS_REPLY_INTEGER: out.type = redis_reply::kind::integer; break;
        case REDIS_REPLY_ARRAY: out.type = redis_reply::kind::array; break;
        default: out.type = redis_reply::kind::nil; break;
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
        out.str.assign(r->str, r->len);
    if (r->type == REDIS_REPLY_INTEGER) out.integer = r->integer;
    if (r->type == REDIS_REPLY_ARRAY) {
        out.elements.reserve(r->elements);
        for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
    }
    return out;
}

}  // namespace

redis_endpoint parse_redis_url(std::string_view url) {
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) bad_url(url, "not a URL");
    auto const& u = *parsed;
    if (u.scheme() != "redis") bad_url(url, "the scheme must be redis:// (rediss:// and unix sockets are not supported)");
    if (u.has_query() || u.has_fragment()) bad_url(url, "query and fragment are not allowed");
    redis_endpoint ep;
    if (u.has_userinfo()) {
        if (!u.user().empty()) bad_url(url, "a user name is not supported, only :password@");
        if (!u.has_password() || u.password().empty()) bad_url(url, "empty password");
        ep.password = u.password();
    }
    if (u.host_type() != boost::urls::host_type::name && u.host_type() != boost::urls::host_type::ipv4 &&
        u.host_type() != boost::urls::host_type::ipv6)
        bad_url(url, "missing host");
    ep.host = u.host_address();
    if (ep.host.empty()) bad_url(url, "missing host");
    if (u.has_port()) {
        auto p = u.port();
        unsigned v = 0;
        auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
        if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535)
            bad_url(url, "the port must be a number from 1 to 65535");
        ep.port = std::string(p);
    }
    std::string path = u.path();
    if (!path.empty() && path != "/") {
        auto db = std::string_view(path).substr(1);
        auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), ep.db);
        if (path.front() != '/' || db.empty() || ec != std::errc() || end != db.data() + db.size() || ep.db < 0)
            bad_url(url, "the path must be a database number (/0, /1, ...)");
    }
    return ep;
}

void append_command(std::string& out, std::vector<std::string> const& args) {
    out += '*';
    out += std::to_string(args.size());
    out += "\r\n";
    for (auto const& a : args) {
        out += '$';
        out += std::to_string(a.size());
        out += "\r\n";
        out += a;
        out += "\r\n";
    }
}

std::string encode_command(std::vector<std::string> const& args) {
    std::string out;
    append_command(out, args);
    return out;
}

reply_reader::reply_reader() : r_(redisReaderCreate()) {
    if (r_ == nullptr) throw std::bad_alloc();
}

reply_reader::~reply_reader() { redisReaderFree(r_); }

std::size_t reply_reader::scan(char const* data, std::size_t n) {
    std::size_t i = 0;
    while (i < n) {
        if (skip_ > 0) {
            auto k = static_cast<std::size_t>(std::min<std::int64_t>(skip_, static_cast<std::int64_t>(n - i)));
            skip_ -= static_cast<std::int64_t>(k);
            i += k;
            continue;
        }
        char c = data[i];
        if (!in_line_) {
            in_line_ = true;
            line_type_ = c;
            line_.clear();
            line_start_ = i;
            ++i;
            continue;
        }
        ++i;
        if (c != '\n' || !after_cr_) {  // lines end at CRLF, as hiredis reads them
            after_cr_ = c == '\r';
            if (line_.size() < 24) line_.push_back(c);
            continue;
        }
        after_cr_ = false;
        in_line_ = false;
        if (line_type_ != '*' && line_type_ != '$') continue;
        std::int64_t v = 0;
        bool digits = false, negative = !line_.empty() && line_[0] == '-';
        for (std::size_t k = negative ? 1 : 0; k < line_.size() && line_[k] >= '0' && line_[k] <= '9'; ++k) {
            digits = true;
            if (v < (std::int64_t(1) << 40)) v = v * 10 + (line_[k] - '0');
        }
        if (!digits || negative) continue;  // hiredis judges what is malformed; -1 is nil
        if (line_type_ == '*' && v > max_elements) return line_start_;
        if (line_type_ == '$') {
            if (v > max_bulk_bytes) return line_start_;
            skip_ = v + 2;
        }
        line_start_ = 0;
    }
    if (in_line_ && line_start_ > 0) line_start_ = 0;  // the next feed starts mid-line
    return n;
}

void reply_reader::feed(char const* data, std::size_t n) {
    if (failed_ || poisoned_ || n == 0) return;
    auto fine = scan(data, n);
    if (fine < n) poisoned_ = true;
    if (fine > 0 && redisReaderFeed(r_, data, fine) != REDIS_OK) failed_ = true;
}

reply_reader::status reply_reader::next(redis_reply& out) {
    if (failed_) return status::error;
    void* raw = nullptr;
    if (redisReaderGetReply(r_, &raw) != REDIS_OK) {
        failed_ = true;
        return status::error;
    }
    if (raw == nullptr) {
        if (poisoned_) {
            failed_ = true;
            return status::error;
        }
        return status::more;
    }
    auto* reply = static_cast<redisReply*>(raw);
    try {
        out = convert(reply);
    } catch (...) {
        freeReplyObject(reply);
        throw;
    }
    freeReplyObject(reply);
    return status::reply;
}

std::string sha1_hex(std::string_view text) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(2 * len, '0');
    for (unsigned i = 0; i < len; ++i) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    return out;
}

}  // namespace toolgate::state::detail
