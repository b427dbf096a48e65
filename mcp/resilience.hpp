#pragma once
// The aggregator's circuit breaker per server and the backoff between restarts are the shared
// policies of common/resilience.hpp (provider targets use the same ones).
#include "common/resilience.hpp"

namespace toolgate::mcp {

using resilience::backoff;
using resilience::circuit_breaker;

}  // namespace toolgate::mcp
