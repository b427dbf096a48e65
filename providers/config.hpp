#pragma once
// The `providers` section of the config, parsed by the providers library.
#include <memory>
#include <vector>

#include "common/config_reader.hpp"
#include "providers/provider.hpp"

namespace toolgate::providers {

// Parses the list; builds each provider once (which validates its type-specific keys) into `built`.
void parse_providers(reader const& r, YAML::Node const& ps, std::vector<provider_config>& out,
                     std::vector<std::shared_ptr<provider>>& built);

}  // namespace toolgate::providers
