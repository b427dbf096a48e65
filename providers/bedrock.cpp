// AWS Bedrock's Converse API as a native wire format: an OpenAI chat request becomes a Converse
// (or ConverseStream) request, the Converse answer and the ConverseStream events become OpenAI's
// response and chunks. Sans-io like the other formats: the event stream framing is decoded by
// providers/eventstream and each event arrives here as its :event-type (an exception as
// "exception/<:exception-type>") and its JSON payload; signing is providers/sigv4.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <unordered_map>

#include "common/ids.hpp"
#include "providers/sigv4.hpp"
#include "providers/wire.hpp"

namespace toolgate::providers {

namespace {

using wire::str;

std::string finish_reason(std::string_view stop) {
    if (stop == "tool_use") return "tool_calls";
    if (stop == "max_tokens" || stop == "model_context_window_exceeded") return "length";
    if (stop == "guardrail_intervened" || stop == "content_filtered") return "content_filter";
    return "stop";  // end_turn, stop_sequence
}

usage usage_of(json::object const& u) {
    usage out;
    out.prompt_tokens = token_count(u.if_contains("inputTokens"));
    out.completion_tokens = token_count(u.if_contains("outputTokens"));
    out.present = true;
    return out;
}

json::object text_block(std::string_view text) {
    json::object b;
    b["text"] = text;
    return b;
}

// "image/png" -> "png" (Converse names the format, not the media type).
std::string_view image_format(std::string_view media_type) {
    auto slash = media_type.find('/');
    auto f = slash == std::string_view::npos ? media_type : media_type.substr(slash + 1);
    return f == "jpg" ? std::string_view("jpeg") : f;
}

class bedrock_wire final : public wire_format {
public:
    explicit bedrock_wire(wire_settings s) : wire_format(s.name), s_(std::move(s)) {}

    std::string_view auth_header() const override { return {}; }  // signed per request, not a fixed header
    framing stream_framing() const override { return framing::eventstream; }

    // A Bedrock API key as a bearer token (the router's rotated one when it chose one), or SigV4
    // over the headers that are sent as they are.
    void sign(std::string_view host, std::string_view target, std::vector<std::pair<std::string, std::string>>& headers,
              std::string_view body, std::string_view credential) const override {
        if (!s_.api_key.empty()) {
            headers.emplace_back("Authorization", "Bearer " + std::string(credential.empty() ? s_.api_key : credential));
            return;
        }
        sigv4::request r;
        r.method = "POST";
        auto q = target.find('?');
        r.path = std::string(target.substr(0, q));
        if (q != std::string_view::npos) r.query = std::string(target.substr(q + 1));
        r.headers.emplace_back("host", std::string(host));
        for (auto const& [k, v] : headers)
            if (k == "content-type" || k == "Content-Type") r.headers.emplace_back(k, v);
        r.body = body;
        sigv4::scope sc;
        sc.region = s_.region;
        sc.service = "bedrock";
        sc.amz_date = sigv4::amz_date_now();
        sigv4::credentials c;
        c.access_key_id = s_.access_key_id;
        c.secret_access_key = s_.secret_access_key;
        c.session_token = s_.session_token;
        for (auto& h : sigv4::sign(r, sc, c)) headers.push_back(std::move(h));
    }

