// Google's Gemini API (models/{model}:generateContent, :streamGenerateContent?alt=sse,
// :batchEmbedContents) behind the OpenAI wire format.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <ctime>
#include <set>
#include <unordered_map>

#include "providers/wire.hpp"

namespace toolgate::providers {

namespace {

using wire::data_url;
using wire::num;
using wire::str;

bool blocked_reason(std::string_view r) {
    return r == "SAFETY" || r == "RECITATION" || r == "BLOCKLIST" || r == "PROHIBITED_CONTENT" || r == "SPII" ||
           r == "IMAGE_SAFETY";
}

std::string finish_reason(std::string_view r, bool has_calls) {
    if (r == "MAX_TOKENS") return "length";
    if (blocked_reason(r)) return "content_filter";
    return has_calls ? "tool_calls" : "stop";
}

usage usage_of(json::object const& response) {
    usage u;
    auto const* m = response.if_contains("usageMetadata");
    if (!m || !m->is_object()) return u;
    auto const& mo = m->get_object();
    u.prompt_tokens = token_count(mo.if_contains("promptTokenCount"));
    u.completion_tokens = token_count(mo.if_contains("candidatesTokenCount")) + token_count(mo.if_contains("thoughtsTokenCount"));
    u.present = true;
    return u;
}

// JSON Schema as Gemini's Schema subset: unknown keywords ($schema, additionalProperties, ...) are
// dropped, ["T","null"] types become T + nullable.
json::value gemini_schema(json::value const& in) {
    static std::set<std::string_view> const keep{"type",     "format",   "title",     "description", "nullable",
                                                 "enum",     "maxItems", "minItems",  "properties",  "required",
                                                 "minimum",  "maximum",  "items",     "anyOf",       "minLength",
                                                 "maxLength", "pattern", "propertyOrdering", "minProperties",
                                                 "maxProperties"};
    if (!in.is_object()) return in;
    json::object out;
    for (auto const& [k, v] : in.get_object()) {
        if (!keep.count(k)) continue;
        if (k == "properties" && v.is_object()) {
            json::object props;
            for (auto const& [pk, pv] : v.get_object()) props[pk] = gemini_schema(pv);
            out[k] = std::move(props);
        } else if (k == "items") {
            out[k] = gemini_schema(v);
        } else if (k == "anyOf" && v.is_array()) {
            json::array alts;
            for (auto const& a : v.get_array()) alts.push_back(gemini_schema(a));
            out[k] = std::move(alts);
        } else if (k == "type" && v.is_array()) {
            for (auto const& t : v.get_array()) {
                if (t == "null") out["nullable"] = true;
                else if (!out.contains("type")) out["type"] = t;
            }
        } else {
            out[k] = v;
        }
    }
    return out;
}

bool empty_object_schema(json::value const& schema) {
    auto const* o = schema.if_object();
    if (!o) return true;
    auto const* props = o->if_contains("properties");
    return !props || !props->is_object() || props->get_object().empty();
}

class google_wire final : public wire_format {
public:
    std::string_view auth_header() const override { return "x-goog-api-key"; }
    explicit google_wire(wire_settings s) : wire_format(s.name), s_(std::move(s)) {}

