#pragma once
// Parses `aliases`, `strategy`, `pools` (and agent_loop.tool_turn_model, read by config.cpp) into
// routing_config; every mistake is a config_error naming the key and line.
#include "common/config_reader.hpp"
#include "gateway/config.hpp"
#include "gateway/routing/config.hpp"

namespace toolgate::gateway::routing {

// Runs after the providers (configured and from the environment) are known.
routing_config parse_routing(reader const& r, YAML::Node const& root, gateway_config const& cfg);

}  // namespace toolgate::gateway::routing