    std::optional<api_error> encode_chat(json::object const& body, bool stream, native_request& out) const override {
        auto fail = [&](std::string what) {
            return api_error::bad_request(what + " (provider '" + name_ + "' speaks Bedrock's Converse API)",
                                          "unsupported_for_provider");
        };
        wire::chat_view v;
        if (auto err = wire::read_chat(body, v)) return fail(*err);
        json::object req;
        json::array messages;
        for (auto const& m : v.messages) {
            json::array blocks;
            using role = wire::message_view::role;
            if (m.who == role::user) {
                if (auto err = user_blocks(m.content, blocks)) return fail(*err);
            } else if (m.who == role::assistant) {
                if (!m.text.empty()) blocks.push_back(text_block(m.text));
                for (auto const& c : m.calls) {
                    json::object use;
                    use["toolUseId"] = c.id;
                    use["name"] = c.name;
                    use["input"] = c.arguments;
                    json::object b;
                    b["toolUse"] = std::move(use);
                    blocks.push_back(std::move(b));
                }
            } else {
                json::array content;
                content.push_back(text_block(m.text));
                json::object result;
                result["toolUseId"] = m.tool_call_id;
                result["content"] = std::move(content);
                json::object b;
                b["toolResult"] = std::move(result);
                blocks.push_back(std::move(b));
            }
            // Tool results travel in user turns; consecutive turns of one role merge.
            wire::append_turn(messages, m.who == role::assistant ? "assistant" : "user", "content", std::move(blocks));
        }
        req["messages"] = std::move(messages);
        if (!v.system.empty()) {
            json::array system;
            system.push_back(text_block(v.system));
            req["system"] = std::move(system);
        }
        json::object inference;
        if (auto n = wire::max_tokens(body)) inference["maxTokens"] = *n;
        if (auto const* t = body.if_contains("temperature"); t && t->is_number())
            inference["temperature"] = std::min(1.0, t->to_number<double>());  // Converse's range is 0..1
        if (auto const* t = body.if_contains("top_p"); t && t->is_number()) inference["topP"] = *t;
        if (auto seqs = wire::stop_sequences(body); !seqs.empty()) inference["stopSequences"] = std::move(seqs);
        if (!inference.empty()) req["inferenceConfig"] = std::move(inference);

        using choice_t = wire::chat_view::choice;
        if (!v.tools.empty() && v.tool_choice != choice_t::none) {  // Converse has no "none": no tools then
            json::array tools;
            for (auto const& t : v.tools) {
                json::object spec;
                spec["name"] = t.name;
                if (!t.description.empty()) spec["description"] = t.description;
                json::object schema;
                if (t.parameters && t.parameters->is_object()) schema["json"] = *t.parameters;
                else schema["json"] = json::object{{"type", "object"}};
                spec["inputSchema"] = std::move(schema);
                json::object tool;
                tool["toolSpec"] = std::move(spec);
                tools.push_back(std::move(tool));
            }
            json::object config;
            config["tools"] = std::move(tools);
            json::object choice;
            switch (v.tool_choice) {
                case choice_t::required: choice["any"] = json::object(); break;
                case choice_t::named: choice["tool"] = json::object{{"name", v.choice_name}}; break;
                case choice_t::automatic: choice["auto"] = json::object(); break;
                default: break;
            }
            if (!choice.empty()) config["toolChoice"] = std::move(choice);
            req["toolConfig"] = std::move(config);
        }

        auto model = str(body, "model");
        out.path = "/model/" + sigv4::uri_encode(model, false) + (stream ? "/converse-stream" : "/converse");
        out.headers.emplace_back("content-type", "application/json");
        out.headers.emplace_back("accept", stream ? "application/vnd.amazon.eventstream" : "application/json");
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
        json::object const* message = nullptr;
        if (auto const* o = r.if_contains("output"); o && o->is_object())
            if (auto const* m = o->get_object().if_contains("message"); m && m->is_object()) message = &m->get_object();
        if (message) {
            if (auto const* content = message->if_contains("content"); content && content->is_array()) {
                for (auto const& b : content->get_array()) {
                    auto const* bo = b.if_object();
                    if (!bo) continue;
                    if (auto const* t = bo->if_contains("text"); t && t->is_string()) text += t->get_string();
                    if (auto const* u = bo->if_contains("toolUse"); u && u->is_object()) {
                        auto const& uo = u->get_object();
                        calls.push_back(wire::openai_tool_call(str(uo, "toolUseId"), str(uo, "name"), uo.if_contains("input")));
                    }
                }
            }
        }
        json::object msg;
        msg["role"] = "assistant";
        msg["content"] = text.empty() && !calls.empty() ? json::value(nullptr) : json::value(text);
        if (!calls.empty()) msg["tool_calls"] = std::move(calls);
        if (auto const* u = r.if_contains("usage"); u && u->is_object()) d.tokens = usage_of(u->get_object());
        json::object choice;
        choice["index"] = 0;
        choice["message"] = std::move(msg);
        choice["logprobs"] = nullptr;
        choice["finish_reason"] = finish_reason(str(r, "stopReason"));
        json::array choices;
        choices.push_back(std::move(choice));
        d.response["id"] = "chatcmpl-" + fast_hex(24);  // Converse answers carry no id in the body
        d.response["object"] = "chat.completion";
        d.response["created"] = wire::now_seconds();
        d.response["model"] = model;
        d.response["choices"] = std::move(choices);
        d.response["usage"] = wire::usage_json(d.tokens);
        return d;
    }

    // Bedrock's errors are {"message": "..."} with the exception's name in x-amzn-ErrorType.
    api_error decode_error(int status, std::string_view body, std::string_view retry_after) const override {
        boost::system::error_code ec;
        auto v = json::parse(body, ec);
        std::string message;
        if (!ec && v.is_object()) message = std::string(str(v.get_object(), "message"));
        if (message.empty()) return map_upstream_status(name_, status, body, retry_after);
        json::object inner;
        inner["message"] = message;
        json::object wrapped;
        wrapped["error"] = std::move(inner);
        auto shaped = json::serialize(wrapped);  // the shape map_upstream_status reads
        return map_upstream_status(name_, status, shaped, retry_after);
    }

