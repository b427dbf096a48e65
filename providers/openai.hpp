#pragma once
#include <boost/system/error_code.hpp>

#include <memory>

#include "providers/provider.hpp"

namespace toolgate::providers {

// The OpenAI wire format, for OpenAI itself and every compatible service (Mistral, Groq, vLLM, ...).
// Also Azure OpenAI (type azure-openai): deployments in the URL, api-version, an api-key header.
std::unique_ptr<provider> make_openai_provider(provider_config cfg);

// The client's error when an upstream could not be reached or timed out.
api_error map_transport_error(std::string const& provider_name, boost::system::error_code const& ec);

}  // namespace toolgate::providers