    std::optional<api_error> encode_chat(json::object const& body, bool stream, native_request& out) const override {
        auto fail = [&](std::string what) {
            return api_error::bad_request(what + " (provider '" + name_ + "' speaks the Gemini API)", "unsupported_for_provider");
        };
        wire::chat_view v;
        if (auto err = wire::read_chat(body, v)) return fail(*err);
        auto model = str(body, "model");
        if (model.empty() || model.find_first_of("/?#% ") != std::string_view::npos) return fail("invalid model name");
        json::array contents;
        for (auto const& m : v.messages) {
            json::array parts;
            using role = wire::message_view::role;
            if (m.who == role::user) {
                if (auto err = user_parts(m.content, parts)) return fail(*err);
            } else if (m.who == role::assistant) {
                if (!m.text.empty()) parts.push_back(json::object{{"text", m.text}});
                for (auto const& c : m.calls)
                    parts.push_back(json::object{{"functionCall", json::object{{"name", c.name}, {"args", c.arguments}}}});
            } else {
                // Gemini names the function a response belongs to, not the call.
                if (m.tool_name.empty()) return fail("tool message '" + m.tool_call_id + "' answers no earlier tool call");
                boost::system::error_code ec;
                auto parsed = json::parse(m.text, ec);
                json::value response = !ec && parsed.is_object() ? parsed : json::value(json::object{{"result", m.text}});
                parts.push_back(json::object{{"functionResponse", json::object{{"name", m.tool_name}, {"response", std::move(response)}}}});
            }
            wire::append_turn(contents, m.who == role::assistant ? "model" : "user", "parts", std::move(parts));
        }
        json::object req{{"contents", std::move(contents)}};
        if (!v.system.empty()) req["systemInstruction"] = json::object{{"parts", json::array{json::object{{"text", v.system}}}}};

        if (!v.tools.empty()) {
            json::array decls;
            for (auto const& t : v.tools) {
                json::object d{{"name", t.name}};
                if (!t.description.empty()) d["description"] = t.description;
                if (t.parameters && !empty_object_schema(*t.parameters)) d["parameters"] = gemini_schema(*t.parameters);
                decls.push_back(std::move(d));
            }
            req["tools"] = json::array{json::object{{"functionDeclarations", std::move(decls)}}};
            using choice_t = wire::chat_view::choice;
            if (v.tool_choice != choice_t::unset) {
                json::object cfg;
                cfg["mode"] = v.tool_choice == choice_t::automatic ? "AUTO" : v.tool_choice == choice_t::none ? "NONE" : "ANY";
                if (v.tool_choice == choice_t::named) cfg["allowedFunctionNames"] = json::array{json::value(v.choice_name)};
                req["toolConfig"] = json::object{{"functionCallingConfig", std::move(cfg)}};
            }
        }
        json::object gen;
        if (auto const* t = body.if_contains("temperature"); t && t->is_number()) gen["temperature"] = *t;
        if (auto const* t = body.if_contains("top_p"); t && t->is_number()) gen["topP"] = *t;
        if (auto mt = wire::max_tokens(body)) gen["maxOutputTokens"] = *mt;
        if (auto seqs = wire::stop_sequences(body); !seqs.empty()) gen["stopSequences"] = std::move(seqs);
        if (auto const* s = body.if_contains("seed"); s && s->is_int64()) gen["seed"] = *s;
        if (auto const* rf = body.if_contains("response_format"); rf && rf->is_object()) {
            auto type = str(rf->get_object(), "type");
            if (type == "json_object" || type == "json_schema") gen["responseMimeType"] = "application/json";
        }
        if (!gen.empty()) req["generationConfig"] = std::move(gen);

        out.path = model_path(model) + (stream ? ":streamGenerateContent?alt=sse" : ":generateContent");
        if (s_.vertex_location_path.empty()) out.headers.emplace_back("x-goog-api-key", s_.api_key);
        out.body = json::serialize(req);
        return std::nullopt;
    }

    decoded decode_chat(std::string_view body, std::string const& model) const override {
        decoded d;
        auto v = wire::answer_value(body, name_, d);
        if (!v) return d;
        auto const& r = v->get_object();
        d.tokens = usage_of(r);
        if (auto err = blocked(r, false)) {
            d.error = err;
            return d;
        }
        std::string text;
        json::array calls;
        std::string_view reason;
        collect(r, text, calls, reason, 0);
        if (blocked_reason(reason) && text.empty() && calls.empty()) {
            d.error = content_blocked(reason);
            return d;
        }
        json::object msg{{"role", "assistant"}};
        msg["content"] = text.empty() && !calls.empty() ? json::value(nullptr) : json::value(text);
        bool has_calls = !calls.empty();
        if (has_calls) msg["tool_calls"] = std::move(calls);
        auto id = str(r, "responseId");
        auto mv = str(r, "modelVersion");
        d.response = json::object{
            {"id", id.empty() ? std::string("chatcmpl-gemini") : "chatcmpl-" + std::string(id)},
            {"object", "chat.completion"},
            {"created", wire::now_seconds()},
            {"model", mv.empty() ? std::string_view(model) : mv},
            {"choices", json::array{json::object{{"index", 0},
                                                 {"message", std::move(msg)},
                                                 {"logprobs", nullptr},
                                                 {"finish_reason", finish_reason(reason, has_calls)}}}},
            {"usage", wire::usage_json(d.tokens)},
        };
        return d;
    }

    std::unique_ptr<stream_decoder> stream(std::string const& model, bool include_usage) const override;

    bool has_embeddings() const override { return true; }

