#pragma once
// The gateway's HTTP application: the route table in front of gateway/api/. Built once from a
// validated config; handle() runs concurrently on all worker threads. Shared state is read-only
// except where app_state (gateway/api/state.hpp) says how it is guarded: the metrics, the
// injected-tool cache and the hybrid store take short locks, the router's targets their own.
#include <memory>

#include "gateway/config.hpp"
#include "gateway/server.hpp"

namespace toolgate::gateway {

std::unique_ptr<request_handler> make_app(gateway_config const& cfg);

}  // namespace toolgate::gateway
