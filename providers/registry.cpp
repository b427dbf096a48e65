#include <boost/json/value.hpp>

#include <algorithm>
#include <stdexcept>

#include "providers/catalog.hpp"
#include "providers/native.hpp"
#include "providers/openai.hpp"
#include "providers/provider.hpp"
#include "providers/scripted.hpp"

namespace toolgate::providers {

std::int64_t token_count(boost::json::value const* v) {
    if (v == nullptr) return 0;
    if (v->is_int64()) return std::clamp<std::int64_t>(v->get_int64(), 0, max_token_count);
    if (v->is_uint64()) return static_cast<std::int64_t>(std::min<std::uint64_t>(v->get_uint64(), max_token_count));
    if (v->is_double()) {
        double d = v->get_double();  // NaN fails both tests: 0
        if (d >= double(max_token_count)) return max_token_count;
        return d >= 1 ? static_cast<std::int64_t>(d) : 0;
    }
    return 0;
}

bool wants_usage(boost::json::object const& body) {
    auto const* so = body.if_contains("stream_options");
    auto const* o = so ? so->if_object() : nullptr;
    auto const* iu = o ? o->if_contains("include_usage") : nullptr;
    return iu && iu->is_bool() && iu->get_bool();
}

usage usage_from_json(boost::json::value const* v) {
    usage u;
    if (v == nullptr || !v->is_object()) return u;
    auto const& o = v->get_object();
    u.prompt_tokens = token_count(o.if_contains("prompt_tokens"));
    u.completion_tokens = token_count(o.if_contains("completion_tokens"));
    // The Responses and images APIs say input_tokens and output_tokens.
    if (!o.contains("prompt_tokens")) u.prompt_tokens = token_count(o.if_contains("input_tokens"));
    if (!o.contains("completion_tokens")) u.completion_tokens = token_count(o.if_contains("output_tokens"));
    u.present = true;
    return u;
}

double provider_config::cost(std::string_view model, usage const& tokens, std::int64_t images) const {
    model_price const* p = nullptr;
    if (auto it = prices.find(model); it != prices.end()) p = &it->second;
    else if (auto const* e = catalog_find(*this, model)) p = &e->price;
    if (p == nullptr) return 0;
    return (double(tokens.prompt_tokens) * p->input + double(tokens.completion_tokens) * p->output) / 1e6 +
           double(images) * p->per_image;
}

provider::provider(provider_config cfg) : cfg_(std::move(cfg)) {
    for (auto const* e : catalog_for(cfg_)) catalog_models_.push_back(e->model);
}

bool provider::catalog_lists(std::string_view model) const {
    for (auto const& m : catalog_models_)
        if (m == model) return true;
    return false;
}

asio::awaitable<bool> chat_sink::on_comment(std::string_view) { co_return true; }

namespace {
api_error unsupported_route(std::string const& name, std::string const& type, std::string_view path) {
    return api_error::bad_request("provider '" + name + "' (type " + type + ") does not serve /v1" + std::string(path) +
                                      "; route this model to an OpenAI-compatible provider",
                                  "unsupported_for_provider");
}
}  // namespace

asio::awaitable<provider::embeddings_outcome> provider::json_call(call_context&, std::string_view path, boost::json::object&) {
    embeddings_outcome out;
    out.error = unsupported_route(cfg_.name, cfg_.type, path);
    co_return out;
}

asio::awaitable<provider::raw_outcome> provider::raw_call(call_context&, std::string_view path, std::string_view,
                                                          std::string_view, std::string) {
    raw_outcome out;
    out.error = unsupported_route(cfg_.name, cfg_.type, path);
    co_return out;
}

void provider_stats::record(bool ok, std::chrono::microseconds latency) {
    auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
    last_latency_us.store(latency.count(), std::memory_order_relaxed);
    if (ok) {
        last_success_unix_ms.store(now_ms, std::memory_order_relaxed);
        consecutive_failures.store(0, std::memory_order_relaxed);
    } else {
        last_failure_unix_ms.store(now_ms, std::memory_order_relaxed);
        consecutive_failures.fetch_add(1, std::memory_order_relaxed);
    }
}

bool provider::lists_model(std::string_view model) const {
    for (auto const& m : cfg_.models)
        if (m == model) return true;
    return false;
}

namespace {

// The provider types: one row each, the source of both the dispatch and the error messages.
struct provider_type {
    std::string_view name;
    std::unique_ptr<provider> (*make)(provider_config);
};
constexpr provider_type provider_types[] = {
    {"openai", &make_openai_provider},       {"azure-openai", &make_openai_provider},
    {"anthropic", &make_native_provider},    {"google", &make_native_provider},    {"bedrock", &make_native_provider},
    {"vertex", &make_native_provider},
    {"scripted", &make_scripted_provider},
};

}  // namespace

std::string known_provider_types() {
    std::string out;
    for (auto const& t : provider_types) out += (out.empty() ? "" : ", ") + std::string(t.name);
    return out;
}

std::unique_ptr<provider> make_provider(provider_config cfg) {
    if (cfg.type == "gemini") cfg.type = "google";  // the name users know for it
    for (auto const& t : provider_types)
        if (t.name == cfg.type) return t.make(std::move(cfg));
    throw std::invalid_argument("unknown provider type '" + cfg.type + "' (known: " + known_provider_types() + ")");
}

std::vector<env_provider> const& env_providers() {
    static std::vector<env_provider> const list{
        {"openai", "OPENAI_API_KEY", "https://api.openai.com/v1"},
        {"anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com/v1", "anthropic"},
        {"gemini", "GEMINI_API_KEY", "https://generativelanguage.googleapis.com/v1beta", "google"},
        {"azure", "AZURE_OPENAI_API_KEY", "", "azure-openai", "AZURE_OPENAI_ENDPOINT"},
        {"mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1"},
        {"groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1"},
        {"together", "TOGETHER_API_KEY", "https://api.together.xyz/v1"},
        {"fireworks", "FIREWORKS_API_KEY", "https://api.fireworks.ai/inference/v1"},
        {"deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com/v1"},
        {"xai", "XAI_API_KEY", "https://api.x.ai/v1"},
        {"openrouter", "OPENROUTER_API_KEY", "https://openrouter.ai/api/v1"},
        {"perplexity", "PERPLEXITY_API_KEY", "https://api.perplexity.ai"},
        {"cerebras", "CEREBRAS_API_KEY", "https://api.cerebras.ai/v1"},
        {"deepinfra", "DEEPINFRA_API_KEY", "https://api.deepinfra.com/v1/openai"},
        // AWS credentials are no API key: the provider signs with them (and needs a region).
        {"bedrock", "AWS_ACCESS_KEY_ID", "", "bedrock"},
        // A service-account key file: the provider signs in with it (project and location from
        // GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION, or the file and us-central1).
        {"vertex", "GOOGLE_APPLICATION_CREDENTIALS", "", "vertex"},
        // No key: enabled by the base URL variable alone.
        {"ollama", "", "http://127.0.0.1:11434/v1", "openai", "OLLAMA_BASE_URL"},
        {"vllm", "", "", "openai", "VLLM_BASE_URL"},
    };
    return list;
}

}  // namespace toolgate::providers
