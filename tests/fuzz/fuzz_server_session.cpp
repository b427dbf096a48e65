// What an MCP client sends to /mcp (and to `toolgate mcp-stdio`), handled by mcp::server_session
// over an aggregator with one scripted upstream server (echo tools; no sockets, no processes). The
// input is one JSON-RPC message per line; when the first byte is odd, the session is initialized
// first, so that the fuzzer reaches past the handshake.
// Oracles: no crash or sanitizer report; every request gets exactly one answer, a JSON-RPC result
// or error with the request's id; notifications and responses get none; the session and the
// aggregator stop cleanly afterwards (nothing left running).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fakes/scripted_transport.hpp"
#include "mcp/aggregator.hpp"
#include "mcp/jsonrpc.hpp"
#include "mcp/server_session.hpp"

namespace asio = boost::asio;
namespace json = boost::json;
using namespace toolgate;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

mcp::server_config upstream_config() {
    mcp::server_config c;
    c.name = std::string(1, 'a');  // (not = "a": GCC 12 warns -Wrestrict falsely on that assignment)
    return c;
}

std::string initialize_request() {
    return R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",)"
           R"("capabilities":{},"clientInfo":{"name":"fuzz","version":"1"}}})";
}

void check_answer(mcp::message const& asked, std::optional<std::string> const& answer) {
    if (asked.type == mcp::message::kind::notification || asked.type == mcp::message::kind::response ||
        asked.type == mcp::message::kind::error) {
        require(!answer.has_value());
        return;
    }
    if (asked.type == mcp::message::kind::invalid && !answer) return;
    require(answer.has_value());
    auto m = mcp::parse_message(*answer);
    require(m.type == mcp::message::kind::response || m.type == mcp::message::kind::error);
    if (asked.type == mcp::message::kind::request) require(m.id == asked.id);
}

asio::awaitable<void> scenario(mcp::aggregator& agg, fakes::event_signal& events, std::vector<std::string> lines,
                               bool& done) {
    agg.start();
    co_await events.until([&] {
        for (auto const& v : agg.servers())
            if (v.status != mcp::server_status::up) return false;
        return true;
    });
    mcp::server_session_options opts;
    opts.settle_timeout = std::chrono::milliseconds(200);
    auto s = std::make_shared<mcp::server_session>(agg, opts);
    mcp::server_session::emit_fn ignore = [](std::string) {};
    s->set_channel(ignore);
    for (auto& line : lines) {
        auto asked = mcp::parse_message(line);
        auto answer = co_await s->handle(mcp::parse_message(line), ignore);
        check_answer(asked, answer);
    }
    co_await s->close();
    co_await agg.stop();
    done = true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1 || size > 64 * 1024) return 0;
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);
    std::vector<std::string> lines;
    if (data[0] & 1) lines.push_back(initialize_request());
    for (std::size_t at = 0; at <= bytes.size() && lines.size() < 64;) {
        auto nl = bytes.find('\n', at);
        if (nl == std::string_view::npos) nl = bytes.size();
        if (nl > at) lines.emplace_back(bytes.substr(at, nl - at));
        at = nl + 1;
    }

    fakes::event_signal events;
    fakes::scripted_server upstream(&events);
    upstream.tools = fakes::tools_named({"echo", "other"});
    upstream.on_request = [](mcp::message const& m, fakes::scripted_transport& t) {
        if (m.method != "tools/call") return false;
        std::string args = "{}";
        if (auto const* p = m.params.if_object(); p && p->contains("arguments")) args = json::serialize(p->at("arguments"));
        t.deliver(mcp::make_result(m.id, fakes::text_result("got " + args)));
        return true;
    };
    asio::io_context ioc(1);
    mcp::aggregator_options opts;
    opts.backoff_min = std::chrono::milliseconds(1);
    opts.backoff_max = std::chrono::milliseconds(4);
    opts.make_transport = [&](asio::any_io_executor ex, mcp::server_config const&, mcp::log_sink) {
        return upstream.connect(ex);
    };
    std::vector<mcp::server_config> servers{upstream_config()};
    mcp::aggregator agg(ioc.get_executor(), std::move(servers), std::move(opts),
                        [](std::string const&) -> mcp::log_sink { return [](mcp::log_level, std::string const&) {}; });
    agg.on_catalog_change([&] { events.notify(); });  // the server came up: wake the scenario
    bool done = false;
    asio::co_spawn(ioc, scenario(agg, events, std::move(lines), done), [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
    });
    ioc.run_for(std::chrono::seconds(10));
    require(done);          // no request hung
    require(ioc.stopped());  // nothing left running after the aggregator stopped
    return 0;
}
