#pragma once
// Tool names as models see them: ^[a-zA-Z0-9_-]{1,64}$, mapped explicitly and reversibly to
// (server, original tool name). Pure functions, unit-tested without servers.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace toolgate::mcp {

enum class prefix_mode { always, conditional, never };

bool valid_model_tool_name(std::string_view name);

// Makes a valid name out of `wanted`: invalid characters become '_'; when anything had to change, or
// the name is longer than 64, a stable 8-hex-digit hash of (server, original) is appended (after
// cutting to fit), so two different originals never end up with the same name.
std::string model_safe_name(std::string_view wanted, std::string_view server, std::string_view original);

struct tool_ref {
    std::string server;
    std::string tool;
};
struct named_tool {
    std::string exposed;  // empty: dropped (a collision under prefix_mode never)
    std::string problem;
};

// Names every (server, tool) pair under the given mode; the result is parallel to `tools`.
std::vector<named_tool> assign_names(std::vector<tool_ref> const& tools, prefix_mode mode);

}  // namespace toolgate::mcp