    std::unique_ptr<stream_decoder> stream(std::string const& model, bool include_usage) const override;

    // Embeddings through InvokeModel: Titan models take one text per call ({"inputText"}), Cohere's
    // up to 96 ({"texts", "input_type"}).
    bool has_embeddings() const override { return true; }

    std::optional<api_error> encode_embeddings_calls(json::object const& body, std::vector<native_request>& out) const override {
        auto model = str(body, "model");
        bool titan = model.starts_with("amazon.titan-embed");
        bool cohere = model.starts_with("cohere.embed");
        if (!titan && !cohere)
            return api_error::bad_request("provider '" + name_ + "' embeds with Titan (amazon.titan-embed-*) and Cohere (cohere.embed-*) models, not '" +
                                              std::string(model) + "'",
                                          "unsupported_for_provider");
        std::vector<std::string> inputs;
        if (auto err = wire::embedding_inputs(body, name_, titan ? 128 : 96, inputs)) return err;
        auto const* dim = body.if_contains("dimensions");
        if (dim && cohere)
            return api_error::bad_request("provider '" + name_ + "': Cohere embedding models on Bedrock take no 'dimensions'",
                                          "unsupported_for_provider");
        auto path = "/model/" + sigv4::uri_encode(model, false) + "/invoke";
        auto request = [&](json::object payload) {
            native_request nr;
            nr.path = path;
            nr.headers.emplace_back("content-type", "application/json");
            nr.headers.emplace_back("accept", "application/json");
            nr.body = json::serialize(payload);
            out.push_back(std::move(nr));
        };
        if (cohere) {
            json::array texts;
            for (auto& t : inputs) texts.emplace_back(t);
            json::object payload;
            payload["texts"] = std::move(texts);
            payload["input_type"] = "search_document";
            request(std::move(payload));
            return std::nullopt;
        }
        for (auto& t : inputs) {
            json::object payload;
            payload["inputText"] = t;
            if (dim && dim->is_int64()) payload["dimensions"] = *dim;
            request(std::move(payload));
        }
        return std::nullopt;
    }

    decoded decode_embeddings_calls(std::vector<std::string> const& bodies, std::string const& model) const override {
        decoded d;
        json::array data;
        std::int64_t tokens = 0;
        auto add = [&](json::value const* values) {
            if (!values || !values->is_array()) return false;
            json::object item;
            item["object"] = "embedding";
            item["index"] = data.size();
            item["embedding"] = *values;
            data.push_back(std::move(item));
            return true;
        };
        for (auto const& b : bodies) {
            auto v = wire::answer_value(b, name_, d);
            if (!v) return d;
            auto const& o = v->get_object();
            bool ok = true;
            if (auto const* one = o.if_contains("embedding")) {
                ok = add(one);  // Titan
                tokens = std::min(max_token_count, tokens + token_count(o.if_contains("inputTextTokenCount")));
            } else if (auto const* many = o.if_contains("embeddings")) {
                // Cohere: a list of vectors, or {"float": [...]} when embedding types were named.
                json::value const* list = many;
                if (many->is_object()) list = many->get_object().if_contains("float");
                ok = list && list->is_array();
                if (ok)
                    for (auto const& e : list->get_array()) ok = ok && add(&e);
            } else {
                ok = false;
            }
            if (!ok) {
                d.error = api_error::upstream(502, "upstream provider '" + name_ + "' returned a malformed response");
                d.error->detail = "no embedding in: " + b.substr(0, 200);
                return d;
            }
        }
        d.tokens.prompt_tokens = tokens;
        d.tokens.present = tokens > 0;
        json::object usage;
        usage["prompt_tokens"] = tokens;
        usage["total_tokens"] = tokens;
        d.response["object"] = "list";
        d.response["data"] = std::move(data);
        d.response["model"] = model;
        d.response["usage"] = std::move(usage);
        return d;
    }

private:
    static std::optional<std::string> user_blocks(json::value const* content, json::array& out) {
        return wire::user_parts(
            content, [&](std::string_view t) { out.push_back(text_block(t)); },
            [&](std::string_view url) -> std::optional<std::string> {
                auto du = wire::data_url(url);
                if (!du) return "image_url must be a data: URL (Bedrock takes image bytes, not links)";
                json::object source;
                source["bytes"] = du->second;
                json::object image;
                image["format"] = image_format(du->first);
                image["source"] = std::move(source);
                json::object b;
                b["image"] = std::move(image);
                out.push_back(std::move(b));
                return std::nullopt;
            });
    }

