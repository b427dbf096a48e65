#pragma once
// Gateway tools for agent-loop tests: each answers after a delay (on the test's clock), fails,
// reports an error, or hangs until cancelled; the toolbox counts calls, the most running at once,
// and cancellations.
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "agentloop/loop.hpp"
#include "common/time_source.hpp"

namespace toolgate::fakes {

namespace asio = boost::asio;
namespace json = boost::json;

struct fake_tool {
    std::string text = "ok";
    int delay_ms = 0;
    bool fail = false;      // the call does not reach a server
    bool is_error = false;  // the tool answers with isError
    bool hang = false;
};

inline json::object text_result(std::string const& text, bool is_error) {
    return json::object{{"content", json::array{json::object{{"type", "text"}, {"text", text}}}}, {"isError", is_error}};
}

class fake_tools final : public agentloop::toolbox {
public:
    std::map<std::string, fake_tool> tools;
    int current = 0, max_seen = 0, calls = 0, cancelled = 0;
    std::vector<std::string> arguments_seen;
    toolgate::time_source* clk = &toolgate::time_source::steady();

    bool has(std::string_view name) const override { return tools.count(std::string(name)) > 0; }

    asio::awaitable<mcp::tool_outcome> call(std::string name, json::object arguments, cancel_token& cancel) override {
        ++calls;
        max_seen = std::max(max_seen, ++current);
        arguments_seen.push_back(json::serialize(arguments));
        auto t = tools.at(name);
        mcp::tool_outcome out;
        if (t.delay_ms > 0 || t.hang) {
            alarm_timer timer(*clk, co_await asio::this_coro::executor);
            if (t.hang) timer.expires_never();
            else timer.expires_after(std::chrono::milliseconds(t.delay_ms));
            auto sub = cancel.subscribe([&timer] { timer.cancel(); });
            co_await timer.wait();
        }
        --current;
        if (cancel.cancelled()) {
            ++cancelled;
            out.code = mcp::tool_errc::cancelled;
            out.error = "cancelled";
            co_return out;
        }
        if (t.fail) {
            out.code = mcp::tool_errc::unavailable;
            out.error = "server 'fake' is not connected";
            co_return out;
        }
        out.ok = true;
        out.result = text_result(t.text, t.is_error);
        co_return out;
    }
};

}  // namespace toolgate::fakes
