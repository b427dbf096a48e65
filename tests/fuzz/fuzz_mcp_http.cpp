// An MCP server's Streamable HTTP answer, read the way toolgate's MCP client reads it: the body
// (JSON, or an SSE stream when the first byte says so) through mcp::detail::message_reader into
// the message queue, each message classified (mcp::parse_message), and a tools/call result made
// into the text the model sees (agentloop::tool_message_text, bounded). The second byte chooses
// the read size.
// Oracles: no crash or sanitizer report; the messages do not depend on how the reads were split;
// no message is larger than the bound; the model's text is cut at its bound (plus the notice) on a
// UTF-8 boundary.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agentloop/loop.hpp"
#include "mcp/http_reader.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/tool_outcome.hpp"

namespace asio = boost::asio;
using namespace toolgate;

namespace {

constexpr std::size_t max_message = 1024;  // small, so that inputs reach it
constexpr std::size_t max_text = 512;

void require(bool ok) {
    if (!ok) std::abort();
}

// Every message the reader queued, in order; "!" at the end when it refused the body.
asio::awaitable<void> feed(mcp::detail::message_reader& reader, mcp::detail::message_queue& q, std::string_view bytes,
                           std::size_t step, std::vector<std::string>& out) {
    bool ok = true;
    for (std::size_t i = 0; i < bytes.size() && ok; i += step) ok = co_await reader.on_data(bytes.substr(i, step));
    if (ok) reader.finish();
    q.close(asio::error::eof);
    for (;;) {
        auto m = co_await q.pop();
        if (!m) break;
        out.push_back(std::move(*m));
    }
    if (!ok) out.emplace_back("!");
}

std::vector<std::string> read_body(bool sse, std::string_view bytes, std::size_t step) {
    asio::io_context ioc;
    mcp::detail::message_queue q(ioc.get_executor());
    std::string last_id;
    mcp::detail::message_reader reader(q, max_message, &last_id);
    http::response head;
    head.status = 200;
    head.headers.emplace_back("content-type", sse ? "text/event-stream" : "application/json");
    head.headers.emplace_back("mcp-session-id", "s1");
    reader.on_head(head);
    std::vector<std::string> out;
    asio::co_spawn(ioc, feed(reader, q, bytes, step, out), asio::detached);
    ioc.run();
    require(reader.session_id == "s1");
    return out;
}

bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
        i += n;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 2) return 0;
    bool sse = data[0] & 1;
    std::size_t step = 1 + data[1] % 29;
    std::string_view bytes(reinterpret_cast<char const*>(data + 2), size - 2);

    auto whole = read_body(sse, bytes, bytes.size() + 1);
    auto split = read_body(sse, bytes, step);
    require(whole == split);

    for (auto const& text : whole) {
        if (text == "!") continue;
        require(text.size() <= max_message);
        auto m = mcp::parse_message(text);
        if (m.type != mcp::message::kind::response) continue;
        mcp::tool_outcome outcome;
        outcome.ok = true;
        if (m.result.is_object()) outcome.result = m.result.get_object();
        outcome.truncated = data[0] & 2;
        auto shown = agentloop::tool_message_text("t", outcome, max_text);
        require(shown.size() <= max_text + 80);
        // Cut text stays valid UTF-8 when what was cut was valid (JSON strings decode to it).
        if (shown.size() > max_text) require(valid_utf8(shown));
    }
    return 0;
}
