#pragma once
// The outcome of one aggregated tool call, and why a call could not be run, as an error enum with
// its own category (the wire names, e.g. "unknown_tool", are what clients and logs see).
#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <string>
#include <string_view>
#include <type_traits>

namespace toolgate::mcp {

enum class tool_errc {
    failed = 1,         // could not be run, no more precise reason
    unknown_tool,       // no such exposed name (or not visible to this caller)
    invalid_arguments,  // the server refused the arguments (-32602)
    unavailable,        // the server is down or restarting
    busy,               // the server's concurrency and queue are full
    circuit_open,       // the server failed repeatedly; calls are paused
    timeout,            // no answer within the call's deadline
    cancelled,          // the caller went away
    server_error,       // the server answered with a JSON-RPC error
};

boost::system::error_category const& tool_category();
inline boost::system::error_code make_error_code(tool_errc e) { return {static_cast<int>(e), tool_category()}; }
// The wire name: "unknown_tool", "timeout", ...
std::string_view to_string(tool_errc e);

struct tool_outcome {
    bool ok = false;               // the call reached the server and it answered (result may still have isError)
    boost::json::object result;    // MCP CallToolResult
    std::string error;             // why not ok, for the model and the log
    tool_errc code = tool_errc::failed;  // why not ok
    bool truncated = false;
    std::chrono::microseconds duration{0};

    std::string_view error_code() const { return to_string(code); }
};

}  // namespace toolgate::mcp

template <>
struct boost::system::is_error_code_enum<toolgate::mcp::tool_errc> : std::true_type {};
