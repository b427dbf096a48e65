#pragma once
// Reading the config file into gateway_config: the YAML is parsed once and each section goes to
// the parser beside its feature; everything is validated at start-up.
#include <string>

#include "gateway/config.hpp"

namespace toolgate::gateway {

// Parses and validates; throws config_error. `source` names the file in messages.
gateway_config parse_config(std::string const& yaml_text, std::string const& source, env_lookup const& env);
gateway_config load_config(std::string const& path, env_lookup const& env);

}  // namespace toolgate::gateway
