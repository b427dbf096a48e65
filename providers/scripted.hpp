#pragma once
#include <memory>

#include "providers/provider.hpp"

namespace toolgate::providers {

// A deterministic, offline demo model: rule-based replies and tool calls, streamed word by word.
// It lets the default config and the tests run without any API key or network.
std::unique_ptr<provider> make_scripted_provider(provider_config cfg);

}  // namespace toolgate::providers
