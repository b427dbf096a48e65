// Hybrid turns without a session (hybrid.hpp): keys, slots and splicing as plain functions; the
// coroutines only read and write the stores (GCC 12 rules: CONTRIBUTING.md).
#include "sessions/hybrid.hpp"

#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/json_util.hpp"
#include "state/cache_store.hpp"
#include "state/key_store.hpp"

namespace toolgate::sessions {

namespace json = boost::json;

namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::vector<std::string> call_ids(json::object const& message) {
    std::vector<std::string> ids;
    auto const* tc = message.if_contains("tool_calls");
    if (!tc || !tc->is_array()) return ids;
    for (auto const& c : tc->get_array()) {
        auto const* o = c.if_object();
        auto const* id = o ? o->if_contains("id") : nullptr;
        if (id && id->is_string()) ids.emplace_back(id->get_string());
    }
    return ids;
}

bool is_assistant(json::object const& m) {
    auto const* role = m.if_contains("role");
    return role && role->is_string() && role->get_string() == "assistant";
}

// A stored value back as a transcript; nullopt when it is not one (never trusted blindly: the
// shared store is outside this process).
std::optional<json::array> transcript_of(std::string const& text) {
    boost::system::error_code ec;
    auto v = parse_bounded(text, ec);
    if (ec || !v.is_array() || v.get_array().empty()) return std::nullopt;
    for (auto const& m : v.get_array())
        if (!m.is_object()) return std::nullopt;
    return std::move(v.get_array());
}

constexpr std::string_view scope_label = "hybrid";
constexpr std::size_t max_slots = 16;

}  // namespace

std::string hybrid_key(std::string_view scope, std::vector<std::string> ids) {
    std::sort(ids.begin(), ids.end());
    std::string text(scope);
    text.push_back('\x1e');
    for (auto const& id : ids) {
        text += id;
        text.push_back('\x1f');
    }
    return state::sha256_hex(text);
}

std::vector<hybrid_slot> hybrid_slots(json::array const& messages, std::string_view scope, std::size_t max) {
    std::vector<hybrid_slot> out;
    for (std::size_t i = messages.size(); i-- > 0 && out.size() < max;) {
        auto const* o = messages[i].if_object();
        if (!o || !is_assistant(*o)) continue;
        auto ids = call_ids(*o);
        if (ids.empty()) continue;
        out.push_back(hybrid_slot{i, hybrid_key(scope, std::move(ids))});
    }
    std::reverse(out.begin(), out.end());
    return out;
}

void splice(json::array& messages, std::vector<hybrid_fill> found) {
    if (found.empty()) return;
    json::array out;
    out.reserve(messages.size() + found.size() * 4);
    std::size_t next = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (next < found.size() && found[next].index == i) {
            for (auto& m : found[next].transcript) out.push_back(std::move(m));
            ++next;
            continue;
        }
        out.push_back(std::move(messages[i]));
    }
    messages = std::move(out);
}

hybrid_turns::hybrid_turns(std::shared_ptr<state::cache_store> shared, std::chrono::milliseconds ttl, std::size_t memory_bytes)
    : local_(state::make_memory_cache(memory_bytes)), shared_(std::move(shared)), ttl_ms_(ttl.count()) {}

hybrid_turns::~hybrid_turns() = default;

asio::awaitable<void> hybrid_turns::remember(std::string scope, std::vector<std::string> client_call_ids,
                                             json::array const& transcript) {
    if (client_call_ids.empty() || transcript.empty()) co_return;
    auto key = hybrid_key(scope, std::move(client_call_ids));
    auto text = json::serialize(transcript);
    auto now = now_ms();
    stats_.remembered.fetch_add(1, std::memory_order_relaxed);
    // This replica first: a follow-up here needs no round trip, and survives the shared store
    // being away (and a client that does not wait for the stream's end finds it already).
    auto copy = text;
    local_->put_now(key, copy, std::string(scope_label), ttl_ms_, now);
    if (shared_) {
        auto ok = co_await shared_->put(key, std::move(text), std::string(scope_label), ttl_ms_, now);
        if (!ok) {
            stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
            spdlog::warn("hybrid turns: the shared store did not keep a transcript ({}); a follow-up on another "
                         "replica will lack the gateway's tool turns", ok.error().message());
        }
    }
}

asio::awaitable<std::size_t> hybrid_turns::expand(std::string scope, json::array& messages) {
    auto slots = hybrid_slots(messages, scope, max_slots);
    if (slots.empty()) co_return 0;
    auto now = now_ms();
    std::vector<hybrid_fill> found;
    for (auto const& s : slots) {
        std::optional<json::array> t;
        if (auto v = local_->get_now(s.key, now); v && *v) t = transcript_of(**v);
        if (!t && shared_) {
            auto got = co_await shared_->get(s.key, now);
            if (!got) {
                stats_.store_errors.fetch_add(1, std::memory_order_relaxed);
            } else if (*got) {
                t = transcript_of(**got);
                if (t) stats_.shared_hits.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (t) found.push_back(hybrid_fill{s.index, std::move(*t)});
    }
    auto n = found.size();
    splice(messages, std::move(found));
    stats_.expanded.fetch_add(n, std::memory_order_relaxed);
    co_return n;
}

}  // namespace toolgate::sessions
