#pragma once
// The gateway's HTTP application: the OpenAI-compatible endpoints, health, metrics, and the turn
// pipeline every chat request runs through. Built once from a validated config; handle() runs
// concurrently on all worker threads and only reads shared state (plus atomics and the metrics lock).
#include <memory>

#include "gateway/config.hpp"
#include "gateway/server.hpp"

namespace toolgate::gateway {

std::unique_ptr<request_handler> make_app(gateway_config const& cfg);

}  // namespace toolgate::gateway
