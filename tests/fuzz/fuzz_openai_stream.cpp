// What an OpenAI-compatible upstream sends back, read the way the gateway reads it: a stream (SSE
// events with JSON chunks, "[DONE]", mid-stream errors, usage) whose tool-call fragments the agent
// loop reassembles (agentloop::call_assembler), a whole answer's usage, and an error body mapped to
// the client's error (providers::map_upstream_status). The first byte chooses the read size.
// Oracles: no crash or sanitizer report; the result does not depend on how the reads were split;
// token counts are never negative; an error keeps a 4xx/5xx status and a code.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "agentloop/loop.hpp"
#include "common/sse.hpp"
#include "providers/provider.hpp"
#include "providers/wire.hpp"

namespace json = boost::json;
using namespace toolgate;

namespace {

void require(bool ok) {
    if (!ok) std::abort();
}

// The stream's outcome as text: content, assembled calls, tokens, how it ended.
std::string read_stream(std::string_view bytes, std::size_t step) {
    sse::parser parser(64 * 1024);
    std::vector<sse::event> events;
    agentloop::call_assembler calls;
    providers::usage tokens;
    std::string content, ending = "eof";
    bool stop = false;
    for (std::size_t i = 0; i < bytes.size() && !stop; i += step) {
        events.clear();
        if (!parser.feed(bytes.substr(i, step), events)) {
            ending = "too large";
            break;
        }
        for (auto const& ev : events) {
            if (ev.data == "[DONE]") {
                ending = "done";
                stop = true;
                break;
            }
            boost::system::error_code ec;
            auto v = json::parse(ev.data, ec);
            if (ec || !v.is_object()) {
                ending = "malformed";
                stop = true;
                break;
            }
            auto const& chunk = v.get_object();
            if (auto const* err = chunk.if_contains("error"); err && !err->is_null()) {
                ending = "error";
                stop = true;
                break;
            }
            if (auto const* u = chunk.if_contains("usage"); u && u->is_object()) tokens = providers::usage_from_json(u);
            auto const* choices = chunk.if_contains("choices");
            if (!choices || !choices->is_array()) continue;
            for (auto const& c : choices->get_array()) {
                auto const* delta = c.is_object() ? c.get_object().if_contains("delta") : nullptr;
                if (!delta || !delta->is_object()) continue;
                auto const& d = delta->get_object();
                if (auto const* t = d.if_contains("content"); t && t->is_string()) content += t->get_string();
                auto const* tc = d.if_contains("tool_calls");
                if (!tc || !tc->is_array()) continue;
                for (auto const& f : tc->get_array())
                    if (f.is_object()) require(calls.add(f.get_object()) < calls.calls().size());
            }
        }
    }
    require(tokens.prompt_tokens >= 0 && tokens.completion_tokens >= 0);
    std::string out = ending + "|" + content + "|" + std::to_string(tokens.prompt_tokens) + "," +
                      std::to_string(tokens.completion_tokens);
    for (auto const& c : calls.calls()) out += "|" + c.id + "/" + c.name + "/" + c.arguments;
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 19;
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);

    require(read_stream(bytes, bytes.size() + 1) == read_stream(bytes, step));

    // The same bytes as a whole answer's body and as an error body.
    boost::system::error_code ec;
    auto v = json::parse(bytes, ec);
    if (!ec && v.is_object()) {
        auto u = providers::usage_from_json(v.get_object().if_contains("usage"));
        require(u.prompt_tokens >= 0 && u.completion_tokens >= 0);
    }
    auto err = providers::map_upstream_status("p", 400 + data[0] % 200, bytes, data[0] & 1 ? "3" : "");
    require(err.status >= 400 && err.status < 600 && !err.code.empty());
    (void)err.to_json();
    return 0;
}
