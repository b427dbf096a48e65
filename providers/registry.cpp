#include <boost/json/value.hpp>

#include <stdexcept>

#include "providers/openai.hpp"
#include "providers/provider.hpp"
#include "providers/scripted.hpp"

namespace toolgate::providers {

usage usage_from_json(boost::json::value const* v) {
    usage u;
    if (v == nullptr || !v->is_object()) return u;
    auto const& o = v->get_object();
    auto num = [&](char const* key) -> std::int64_t {
        auto const* f = o.if_contains(key);
        if (f == nullptr) return 0;
        if (f->is_int64()) return f->get_int64();
        if (f->is_uint64()) return static_cast<std::int64_t>(f->get_uint64());
        if (f->is_double()) return static_cast<std::int64_t>(f->get_double());
        return 0;
    };
    u.prompt_tokens = num("prompt_tokens");
    u.completion_tokens = num("completion_tokens");
    u.present = true;
    return u;
}

double provider_config::cost(std::string_view model, usage const& tokens) const {
    auto it = prices.find(model);
    if (it == prices.end()) return 0;
    return (double(tokens.prompt_tokens) * it->second.input + double(tokens.completion_tokens) * it->second.output) / 1e6;
}

asio::awaitable<bool> chat_sink::on_comment(std::string_view) { co_return true; }

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

std::vector<std::string_view> known_provider_types() { return {"openai", "scripted"}; }

std::unique_ptr<provider> make_provider(provider_config cfg) {
    if (cfg.type == "openai") return make_openai_provider(std::move(cfg));
    if (cfg.type == "scripted") return make_scripted_provider(std::move(cfg));
    throw std::invalid_argument("unknown provider type '" + cfg.type + "' (known: openai, scripted)");
}

std::vector<env_provider> const& env_providers() {
    static std::vector<env_provider> const list{
        {"openai", "OPENAI_API_KEY", "https://api.openai.com/v1"},
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
    };
    return list;
}

}  // namespace toolgate::providers
