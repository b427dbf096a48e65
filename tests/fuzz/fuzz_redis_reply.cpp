// Redis replies (state/redis_proto, hiredis's reader): any bytes, split anywhere. Replies must not
// depend on the split; a stream that is not RESP is an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "state/redis_proto.hpp"

namespace {

using toolgate::state::detail::redis_reply;
using toolgate::state::detail::reply_reader;

bool same(redis_reply const& a, redis_reply const& b) {
    if (a.type != b.type || a.str != b.str || a.integer != b.integer || a.elements.size() != b.elements.size()) return false;
    for (std::size_t i = 0; i < a.elements.size(); ++i)
        if (!same(a.elements[i], b.elements[i])) return false;
    return true;
}

// Replies until the reader wants more bytes or fails; true when it failed.
bool drain(reply_reader& r, std::vector<redis_reply>& out) {
    for (;;) {
        redis_reply rep;
        auto s = r.next(rep);
        if (s == reply_reader::status::more) return false;
        if (s == reply_reader::status::error) return true;
        out.push_back(std::move(rep));
        if (out.size() > 100000) return false;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 13;
    auto const* bytes = reinterpret_cast<char const*>(data + 1);
    std::size_t n = size - 1;

    reply_reader whole;
    std::vector<redis_reply> a;
    whole.feed(bytes, n);
    bool failed_whole = drain(whole, a);

    reply_reader split;
    std::vector<redis_reply> b;
    bool failed_split = false;
    for (std::size_t i = 0; i < n && !failed_split; i += step) {
        split.feed(bytes + i, std::min(step, n - i));
        failed_split = drain(split, b);
    }
    // Replies before a failure agree; a failure may be seen a read later in the split stream.
    std::size_t common = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < common; ++i)
        if (!same(a[i], b[i])) std::abort();
    if (!failed_whole && !failed_split && a.size() != b.size()) std::abort();
    return 0;
}
