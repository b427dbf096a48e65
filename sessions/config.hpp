#pragma once
// The `sessions` section of the config, parsed by the sessions library.
#include "sessions/session.hpp"

namespace YAML {
class Node;
}

namespace toolgate {
class reader;
}

namespace toolgate::sessions {

// store, ttl, max_messages, max_tokens, on_limit, tombstone, create_on_use, max_history_bytes.
// Errors name the key and line. `store` is left empty when absent (the gateway chooses it from
// the state section).
void parse_sessions(reader const& r, YAML::Node const& n, settings& out);

}  // namespace toolgate::sessions
