#pragma once
// A chat sink that keeps what a streamed answer sent: chunks, SSE comments, their order.
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "providers/provider.hpp"

namespace toolgate::fakes {

namespace asio = boost::asio;
namespace json = boost::json;

class capture_sink final : public providers::chat_sink {
public:
    std::vector<json::object> chunks;
    std::vector<std::string> comments;
    std::vector<std::string> events;  // "chunk" / "comment", in order
    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        chunks.push_back(raw.empty() ? chunk : json::parse(raw).as_object());
        events.push_back("chunk");
        co_return true;
    }
    asio::awaitable<bool> flush() override { co_return true; }
    asio::awaitable<bool> on_comment(std::string_view text) override {
        comments.emplace_back(text);
        events.push_back("comment");
        co_return true;
    }

    // Every content delta, joined.
    std::string content() const {
        std::string s;
        for (auto const& c : chunks) {
            auto const& choices = c.at("choices").as_array();
            if (choices.empty()) continue;
            auto const* d = choices[0].as_object().if_contains("delta");
            if (!d) continue;
            if (auto const* t = d->as_object().if_contains("content"); t && t->is_string()) s += t->as_string();
        }
        return std::string(s);
    }
    std::vector<std::string> finish_reasons() const {
        std::vector<std::string> out;
        for (auto const& c : chunks) {
            auto const& choices = c.at("choices").as_array();
            if (choices.empty()) continue;
            auto const& f = choices[0].as_object().at("finish_reason");
            if (f.is_string()) out.emplace_back(f.as_string());
        }
        return out;
    }
};

}  // namespace toolgate::fakes
