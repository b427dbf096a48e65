#pragma once
#include <memory>

#include "providers/provider.hpp"
#include "providers/wire.hpp"

namespace toolgate::providers {

// Providers with a native wire format: type "anthropic" (Messages API) and "google" (Gemini API).
std::unique_ptr<provider> make_native_provider(provider_config cfg);

}  // namespace toolgate::providers