    std::optional<api_error> encode_embeddings(json::object const& body, native_request& out) const override {
        auto model = str(body, "model");
        if (model.empty() || model.find_first_of("/?#% ") != std::string_view::npos)
            return api_error::bad_request("invalid model name", "invalid_model");
        std::vector<std::string> inputs;
        // batchEmbedContents takes 100 requests, Vertex's predict 250 instances.
        if (auto err = wire::embedding_inputs(body, name_, s_.vertex_location_path.empty() ? 100 : 250, inputs)) return err;
        auto const* dim = body.if_contains("dimensions");
        bool has_dim = dim && dim->is_int64();
        if (!s_.vertex_location_path.empty()) {
            // Vertex serves embeddings through :predict, one instance per text.
            json::array instances;
            for (auto& text : inputs) instances.push_back(json::object{{"content", text}});
            json::object req{{"instances", std::move(instances)}};
            if (has_dim) req["parameters"] = json::object{{"outputDimensionality", *dim}};
            out.path = model_path(model) + ":predict";
            out.body = json::serialize(req);
            return std::nullopt;
        }
        json::array requests;
        for (auto& text : inputs) {
            json::object r{{"model", "models/" + std::string(model)},
                           {"content", json::object{{"parts", json::array{json::object{{"text", text}}}}}}};
            if (has_dim) r["outputDimensionality"] = *dim;
            requests.push_back(std::move(r));
        }
        out.path = model_path(model) + ":batchEmbedContents";
        out.headers.emplace_back("x-goog-api-key", s_.api_key);
        out.body = json::serialize(json::object{{"requests", std::move(requests)}});
        return std::nullopt;
    }