    wire_settings s_;
};

// messageStart, contentBlockStart/Delta/Stop, messageStop, metadata; exceptions.
class bedrock_stream final : public wire::chat_stream {
public:
    bedrock_stream(std::string provider, std::string model, bool include_usage)
        : chat_stream(std::move(provider), std::move(model), include_usage, "chatcmpl-" + fast_hex(24)) {}

    bool on_event(std::string_view type, std::string_view data, std::vector<json::object>& out) override {
        if (type.starts_with("exception")) return exception(type, data);
        boost::system::error_code ec;
        auto v = json::parse(data, ec);
        if (ec || !v.is_object()) return malformed("unparseable event");
        auto const& e = v.get_object();
        if (type == "messageStart") {
            out.push_back(chunk(role_delta()));
        } else if (type == "contentBlockStart") {
            auto const* start = e.if_contains("start");
            auto const* use = start && start->is_object() ? start->get_object().if_contains("toolUse") : nullptr;
            if (use && use->is_object()) {
                auto tool_index = next_tool_++;
                tool_of_block_[wire::num(e, "contentBlockIndex")] = tool_index;
                json::object fn;
                fn["name"] = str(use->get_object(), "name");
                fn["arguments"] = "";
                json::object call;
                call["index"] = tool_index;
                call["id"] = str(use->get_object(), "toolUseId");
                call["type"] = "function";
                call["function"] = std::move(fn);
                out.push_back(chunk(tool_delta(std::move(call))));
            }
        } else if (type == "contentBlockDelta") {
            auto const* d = e.if_contains("delta");
            if (!d || !d->is_object()) return malformed("contentBlockDelta without a delta");
            auto const& dd = d->get_object();
            if (auto const* t = dd.if_contains("text"); t && t->is_string() && !t->get_string().empty()) {
                json::object delta;
                delta["content"] = t->get_string();
                out.push_back(chunk(std::move(delta)));
            } else if (auto const* u = dd.if_contains("toolUse"); u && u->is_object()) {
                auto it = tool_of_block_.find(wire::num(e, "contentBlockIndex"));
                auto part = str(u->get_object(), "input");
                if (it != tool_of_block_.end() && !part.empty()) {
                    json::object fn;
                    fn["arguments"] = part;
                    json::object call;
                    call["index"] = it->second;
                    call["function"] = std::move(fn);
                    out.push_back(chunk(tool_delta(std::move(call))));
                }
            }
        } else if (type == "messageStop") {
            finish_ = finish_reason(str(e, "stopReason"));
            stopped_ = true;
        } else if (type == "metadata") {
            if (auto const* u = e.if_contains("usage"); u && u->is_object()) tokens = usage_of(u->get_object());
        }
        return true;  // contentBlockStop and unknown events carry nothing for the client
    }

    bool on_end(std::vector<json::object>& out) override {
        if (!stopped_) {
            error = api_error::upstream(502, "upstream provider '" + provider_ + "' ended the stream before messageStop");
            return false;
        }
        out.push_back(chunk(json::object(), json::value(finish_)));
        if (include_usage_) out.push_back(final_usage());
        return true;
    }

private:
    static json::object role_delta() {
        json::object d;
        d["role"] = "assistant";
        d["content"] = "";
        return d;
    }
    static json::object tool_delta(json::object call) {
        json::array calls;
        calls.push_back(std::move(call));
        json::object d;
        d["tool_calls"] = std::move(calls);
        return d;
    }
    bool exception(std::string_view type, std::string_view data) {
        auto name = type.substr(type.find('/') == std::string_view::npos ? type.size() : type.find('/') + 1);
        if (name == "throttlingException")
            error = api_error{429, "rate_limit_error", "upstream_rate_limited", "upstream provider '" + provider_ + "' is rate limiting"};
        else if (name == "serviceUnavailableException")
            error = api_error::upstream(503, "upstream provider '" + provider_ + "' is unavailable", "upstream_unavailable");
        else
            error = api_error::upstream(502, "upstream provider '" + provider_ + "' reported an error mid-stream");
        error->detail = std::string(name) + ": " + std::string(data.substr(0, 500));
        return false;
    }
    std::string finish_ = "stop";
    bool stopped_ = false;
    std::int64_t next_tool_ = 0;
    std::unordered_map<std::int64_t, std::int64_t> tool_of_block_;
};

std::unique_ptr<stream_decoder> bedrock_wire::stream(std::string const& model, bool include_usage) const {
    return std::make_unique<bedrock_stream>(name_, model, include_usage);
}

}  // namespace

std::unique_ptr<wire_format> make_bedrock_wire(wire_settings s) { return std::make_unique<bedrock_wire>(std::move(s)); }

}  // namespace toolgate::providers
