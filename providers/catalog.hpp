#pragma once
// The model catalog: providers/model_catalog.json, compiled into the binary. Known models per
// provider with context window and price per million tokens.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "providers/provider.hpp"

namespace toolgate::providers {

struct catalog_entry {
    std::string provider;  // a provider name (openai, mistral, ...) or a native family (anthropic, gemini)
    std::string model;
    std::int64_t context_window = 0;
    model_price price;
};

std::vector<catalog_entry> const& model_catalog();

// The entries for one configured provider: those of its name, and for the native types those of
// their family (anthropic, gemini), whatever the provider is called.
std::vector<catalog_entry const*> catalog_for(provider_config const& cfg);
catalog_entry const* catalog_find(provider_config const& cfg, std::string_view model);

}  // namespace toolgate::providers
