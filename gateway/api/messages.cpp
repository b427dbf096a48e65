// POST /v1/messages and /v1/messages/count_tokens: the Anthropic Messages API as an ingress. The
// request is translated to a chat body (messages_wire.hpp) and runs through the chat route's
// machinery, agent loop, sessions and policies included; the answer goes out through a response
// channel that speaks Messages: a JSON message, Anthropic's stream events, Anthropic's error shape
// (also for what the gateway refuses before the route runs, such as a missing key).
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/json_util.hpp"
#include "gateway/api/chat.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/messages_wire.hpp"
#include "gateway/api/state.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

class messages_channel final : public response_channel {
public:
    messages_channel(response_channel& inner, std::string id) : inner_(inner), id_(id), stream_(std::move(id), "") {}

    asio::awaitable<bool> send(int status, std::string_view content_type, std::string_view body,
                               header_list const& extra) override {
        if (status >= 400) {
            auto text = messages_wire::error_body(status, body);
            co_return co_await inner_.send(status, "application/json", text, extra);
        }
        auto text = translated(content_type, body);
        std::string_view out = body;
        if (!text.empty()) out = text;
        co_return co_await inner_.send(status, content_type, out, extra);
    }
    asio::awaitable<bool> begin_stream(int status, std::string_view, header_list const& extra) override {
        co_return co_await inner_.begin_stream(status, "text/event-stream", extra);
    }
    asio::awaitable<bool> write(std::string_view data) override {
        auto out = stream_.feed(data);
        if (out.empty()) co_return true;
        co_return co_await inner_.write(out);
    }
    asio::awaitable<bool> end_stream(std::string_view last) override {
        auto out = stream_.feed(last);
        out += stream_.finish();
        co_return co_await inner_.end_stream(out);
    }
    bool started() const override { return inner_.started(); }

private:
    // A chat.completion as a Messages response; empty: pass the body on as it is.
    std::string translated(std::string_view content_type, std::string_view body) const {
        if (!content_type.starts_with("application/json")) return {};
        boost::system::error_code ec;
        auto v = parse_bounded(body, ec);
        if (ec || !v.is_object() || !v.get_object().contains("choices")) return {};
        return json::serialize(messages_wire::to_message(v.get_object(), id_));
    }

    response_channel& inner_;
    std::string id_;
    messages_wire::stream_translator stream_;
};

json::object token_count(std::int64_t n) {
    json::object o;
    o["input_tokens"] = n;
    return o;
}

}  // namespace

std::unique_ptr<response_channel> messages_channel_for(response_channel& inner, std::string const& request_id) {
    return std::make_unique<messages_channel>(inner, "msg_" + request_id);
}

asio::awaitable<void> messages(api_request& r) {
    auto in = co_await parse_body(r);
    if (!in) co_return;
    auto chat = messages_wire::to_chat(*in);
    if (auto* err = std::get_if<api_error>(&chat)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto& body = std::get<json::object>(chat);
    r.rec.model = std::string(body.at("model").get_string());
    r.req.body.clear();  // what runs is the translation, not the client's bytes
    co_await chat_body(r, body);
}

asio::awaitable<void> count_message_tokens(api_request& r) {
    auto in = co_await parse_body(r);
    if (!in) co_return;
    if (!in->contains("max_tokens")) (*in)["max_tokens"] = 1;  // not part of a count request
    auto chat = messages_wire::to_chat(*in);
    if (auto* err = std::get_if<api_error>(&chat)) {
        co_await reply_error(r, *err);
        co_return;
    }
    auto n = messages_wire::count_tokens(std::get<json::object>(chat));
    co_await reply_json(r, json::serialize(token_count(n)));
}

}  // namespace toolgate::gateway::api
