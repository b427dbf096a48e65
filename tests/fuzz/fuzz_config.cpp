// The config file (YAML), read and validated by gateway::parse_config, the way `toolgate serve`
// and `check-config` read it, with ${VAR} references answered by a fixed environment.
// Oracles: a config is either accepted or refused with a config_error (what main prints as
// "config error: ..."); any other exception escaping, a crash or a sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "gateway/config_parse.hpp"

using namespace toolgate;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size > 64 * 1024) return 0;
    std::string text(reinterpret_cast<char const*>(data), size);
    env_lookup env = [](std::string const& name) -> std::optional<std::string> {
        if (name.empty() || name[0] != 'T') return std::nullopt;  // TOOLGATE_* and the like are set
        return std::string("127.0.0.1:8080");
    };
    try {
        auto cfg = gateway::parse_config(text, "fuzz.yaml", env);
        (void)cfg;
    } catch (config_error const&) {
        // refused, with a message: fine
    }
    return 0;
}
