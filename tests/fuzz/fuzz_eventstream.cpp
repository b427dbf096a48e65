// The AWS event stream framing of Bedrock's ConverseStream (providers/eventstream): any bytes,
// split anywhere (the first byte chooses the read size), against a small message limit.
// Oracles: no crash or sanitizer report; the same messages and the same failure however the reads
// were split; every message decoded encodes back to exactly the bytes it came from.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "providers/eventstream.hpp"

namespace es = toolgate::providers::eventstream;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

struct outcome {
    std::vector<es::message> messages;
    es::error failure = es::error::none;
};

outcome decode(std::string_view bytes, std::size_t step) {
    es::decoder d(4096);
    outcome o;
    for (std::size_t i = 0; i < bytes.size(); i += step)
        if (!d.feed(bytes.substr(i, step), o.messages)) break;
    o.failure = d.failure();
    return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 37;
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);
    auto whole = decode(bytes, bytes.size() + 1);
    auto split = decode(bytes, step);
    require(whole.failure == split.failure);
    require(whole.messages.size() == split.messages.size());
    std::string again;
    for (std::size_t i = 0; i < whole.messages.size(); ++i) {
        auto const& a = whole.messages[i];
        auto const& b = split.messages[i];
        require(a.payload == b.payload && a.headers.size() == b.headers.size());
        again += es::encode(a);
    }
    require(bytes.substr(0, again.size()) == again);
    return 0;
}
