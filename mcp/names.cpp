#include "mcp/names.hpp"

#include <cstdio>
#include <map>
#include <set>

namespace toolgate::mcp {

namespace {
bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}
std::uint32_t fnv1a32(std::string_view a, std::string_view b) {
    std::uint32_t h = 2166136261u;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) {
            h ^= c;
            h *= 16777619u;
        }
    };
    mix(a);
    mix(std::string_view("\0", 1));
    mix(b);
    return h;
}
}  // namespace

bool valid_model_tool_name(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!name_char(c)) return false;
    return true;
}

std::string model_safe_name(std::string_view wanted, std::string_view server, std::string_view original) {
    if (valid_model_tool_name(wanted)) return std::string(wanted);
    std::string s;
    s.reserve(wanted.size());
    for (char c : wanted) s.push_back(name_char(c) ? c : '_');
    char suffix[10];
    std::snprintf(suffix, sizeof suffix, "_%08x", fnv1a32(server, original));
    if (s.size() > 64 - 9) s.resize(64 - 9);
    if (s.empty()) s = "tool";
    return s + suffix;
}

std::vector<named_tool> assign_names(std::vector<tool_ref> const& tools, prefix_mode mode) {
    std::vector<named_tool> out(tools.size());
    std::map<std::string, int> count;  // original name -> how many servers offer it
    for (auto const& t : tools) ++count[t.tool];
    std::set<std::string> taken;
    for (std::size_t i = 0; i < tools.size(); ++i) {
        auto const& t = tools[i];
        bool prefix = mode == prefix_mode::always || (mode == prefix_mode::conditional && count[t.tool] > 1);
        std::string wanted = prefix ? t.server + "__" + t.tool : t.tool;
        std::string name = model_safe_name(wanted, t.server, t.tool);
        if (!taken.insert(name).second) {
            if (mode == prefix_mode::never) {
                out[i].problem = "tool '" + t.tool + "' of server '" + t.server +
                                 "' has the same name as another server's tool (tool_names.prefix_mode is never)";
                continue;
            }
            // Two originals that sanitise alike: the hash of (server, original) tells them apart.
            name = model_safe_name(wanted + "\x01", t.server, t.tool);
            if (!taken.insert(name).second) {
                out[i].problem = "duplicate tool '" + t.tool + "' on server '" + t.server + "'";
                continue;
            }
        }
        out[i].exposed = std::move(name);
    }
    return out;
}

}  // namespace toolgate::mcp
