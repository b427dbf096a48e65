#pragma once
// Where toolgate keeps what it obtained from upstream MCP servers' authorization servers (tokens,
// client registrations), and the redirect URI it gives them: shared by `serve` and `mcp-login`.
#include <memory>
#include <string>

#include "gateway/config.hpp"
#include "mcp/aggregator.hpp"

namespace toolgate::state {
class secret_store;
}

namespace toolgate::gateway {

// This gateway's /oauth/callback as reached from the machine it runs on; "" for port 0.
std::string default_redirect_uri(listen_address const& a);
// The state's SQLite file (state.sqlite.path, else its default path), or memory when the state is
// not to persist (state.persist: false) or the file cannot be opened (with a warning).
std::shared_ptr<state::secret_store> open_secrets(gateway_config const& cfg);
// Restores the tokens saved for `sc` (by server name and URL) into `auth` and saves its new ones.
void keep_tokens(std::shared_ptr<state::secret_store> const& store, mcp::server_config const& sc, mcp::upstream_auth& auth);

}  // namespace toolgate::gateway
