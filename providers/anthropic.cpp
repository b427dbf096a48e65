// Anthropic's Messages API (POST /v1/messages) behind the OpenAI wire format.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <unordered_map>

#include "providers/wire.hpp"

namespace toolgate::providers {

namespace {

using wire::data_url;
using wire::num;
using wire::str;

std::string finish_reason(std::string_view stop_reason) {
    if (stop_reason == "max_tokens") return "length";
    if (stop_reason == "tool_use") return "tool_calls";
    if (stop_reason == "refusal") return "content_filter";
    return "stop";  // end_turn, stop_sequence, pause_turn
}

usage usage_of(json::object const& u) {
    usage out;
    out.prompt_tokens = token_count(u.if_contains("input_tokens")) + token_count(u.if_contains("cache_creation_input_tokens")) +
                        token_count(u.if_contains("cache_read_input_tokens"));
    out.completion_tokens = token_count(u.if_contains("output_tokens"));
    out.present = true;
    return out;
}

class anthropic_wire final : public wire_format {
public:
    std::string_view auth_header() const override { return "x-api-key"; }
    explicit anthropic_wire(wire_settings s) : wire_format(s.name), s_(std::move(s)) {
        if (s_.api_version.empty()) s_.api_version = "2023-06-01";
    }

    std::optional<api_error> encode_chat(json::object const& body, bool stream, native_request& out) const override {
        auto fail = [&](std::string what) {
            return api_error::bad_request(what + " (provider '" + name_ + "' speaks Anthropic's Messages API)",
                                          "unsupported_for_provider");
        };
        wire::chat_view v;
        if (auto err = wire::read_chat(body, v)) return fail(*err);
        json::object req;
        bool vertex = !s_.vertex_location_path.empty();
        auto model_name = str(body, "model");
        if (vertex) {
            // Vertex names the model in the path and the API version in the body.
            if (model_name.empty() || model_name.find_first_of("/?#% ") != std::string_view::npos) return fail("invalid model name");
            req["anthropic_version"] = "vertex-2023-10-16";
        } else if (auto const* model = body.if_contains("model")) {
            req["model"] = *model;  // the router always sets it
        }
        json::array messages;
        for (auto const& m : v.messages) {
            json::array blocks;
            using role = wire::message_view::role;
            if (m.who == role::user) {
                if (auto err = user_blocks(m.content, blocks)) return fail(*err);
            } else if (m.who == role::assistant) {
                if (!m.text.empty()) blocks.push_back(json::object{{"type", "text"}, {"text", m.text}});
                for (auto const& c : m.calls)
                    blocks.push_back(json::object{{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", c.arguments}});
            } else {
                blocks.push_back(json::object{{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.text}});
            }
            // Tool results travel in user turns; consecutive turns of one role merge (roles alternate).
            wire::append_turn(messages, m.who == role::assistant ? "assistant" : "user", "content", std::move(blocks));
        }
        req["messages"] = std::move(messages);
        if (!v.system.empty()) req["system"] = v.system;

        req["max_tokens"] = wire::max_tokens(body).value_or(s_.default_max_tokens);
        if (auto const* t = body.if_contains("temperature"); t && t->is_number())
            req["temperature"] = std::min(1.0, t->to_number<double>());  // Anthropic's range is 0..1
        if (auto const* t = body.if_contains("top_p"); t && t->is_number()) req["top_p"] = *t;
        if (auto seqs = wire::stop_sequences(body); !seqs.empty()) req["stop_sequences"] = std::move(seqs);
        if (auto const* u = body.if_contains("user"); u && u->is_string()) req["metadata"] = json::object{{"user_id", *u}};

        if (!v.tools.empty()) {
            json::array out_tools;
            for (auto const& t : v.tools) {
                json::object tool{{"name", t.name}};
                if (!t.description.empty()) tool["description"] = t.description;
                tool["input_schema"] = t.parameters && t.parameters->is_object() ? *t.parameters
                                                                                 : json::value(json::object{{"type", "object"}});
                out_tools.push_back(std::move(tool));
            }
            req["tools"] = std::move(out_tools);
            json::object choice;
            using choice_t = wire::chat_view::choice;
            switch (v.tool_choice) {
                case choice_t::unset: break;
                case choice_t::automatic: choice["type"] = "auto"; break;
                case choice_t::required: choice["type"] = "any"; break;
                case choice_t::none: choice["type"] = "none"; break;
                case choice_t::named:
                    choice["type"] = "tool";
                    choice["name"] = v.choice_name;
                    break;
            }
            if (!v.parallel_tool_calls) {
                if (choice.empty()) choice["type"] = "auto";
                choice["disable_parallel_tool_use"] = true;
            }
            if (!choice.empty()) req["tool_choice"] = std::move(choice);
        }
        if (stream) req["stream"] = true;

        if (vertex) {
            out.path = s_.vertex_location_path + "/publishers/anthropic/models/" + std::string(model_name) +
                       (stream ? ":streamRawPredict" : ":rawPredict");
        } else {
            out.path = "/messages";
            out.headers.emplace_back("x-api-key", s_.api_key);
            out.headers.emplace_back("anthropic-version", s_.api_version);
        }
        out.body = json::serialize(req);
        return std::nullopt;
    }

    decoded decode_chat(std::string_view body, std::string const& model) const override {
        decoded d;
        auto v = wire::answer_value(body, name_, d);
        if (!v) return d;
        auto const& r = v->get_object();
        std::string text;
        json::array calls;
        if (auto const* content = r.if_contains("content"); content && content->is_array()) {
            for (auto const& b : content->get_array()) {
                auto const* bo = b.if_object();
                if (!bo) continue;
                auto type = str(*bo, "type");
                if (type == "text") {
                    text += str(*bo, "text");
                } else if (type == "tool_use") {
                    calls.push_back(wire::openai_tool_call(str(*bo, "id"), str(*bo, "name"), bo->if_contains("input")));
                }
            }
        }
        json::object msg{{"role", "assistant"}};
        msg["content"] = text.empty() && !calls.empty() ? json::value(nullptr) : json::value(text);
        if (!calls.empty()) msg["tool_calls"] = std::move(calls);
        if (auto const* u = r.if_contains("usage"); u && u->is_object()) d.tokens = usage_of(u->get_object());
        auto m = str(r, "model");
        d.response = json::object{
            {"id", str(r, "id")},
            {"object", "chat.completion"},
            {"created", wire::now_seconds()},
            {"model", m.empty() ? std::string_view(model) : m},
            {"choices", json::array{json::object{{"index", 0},
                                                 {"message", std::move(msg)},
                                                 {"logprobs", nullptr},
                                                 {"finish_reason", finish_reason(str(r, "stop_reason"))}}}},
            {"usage", wire::usage_json(d.tokens)},
        };
        return d;
    }

    std::unique_ptr<stream_decoder> stream(std::string const& model, bool include_usage) const override;

private:
    // The content of a user message as Anthropic blocks; an error text when a part cannot be sent.
    static std::optional<std::string> user_blocks(json::value const* content, json::array& out) {
        return wire::user_parts(
            content, [&](std::string_view t) { out.push_back(json::object{{"type", "text"}, {"text", t}}); },
            [&](std::string_view url) -> std::optional<std::string> {
                if (auto du = data_url(url)) {
                    out.push_back(json::object{
                        {"type", "image"},
                        {"source", json::object{{"type", "base64"}, {"media_type", du->first}, {"data", du->second}}}});
                } else if (url.starts_with("https://") || url.starts_with("http://")) {
                    out.push_back(json::object{{"type", "image"}, {"source", json::object{{"type", "url"}, {"url", url}}}});
                } else {
                    return "image_url must be a data: URL or an http(s) URL";
                }
                return std::nullopt;
            });
    }

    wire_settings s_;
};

// message_start, content_block_start/delta/stop, message_delta, message_stop, ping, error.
class anthropic_stream final : public wire::chat_stream {
public:
    anthropic_stream(std::string provider, std::string model, bool include_usage)
        : chat_stream(std::move(provider), std::move(model), include_usage, std::string()) {}

    bool on_event(std::string_view, std::string_view data, std::vector<json::object>& out) override {
        boost::system::error_code ec;
        auto v = json::parse(data, ec);
        if (ec || !v.is_object()) return malformed("unparseable event");
        auto const& e = v.get_object();
        auto type = str(e, "type");
        if (type == "message_start") {
            auto const* m = e.if_contains("message");
            if (m && m->is_object()) {
                auto const& mo = m->get_object();
                id_ = std::string(str(mo, "id"));
                if (auto mm = str(mo, "model"); !mm.empty()) model_ = std::string(mm);
                if (auto const* u = mo.if_contains("usage"); u && u->is_object()) tokens = usage_of(u->get_object());
            }
            out.push_back(chunk(json::object{{"role", "assistant"}, {"content", ""}}));
        } else if (type == "content_block_start") {
            auto const* b = e.if_contains("content_block");
            if (!b || !b->is_object()) return malformed("content_block_start without a block");
            auto const& bo = b->get_object();
            auto btype = str(bo, "type");
            if (btype == "text") {
                if (auto t = str(bo, "text"); !t.empty()) out.push_back(chunk(json::object{{"content", t}}));
            } else if (btype == "tool_use") {
                auto tool_index = next_tool_++;
                tool_of_block_[num(e, "index")] = tool_index;
                std::string args;
                if (auto const* in = bo.if_contains("input"); in && in->is_object() && !in->get_object().empty())
                    args = json::serialize(*in);
                json::object call{{"index", tool_index},
                                  {"id", str(bo, "id")},
                                  {"type", "function"},
                                  {"function", json::object{{"name", str(bo, "name")}, {"arguments", args}}}};
                out.push_back(chunk(json::object{{"tool_calls", json::array{std::move(call)}}}));
            }
        } else if (type == "content_block_delta") {
            auto const* d = e.if_contains("delta");
            if (!d || !d->is_object()) return malformed("content_block_delta without a delta");
            auto const& dd = d->get_object();
            auto dtype = str(dd, "type");
            if (dtype == "text_delta") {
                if (auto t = str(dd, "text"); !t.empty()) out.push_back(chunk(json::object{{"content", t}}));
            } else if (dtype == "input_json_delta") {
                auto it = tool_of_block_.find(num(e, "index"));
                auto part = str(dd, "partial_json");
                if (it != tool_of_block_.end() && !part.empty()) {
                    json::object call{{"index", it->second}, {"function", json::object{{"arguments", part}}}};
                    out.push_back(chunk(json::object{{"tool_calls", json::array{std::move(call)}}}));
                }
            }
        } else if (type == "message_delta") {
            if (auto const* d = e.if_contains("delta"); d && d->is_object())
                if (auto sr = str(d->get_object(), "stop_reason"); !sr.empty()) finish_ = finish_reason(sr);
            if (auto const* u = e.if_contains("usage"); u && u->is_object()) {
                auto const& uo = u->get_object();
                if (uo.contains("output_tokens")) tokens.completion_tokens = token_count(uo.if_contains("output_tokens"));
                if (uo.contains("input_tokens")) tokens.prompt_tokens = usage_of(uo).prompt_tokens;
                tokens.present = true;
            }
        } else if (type == "message_stop") {
            done_ = true;
            out.push_back(chunk(json::object(), json::value(finish_.empty() ? std::string("stop") : finish_)));
            if (include_usage_) out.push_back(final_usage());
        } else if (type == "error") {
            auto const* err = e.if_contains("error");
            auto etype = err && err->is_object() ? str(err->get_object(), "type") : std::string_view();
            if (etype == "overloaded_error")
                error = api_error::upstream(503, "upstream provider '" + provider_ + "' is overloaded", "upstream_unavailable");
            else if (etype == "rate_limit_error")
                error = api_error{429, "rate_limit_error", "upstream_rate_limited",
                                  "upstream provider '" + provider_ + "' is rate limiting"};
            else
                error = api_error::upstream(502, "upstream provider '" + provider_ + "' reported an error mid-stream");
            error->detail = json::serialize(e);
            return false;
        }
        return true;  // ping, content_block_stop and unknown events carry nothing for the client
    }

    bool on_end(std::vector<json::object>&) override {
        if (done_) return true;
        error = api_error::upstream(502, "upstream provider '" + provider_ + "' ended the stream before message_stop");
        return false;
    }

private:
    std::string finish_;
    bool done_ = false;
    std::int64_t next_tool_ = 0;
    std::unordered_map<std::int64_t, std::int64_t> tool_of_block_;
};

std::unique_ptr<stream_decoder> anthropic_wire::stream(std::string const& model, bool include_usage) const {
    return std::make_unique<anthropic_stream>(name_, model, include_usage);
}

}  // namespace

std::unique_ptr<wire_format> make_anthropic_wire(wire_settings s) { return std::make_unique<anthropic_wire>(std::move(s)); }

}  // namespace toolgate::providers
