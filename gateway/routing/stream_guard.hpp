#pragma once
// The stream guard of one routed turn: it holds a streamed turn's chunks until one carries content,
// so that a target failing before its first content byte can be replaced without the client seeing
// two answers; from then on chunks pass straight through to the sink it wraps.
#include <boost/json/object.hpp>

#include <string>
#include <vector>

#include "gateway/routing/strategy.hpp"
#include "providers/provider.hpp"

namespace toolgate::gateway::routing {

namespace asio = boost::asio;

class guard_sink final : public providers::chat_sink {
public:
    explicit guard_sink(providers::chat_sink& inner) : inner_(inner) {}

    asio::awaitable<bool> on_chunk(boost::json::object& chunk, std::string_view raw) override;
    asio::awaitable<bool> flush() override;
    asio::awaitable<bool> on_comment(std::string_view text) override;
    // The turn succeeded: whatever is still held goes out (a stream without content).
    asio::awaitable<void> finish();

    bool delivered() const { return passing_; }
    // When the first content went to the client (time to first token, for least-latency).
    clock::time_point first_content() const { return first_content_; }
    // A failed attempt: what it sent is dropped before the next one.
    void reset() { held_.clear(); }

private:
    struct held {
        boost::json::object chunk;
        std::string raw;
    };
    static bool has_content(boost::json::object const& chunk);
    asio::awaitable<bool> release_held();

    providers::chat_sink& inner_;
    std::vector<held> held_;
    bool passing_ = false;
    clock::time_point first_content_{};
};

}  // namespace toolgate::gateway::routing
