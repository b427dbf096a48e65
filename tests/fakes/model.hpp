#pragma once
// A model for agent-loop tests: scripted turns, streamed in fragments as real providers stream
// them (role, content in two pieces, each tool call's name then its arguments in three fragments,
// finish, usage), or answered whole. A turn may hang until it is cancelled.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agentloop/loop.hpp"
#include "common/time_source.hpp"

namespace toolgate::fakes {

namespace asio = boost::asio;
namespace json = boost::json;

struct scripted_turn {
    std::string content;
    std::vector<std::pair<std::string, std::string>> calls;  // name, arguments (JSON text)
    std::int64_t prompt = 10;
    std::int64_t completion = 5;
    bool hang = false;  // waits until the turn is cancelled
    std::optional<api_error> error;
};

inline scripted_turn say(std::string text) {
    scripted_turn t;
    t.content = std::move(text);
    return t;
}

inline scripted_turn call(std::string name, std::string args, std::string content = {}) {
    scripted_turn t;
    t.content = std::move(content);
    t.calls.emplace_back(std::move(name), std::move(args));
    return t;
}

inline json::object base_chunk(std::string const& id, json::object delta, json::value finish) {
    return json::object{{"id", id},
                        {"object", "chat.completion.chunk"},
                        {"created", 1},
                        {"model", "fake-model"},
                        {"choices", json::array{json::object{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}}}};
}

// A turn as a real provider streams it: role, content in two pieces, each tool call's name first and
// its arguments in three fragments, then the finish chunk and a usage-only chunk.
inline std::vector<json::object> chunks_of(scripted_turn const& t, int turn_no) {
    std::string id = "chatcmpl-fake-" + std::to_string(turn_no);
    std::vector<json::object> out;
    out.push_back(base_chunk(id, json::object{{"role", "assistant"}, {"content", ""}}, nullptr));
    if (!t.content.empty()) {
        auto half = t.content.size() / 2;
        out.push_back(base_chunk(id, json::object{{"content", t.content.substr(0, half)}}, nullptr));
        out.push_back(base_chunk(id, json::object{{"content", t.content.substr(half)}}, nullptr));
    }
    for (std::size_t i = 0; i < t.calls.size(); ++i) {
        auto const& [name, args] = t.calls[i];
        json::object first{{"index", i},
                           {"id", "call_" + std::to_string(turn_no) + "_" + std::to_string(i)},
                           {"type", "function"},
                           {"function", json::object{{"name", name}, {"arguments", ""}}}};
        out.push_back(base_chunk(id, json::object{{"tool_calls", json::array{first}}}, nullptr));
        std::size_t step = std::max<std::size_t>(1, (args.size() + 2) / 3);
        for (std::size_t p = 0; p < args.size(); p += step) {
            json::object frag{{"index", i}, {"function", json::object{{"arguments", args.substr(p, step)}}}};
            out.push_back(base_chunk(id, json::object{{"tool_calls", json::array{frag}}}, nullptr));
        }
    }
    out.push_back(base_chunk(id, json::object(), json::value(t.calls.empty() ? "stop" : "tool_calls")));
    json::object usage_only{{"id", id}, {"object", "chat.completion.chunk"}, {"created", 1}, {"model", "fake-model"},
                            {"choices", json::array()},
                            {"usage", json::object{{"prompt_tokens", t.prompt}, {"completion_tokens", t.completion}}}};
    out.push_back(std::move(usage_only));
    return out;
}

inline json::object response_of(scripted_turn const& t, int turn_no) {
    json::object msg{{"role", "assistant"}};
    msg["content"] = t.content.empty() ? json::value(nullptr) : json::value(t.content);
    if (!t.calls.empty()) {
        json::array tc;
        for (std::size_t i = 0; i < t.calls.size(); ++i)
            tc.push_back(json::object{{"id", "call_" + std::to_string(turn_no) + "_" + std::to_string(i)},
                                      {"type", "function"},
                                      {"function", json::object{{"name", t.calls[i].first}, {"arguments", t.calls[i].second}}}});
        msg["tool_calls"] = std::move(tc);
    }
    return json::object{{"id", "chatcmpl-fake-" + std::to_string(turn_no)},
                        {"object", "chat.completion"},
                        {"created", 1},
                        {"model", "fake-model"},
                        {"choices", json::array{json::object{{"index", 0},
                                                             {"message", std::move(msg)},
                                                             {"finish_reason", t.calls.empty() ? "stop" : "tool_calls"}}}},
                        {"usage", json::object{{"prompt_tokens", t.prompt}, {"completion_tokens", t.completion}}}};
}

class fake_model {
public:
    std::deque<scripted_turn> turns;
    std::optional<scripted_turn> forever;  // when the script runs out
    std::vector<json::object> requests;
    toolgate::time_source* clk = &toolgate::time_source::steady();

    agentloop::turn_fn fn() {
        return [this](providers::chat_request& r, providers::chat_sink* s, cancel_token& c) { return turn(r, s, c); };
    }

    asio::awaitable<providers::chat_outcome> turn(providers::chat_request& req, providers::chat_sink* sink,
                                                  cancel_token& cancel) {
        requests.push_back(req.body);
        int turn_no = static_cast<int>(requests.size());
        scripted_turn t;
        if (!turns.empty()) {
            t = turns.front();
            turns.pop_front();
        } else if (forever) {
            t = *forever;
        } else {
            t = say("(script ran out)");
        }
        providers::chat_outcome out;
        if (t.hang) {
            alarm_timer never(*clk, co_await asio::this_coro::executor);
            auto sub = cancel.subscribe([&never] { never.cancel(); });
            co_await never.wait();
            co_return out;
        }
        if (t.error) {
            out.error = t.error;
            co_return out;
        }
        out.tokens.prompt_tokens = t.prompt;
        out.tokens.completion_tokens = t.completion;
        out.tokens.present = true;
        if (sink == nullptr) {
            out.response = response_of(t, turn_no);
            co_return out;
        }
        auto chunks = chunks_of(t, turn_no);
        for (auto& c : chunks) {
            out.chunks_sent = true;
            co_await sink->on_chunk(c, {});
        }
        co_await sink->flush();
        co_return out;
    }
};

}  // namespace toolgate::fakes
