#pragma once
#include <memory>

#include "providers/provider.hpp"

namespace toolgate::providers {

// The OpenAI wire format, for OpenAI itself and every compatible service (Mistral, Groq, vLLM, ...).
std::unique_ptr<provider> make_openai_provider(provider_config cfg);

// Maps an upstream's non-2xx answer to the error the client sees. Exposed for tests.
api_error map_upstream_status(std::string const& provider_name, int status, std::string_view body);

}  // namespace toolgate::providers
