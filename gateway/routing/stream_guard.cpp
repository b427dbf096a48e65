#include "gateway/routing/stream_guard.hpp"

#include <boost/json/value.hpp>

namespace toolgate::gateway::routing {

namespace json = boost::json;

asio::awaitable<bool> guard_sink::on_chunk(json::object& chunk, std::string_view raw) {
    if (!passing_) {
        if (!has_content(chunk)) {
            held_.emplace_back();  // only the chunks before the first content are copied
            held_.back().chunk = chunk;
            held_.back().raw = std::string(raw);
            co_return true;
        }
        // The first content: what was held goes first, then everything passes straight on (the
        // inner sink writes at the next flush).
        bool ok = co_await release_held();
        if (!ok) co_return false;
    }
    co_return co_await inner_.on_chunk(chunk, raw);
}

asio::awaitable<bool> guard_sink::flush() {
    if (!passing_) co_return true;
    co_return co_await inner_.flush();
}

asio::awaitable<bool> guard_sink::on_comment(std::string_view text) { co_return co_await inner_.on_comment(text); }

asio::awaitable<void> guard_sink::finish() {
    if (passing_ || held_.empty()) co_return;
    bool ok = co_await release_held();
    if (ok) co_await inner_.flush();
}

bool guard_sink::has_content(json::object const& chunk) {
    auto const* choices = chunk.if_contains("choices");
    if (choices == nullptr || !choices->is_array()) return false;
    for (auto const& c : choices->get_array()) {
        auto const* co = c.if_object();
        if (co == nullptr) continue;
        if (auto const* f = co->if_contains("finish_reason"); f && !f->is_null()) return true;
        auto const* d = co->if_contains("delta");
        auto const* delta = d ? d->if_object() : nullptr;
        if (delta == nullptr) continue;
        for (auto const* key : {"content", "refusal", "reasoning_content"})
            if (auto const* v = delta->if_contains(key); v && v->is_string() && !v->get_string().empty()) return true;
        if (auto const* t = delta->if_contains("tool_calls"); t && t->is_array() && !t->get_array().empty()) return true;
    }
    return false;
}

asio::awaitable<bool> guard_sink::release_held() {
    passing_ = true;
    first_content_ = clock::now();
    auto held = std::move(held_);
    held_.clear();
    for (auto& h : held) {
        bool ok = co_await inner_.on_chunk(h.chunk, h.raw);
        if (!ok) co_return false;
    }
    co_return true;
}

}  // namespace toolgate::gateway::routing