    decoded decode_embeddings(std::string_view body, std::string const& model) const override {
        decoded d;
        boost::system::error_code ec;
        auto v = json::parse(body, ec);
        bool vertex = !s_.vertex_location_path.empty();
        auto const* embs = !ec && v.is_object() ? v.get_object().if_contains(vertex ? "predictions" : "embeddings") : nullptr;
        if (!embs || !embs->is_array()) {
            d.error = api_error::upstream(502, "upstream provider '" + name_ + "' returned a malformed response");
            d.error->detail = "unparseable body: " + std::string(body.substr(0, 200));
            return d;
        }
        json::array data;
        std::size_t i = 0;
        std::int64_t tokens = 0;
        for (auto const& e : embs->get_array()) {
            auto const* values = e.is_object() ? e.get_object().if_contains("values") : nullptr;
            if (vertex) {
                // {"embeddings": {"values": [...], "statistics": {"token_count": n}}}
                auto const* inner = e.is_object() ? e.get_object().if_contains("embeddings") : nullptr;
                auto const* io = inner ? inner->if_object() : nullptr;
                values = io ? io->if_contains("values") : nullptr;
                auto const* stats = io ? io->if_contains("statistics") : nullptr;
                if (stats && stats->is_object())
                    tokens = std::min(max_token_count, tokens + token_count(stats->get_object().if_contains("token_count")));
            }
            if (!values || !values->is_array()) {
                d.error = api_error::upstream(502, "upstream provider '" + name_ + "' returned a malformed response");
                d.error->detail = "an embedding without values";
                return d;
            }
            data.push_back(json::object{{"object", "embedding"},
                                        {"index", i++},
                                        {"embedding", values ? *values : json::value(json::array())}});
        }
        d.response = json::object{{"object", "list"},
                                  {"data", std::move(data)},
                                  {"model", model},
                                  {"usage", json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
        d.tokens.prompt_tokens = tokens;
        d.tokens.present = vertex;
        return d;
    }

    // Gemini's answer parts: text joined, function calls as OpenAI tool calls numbered from `first`.
    static void collect(json::object const& r, std::string& text, json::array& calls, std::string_view& reason,
                        std::size_t first) {
        auto const* cands = r.if_contains("candidates");
        if (!cands || !cands->is_array() || cands->get_array().empty()) return;
        auto const* c = cands->get_array()[0].if_object();
        if (!c) return;
        if (auto fr = str(*c, "finishReason"); !fr.empty()) reason = fr;
        auto const* content = c->if_contains("content");
        auto const* parts = content && content->is_object() ? content->get_object().if_contains("parts") : nullptr;
        if (!parts || !parts->is_array()) return;
        for (auto const& p : parts->get_array()) {
            auto const* po = p.if_object();
            if (!po) continue;
            if (auto const* thought = po->if_contains("thought"); thought && thought->is_bool() && thought->get_bool()) continue;
            if (auto const* t = po->if_contains("text"); t && t->is_string()) text += t->get_string();
            if (auto const* fc = po->if_contains("functionCall"); fc && fc->is_object()) {
                auto const& f = fc->get_object();
                auto id = str(f, "id");
                calls.push_back(wire::openai_tool_call(id.empty() ? "call_" + std::to_string(first + calls.size()) : std::string(id),
                                                       str(f, "name"), f.if_contains("args")));
            }
        }
    }

    // Images: Imagen models through :predict, Gemini's image models through :generateContent with
    // image output. Answers carry the bytes, so the data is always b64_json.
    bool has_images() const override { return true; }

    std::optional<api_error> encode_images(json::object const& body, native_request& out) const override {
        auto model = str(body, "model");
        if (model.empty() || model.find_first_of("/?#% ") != std::string_view::npos)
            return api_error::bad_request("invalid model name", "invalid_model");
        auto prompt = str(body, "prompt");
        if (prompt.empty()) return api_error::bad_request("'prompt' is required", "missing_field");
        std::int64_t n = 1;
        if (auto const* v = body.if_contains("n"); v && !v->is_null()) {
            if (!v->is_int64() || v->get_int64() < 1 || v->get_int64() > 8)
                return api_error::bad_request("'n' must be 1 to 8 on provider '" + name_ + "'", "invalid_n");
            n = v->get_int64();
        }
        if (auto f = str(body, "response_format"); f == "url")
            return api_error::bad_request("response_format 'url' is not served by provider '" + name_ +
                                              "' (Gemini returns the image itself): ask for b64_json",
                                          "unsupported_for_provider");
        if (model.starts_with("imagen")) {
            json::object params{{"sampleCount", n}};
            static std::unordered_map<std::string_view, std::string_view> const ratios{
                {"1024x1024", "1:1"}, {"1792x1024", "16:9"}, {"1024x1792", "9:16"}, {"1536x1024", "3:2"}, {"1024x1536", "2:3"}};
            if (auto it = ratios.find(str(body, "size")); it != ratios.end()) params["aspectRatio"] = it->second;
            json::object req{{"instances", json::array{json::object{{"prompt", prompt}}}}, {"parameters", std::move(params)}};
            out.path = model_path(model) + ":predict";
            out.body = json::serialize(req);
        } else {
            if (n != 1)
                return api_error::bad_request("'n' must be 1 for Gemini image model '" + std::string(model) + "'", "invalid_n");
            json::object gen{{"responseModalities", json::array{"TEXT", "IMAGE"}}};
            json::object req{{"contents", json::array{json::object{{"role", "user"}, {"parts", json::array{json::object{{"text", prompt}}}}}}},
                             {"generationConfig", std::move(gen)}};
            out.path = model_path(model) + ":generateContent";
            out.body = json::serialize(req);
        }
        if (s_.vertex_location_path.empty()) out.headers.emplace_back("x-goog-api-key", s_.api_key);
        return std::nullopt;
    }

    decoded decode_images(std::string_view body, std::string const& model) const override {
        decoded d;
        auto v = wire::answer_value(body, name_, d);
        if (!v) return d;
        auto const& r = v->get_object();
        json::array data;
        auto add = [&](std::string_view b64) {
            if (!b64.empty()) data.push_back(json::object{{"b64_json", b64}});
        };
        if (model.starts_with("imagen")) {
            if (auto const* p = r.if_contains("predictions"); p && p->is_array())
                for (auto const& e : p->get_array())
                    if (auto const* o = e.if_object()) add(str(*o, "bytesBase64Encoded"));
        } else {
            d.tokens = usage_of(r);
            if (auto err = blocked(r, false)) {
                d.error = std::move(*err);
                return d;
            }
            if (auto const* cs = r.if_contains("candidates"); cs && cs->is_array())
                for (auto const& c : cs->get_array()) {
                    auto const* co = c.if_object();
                    auto const* content = co ? co->if_contains("content") : nullptr;
                    auto const* parts = content && content->is_object() ? content->get_object().if_contains("parts") : nullptr;
                    if (!parts || !parts->is_array()) continue;
                    for (auto const& part : parts->get_array()) {
                        auto const* po = part.if_object();
                        auto const* inline_data = po ? po->if_contains("inlineData") : nullptr;
                        if (inline_data && inline_data->is_object()) add(str(inline_data->get_object(), "data"));
                    }
                }
        }
        if (data.empty()) {
            // Imagen leaves out what its safety filters removed; nothing left is a refusal.
            d.error = content_blocked("no image in the answer");
            return d;
        }
        d.response = json::object{{"created", static_cast<std::int64_t>(std::time(nullptr))}, {"data", std::move(data)}};
        return d;
    }

    api_error content_blocked(std::string_view reason) const {
        return api_error::bad_request("upstream provider '" + name_ + "' blocked the answer (" + std::string(reason) + ")",
                                      "content_blocked");
    }

    // A prompt Gemini refused to answer at all.
    std::optional<api_error> blocked(json::object const& r, bool) const {
        auto const* pf = r.if_contains("promptFeedback");
        if (!pf || !pf->is_object()) return std::nullopt;
        auto reason = str(pf->get_object(), "blockReason");
        if (reason.empty()) return std::nullopt;
        return api_error::bad_request("upstream provider '" + name_ + "' blocked the prompt (" + std::string(reason) + ")",
                                      "content_blocked");
    }

private:
    // "/models/M" on the Gemini API; the publisher model's path on Vertex.
    std::string model_path(std::string_view model) const {
        if (s_.vertex_location_path.empty()) return "/models/" + std::string(model);
        return s_.vertex_location_path + "/publishers/google/models/" + std::string(model);
    }

    static std::optional<std::string> user_parts(json::value const* content, json::array& out) {
        return wire::user_parts(
            content, [&](std::string_view t) { out.push_back(json::object{{"text", t}}); },
            [&](std::string_view url) -> std::optional<std::string> {
                auto du = data_url(url);
                if (!du) return "image_url must be a data: URL (base64) for this provider";
                out.push_back(json::object{{"inlineData", json::object{{"mimeType", du->first}, {"data", du->second}}}});
                return std::nullopt;
            });
    }

    wire_settings s_;
};

// Each event is a whole GenerateContentResponse holding the next piece; the stream ends at EOF.
class google_stream final : public wire::chat_stream {
public:
    google_stream(google_wire const& w, std::string model, bool include_usage)
        : chat_stream(w.provider_name(), std::move(model), include_usage, "chatcmpl-gemini"), w_(w) {}

    bool on_event(std::string_view, std::string_view data, std::vector<json::object>& out) override {
        boost::system::error_code ec;
        auto v = json::parse(data, ec);
        if (ec || !v.is_object()) return malformed("unparseable event");
        auto const& r = v.get_object();
        if (auto const* e = r.if_contains("error"); e && !e->is_null()) {
            error = api_error::upstream(502, "upstream provider '" + w_.provider_name() + "' reported an error mid-stream");
            error->detail = json::serialize(*e);
            return false;
        }
        if (auto err = w_.blocked(r, true)) {
            error = err;
            return false;
        }
        if (auto u = usage_of(r); u.present) tokens = u;
        if (!started_) {
            started_ = true;
            if (auto id = str(r, "responseId"); !id.empty()) id_ = "chatcmpl-" + std::string(id);
            if (auto mv = str(r, "modelVersion"); !mv.empty()) model_ = std::string(mv);
            out.push_back(chunk(json::object{{"role", "assistant"}, {"content", ""}}));
        }
        std::string text;
        json::array calls;
        std::string_view reason;
        google_wire::collect(r, text, calls, reason, calls_);
        if (!reason.empty()) reason_ = std::string(reason);
        if (!text.empty()) {
            any_content_ = true;
            out.push_back(chunk(json::object{{"content", text}}));
        }
        for (auto& c : calls) {
            c.as_object()["index"] = calls_++;
            out.push_back(chunk(json::object{{"tool_calls", json::array{std::move(c)}}}));
        }
        return true;
    }

    bool on_end(std::vector<json::object>& out) override {
        if (!started_) {
            error = api_error::upstream(502, "upstream provider '" + w_.provider_name() + "' sent an empty stream");
            return false;
        }
        if (blocked_reason(reason_) && !any_content_ && calls_ == 0) {
            error = w_.content_blocked(reason_);
            return false;
        }
        out.push_back(chunk(json::object(), json::value(finish_reason(reason_, calls_ > 0))));
        if (include_usage_) out.push_back(final_usage());
        return true;
    }

private:
    google_wire const& w_;
    bool started_ = false;
    bool any_content_ = false;
    std::string reason_;
    std::size_t calls_ = 0;
};

std::unique_ptr<stream_decoder> google_wire::stream(std::string const& model, bool include_usage) const {
    return std::make_unique<google_stream>(*this, model, include_usage);
}

}  // namespace

std::unique_ptr<wire_format> make_google_wire(wire_settings s) { return std::make_unique<google_wire>(std::move(s)); }

}  // namespace toolgate::providers
