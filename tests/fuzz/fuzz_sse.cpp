// SSE parsing of upstream streams (common/sse): any bytes, split anywhere. The events must not
// depend on where the reads were split; the parser never grows past its bound.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/sse.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 17;  // the first byte chooses the read size
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);
    constexpr std::size_t bound = 4096;

    toolgate::sse::parser whole(bound);
    std::vector<toolgate::sse::event> a;
    bool ok_whole = whole.feed(bytes, a);

    toolgate::sse::parser split(bound);
    std::vector<toolgate::sse::event> b;
    bool ok_split = true;
    for (std::size_t i = 0; i < bytes.size() && ok_split; i += step) ok_split = split.feed(bytes.substr(i, step), b);

    if (ok_whole != ok_split) std::abort();
    if (!ok_whole) return 0;  // both refused the oversized event
    if (a.size() != b.size()) std::abort();
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].type != b[i].type || a[i].data != b[i].data || a[i].id != b[i].id) std::abort();
        if (a[i].data.size() > bound) std::abort();
    }
    return 0;
}
