// JSON-RPC from stdio MCP servers (mcp/jsonrpc): newline framing of any bytes, split anywhere, then
// each line parsed and classified. Lines must not depend on the split, never exceed the bound, and
// a message classified valid must have what its kind promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/jsonrpc.hpp"

using toolgate::mcp::message;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 31;
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);
    constexpr std::size_t bound = 2048;

    toolgate::mcp::line_framer whole(bound), split(bound);
    std::vector<std::string> a, b;
    std::size_t over_a = 0, over_b = 0;
    whole.feed(bytes, a, over_a);
    for (std::size_t i = 0; i < bytes.size(); i += step) split.feed(bytes.substr(i, step), b, over_b);
    if (a != b || over_a != over_b) std::abort();
    if (whole.buffered() > bound + 1) std::abort();

    for (auto const& line : a) {
        if (line.size() > bound) std::abort();
        auto m = toolgate::mcp::parse_message(line);
        switch (m.type) {
            case message::kind::request:  // (an empty method is a request for a method nobody has)
            case message::kind::response:
                if (!m.id.is_string() && !m.id.is_int64() && !m.id.is_uint64()) std::abort();
                break;
            case message::kind::notification:
                if (!m.id.is_null()) std::abort();
                break;
            case message::kind::error:
            case message::kind::invalid: break;
        }
        (void)toolgate::mcp::id_key(m.id);
    }
    return 0;
}
