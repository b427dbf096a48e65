// Tool-name mapping (mcp/names): whatever a server calls its tools, the names models see are valid,
// and two different (server, tool) pairs never share one.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "mcp/names.hpp"

namespace mcp = toolgate::mcp;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    auto mode = static_cast<mcp::prefix_mode>(data[0] % 3);
    // The rest: records "server\ttool\n".
    std::string_view rest(reinterpret_cast<char const*>(data + 1), size - 1);
    std::vector<mcp::tool_ref> tools;
    while (!rest.empty() && tools.size() < 64) {
        auto nl = rest.find('\n');
        auto rec = rest.substr(0, nl);
        rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
        auto tab = rec.find('\t');
        if (tab == std::string_view::npos) continue;
        tools.push_back({std::string(rec.substr(0, tab)), std::string(rec.substr(tab + 1))});
    }
    for (auto const& t : tools) {
        auto safe = mcp::model_safe_name(t.tool, t.server, t.tool);
        if (!mcp::valid_model_tool_name(safe)) std::abort();
    }
    auto named = mcp::assign_names(tools, mode);
    if (named.size() != tools.size()) std::abort();
    std::set<std::string> seen;
    std::set<std::pair<std::string, std::string>> pairs;
    for (std::size_t i = 0; i < named.size(); ++i) {
        auto const& n = named[i];
        if (n.exposed.empty()) continue;
        if (!mcp::valid_model_tool_name(n.exposed)) std::abort();
        // The same pair listed twice may share its name; two different pairs may not.
        bool again = !pairs.insert({tools[i].server, tools[i].tool}).second;
        if (!seen.insert(n.exposed).second && !again) std::abort();
    }
    return 0;
}
