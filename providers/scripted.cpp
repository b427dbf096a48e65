#include "providers/scripted.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cctype>
#include <unordered_set>
#include <utility>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "common/duration.hpp"
#include "common/multipart.hpp"
#include "common/text.hpp"
#include "providers/wire.hpp"

namespace toolgate::providers {

namespace json = boost::json;

namespace {

struct rule {
    std::string when;  // lower-case substring of the last user message; empty matches everything
    std::string reply;
    std::string tool_name;
    std::string tool_arguments;  // JSON text
};

// The text of a message's content, whether a string or an array of text parts.
std::string content_text(json::value const* content) {
    if (content == nullptr) return {};
    if (content->is_string()) return std::string(content->get_string());
    std::string out;
    if (content->is_array()) {
        for (auto const& part : content->get_array()) {
            if (!part.is_object()) continue;
            if (auto const* t = part.get_object().if_contains("text"); t && t->is_string()) {
                if (!out.empty()) out.push_back(' ');
                out.append(t->get_string());
            }
        }
    }
    return out;
}

std::int64_t count_words(std::string_view s) {
    std::int64_t n = 0;
    bool in_word = false;
    for (char c : s) {
        bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
        if (!space && !in_word) ++n;
        in_word = !space;
    }
    return n;
}

// Splits a reply into stream pieces: each word together with the space before it.
std::vector<std::string> pieces_of(std::string_view text) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < text.size()) {
        std::size_t j = i;
        while (j < text.size() && text[j] == ' ') ++j;
        while (j < text.size() && text[j] != ' ') ++j;
        out.emplace_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

std::string model_of(json::object const& body, std::string const& fallback) {
    auto const* m = body.if_contains("model");
    return m && m->is_string() ? std::string(m->get_string()) : fallback;
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

class scripted_provider final : public provider {
public:
    explicit scripted_provider(provider_config cfg) : provider(std::move(cfg)) {
        for (auto const& [key, value] : cfg_.options) {
            if (key == "rules") {
                if (!value.is_array()) throw std::invalid_argument("rules must be a list");
                std::size_t i = 0;
                for (auto const& r : value.get_array()) parse_rule(r, i++);
            } else if (key == "token_delay") {
                auto d = value.is_string() ? parse_duration(value.get_string()) : std::nullopt;
                if (!d) throw std::invalid_argument("token_delay must be a duration such as 20ms");
                token_delay_ = *d;
            } else if (key == "default_reply") {
                if (!value.is_string()) throw std::invalid_argument("default_reply must be a string");
                default_reply_ = std::string(value.get_string());
            } else {
                throw std::invalid_argument("unknown key '" + std::string(key) +
                                            "' for provider type scripted (known: rules, token_delay, default_reply)");
            }
        }
        if (cfg_.models.empty()) cfg_.models.push_back("toolgate-demo");
    }

    std::string owned_by() const override { return "toolgate-demo"; }
    std::string description() const override {
        return "Demo model: deterministic scripted replies, no real language model behind it";
    }

    // Everything but the pacing of the stream, in a plain function (the braced JSON below:
    // (CONTRIBUTING.md)).
    chat_outcome prepare(chat_request& req, bool stream, std::vector<json::object>& chunks) const {
        chat_outcome out;
        auto* msgs = req.body.if_contains("messages");
        if (msgs == nullptr || !msgs->is_array() || msgs->get_array().empty()) {
            out.error = api_error::bad_request("'messages' must be a non-empty array", "invalid_messages");
            return out;
        }
        auto const& messages = msgs->get_array();
        std::int64_t prompt_tokens = 0;
        for (auto const& m : messages)
            if (m.is_object()) prompt_tokens += count_words(content_text(m.get_object().if_contains("content")));

        // Never read with operator[]: on a full object it reserves (and moves every value, so the
        // `messages` reference above would dangle) even when the key exists.
        std::string model = model_of(req.body, cfg_.models.front());
        decision d = decide(messages, req.body.if_contains("tools"), req.body.if_contains("tool_choice"));
        std::int64_t completion_tokens =
            d.tool_name.empty() ? count_words(d.text) : count_words(d.tool_arguments) + 1;
        if (auto mt = max_tokens_of(req.body); mt && d.tool_name.empty() && completion_tokens > *mt) {
            auto words = pieces_of(d.text);
            words.resize(static_cast<std::size_t>(*mt));
            d.text.clear();
            for (auto& w : words) d.text += w;
            completion_tokens = *mt;
            d.truncated = true;
        }
        out.tokens = {prompt_tokens, completion_tokens, true};
        std::string id = "chatcmpl-demo-" + std::to_string(fnv1a(json::serialize(messages)) % 1000000007ull);
        auto created = static_cast<std::int64_t>(std::time(nullptr));
        std::string finish = !d.tool_name.empty() ? "tool_calls" : (d.truncated ? "length" : "stop");
        std::string call_id = "call_demo_" + std::to_string(fnv1a(d.tool_name + d.tool_arguments) % 100000000ull);

        if (!stream) {
            json::object msg{{"role", "assistant"}};
            if (d.tool_name.empty()) {
                msg["content"] = d.text;
            } else {
                msg["content"] = nullptr;
                msg["tool_calls"] = json::array{json::object{
                    {"id", call_id},
                    {"type", "function"},
                    {"function", json::object{{"name", d.tool_name}, {"arguments", d.tool_arguments}}}}};
            }
            out.response = json::object{
                {"id", id},
                {"object", "chat.completion"},
                {"created", created},
                {"model", model},
                {"choices", json::array{json::object{{"index", 0}, {"message", std::move(msg)}, {"logprobs", nullptr},
                                                     {"finish_reason", finish}}}},
                {"usage", wire::usage_json(out.tokens)},
            };
            return out;
        }

        bool include_usage = wants_usage(req.body);
        auto chunk = [&](json::object delta, json::value finish_reason) {
            auto c = wire::chunk(id, created, model, std::move(delta), std::move(finish_reason));
            if (include_usage) c["usage"] = nullptr;  // as OpenAI sends it then
            return c;
        };
        chunks.push_back(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
        if (d.tool_name.empty()) {
            for (auto& p : pieces_of(d.text)) chunks.push_back(chunk({{"content", p}}, nullptr));
        } else {
            // Fragmented like real providers: the name first, then the arguments in pieces.
            chunks.push_back(chunk({{"tool_calls", json::array{json::object{
                                        {"index", 0},
                                        {"id", call_id},
                                        {"type", "function"},
                                        {"function", json::object{{"name", d.tool_name}, {"arguments", ""}}}}}}},
                                   nullptr));
            std::string_view args = d.tool_arguments;
            std::size_t step = std::max<std::size_t>(1, (args.size() + 2) / 3);
            for (std::size_t i = 0; i < args.size(); i += step)
                chunks.push_back(chunk({{"tool_calls", json::array{json::object{
                                            {"index", 0}, {"function", json::object{{"arguments", args.substr(i, step)}}}}}}},
                                       nullptr));
        }
        chunks.push_back(chunk(json::object{}, json::value(finish)));
        if (include_usage) chunks.push_back(wire::usage_chunk(id, created, model, out.tokens));

        return out;
    }

    asio::awaitable<chat_outcome> chat(call_context& ctx, chat_request& req, chat_sink* sink) override {
        std::vector<json::object> chunks;
        bool stream = req.stream && sink != nullptr;
        chat_outcome out = prepare(req, stream, chunks);
        if (!stream || out.error) co_return out;
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer timer(ex);
        auto sub = ctx.cancel.subscribe([&timer] { timer.cancel(); });
        for (std::size_t i = 0; i < chunks.size(); ++i) {
            if (ctx.cancel.cancelled()) co_return out;
            if (i > 0 && token_delay_.count() > 0) {
                timer.expires_after(token_delay_);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
                if (ctx.cancel.cancelled()) co_return out;
            }
            out.chunks_sent = true;
            bool ok = co_await sink->on_chunk(chunks[i], {});
            if (ok && (token_delay_.count() > 0 || i + 1 == chunks.size())) ok = co_await sink->flush();
            if (!ok) co_return out;
        }
        co_return out;
    }

    asio::awaitable<embeddings_outcome> embeddings(call_context&, json::object& body) override {
        co_return compute_embeddings(body);
    }

    asio::awaitable<embeddings_outcome> json_call(call_context&, std::string_view path, json::object& body) override {
        co_return offline_answer(path, body);
    }

    asio::awaitable<raw_outcome> raw_call(call_context&, std::string_view path, std::string_view, std::string_view content_type,
                                          std::string body) override {
        co_return offline_raw(path, content_type, body);
    }

    // The upload and audio routes, offline: a transcript that says what it heard, a short silent
    // WAV for any speech format, an image for an edit or a variation.
    raw_outcome offline_raw(std::string_view path, std::string_view content_type, std::string const& body) const {
        raw_outcome out;
        std::vector<multipart::part> parts;
        if (auto b = multipart::boundary_of(content_type))
            if (auto p = multipart::parse(body, *b)) parts = std::move(*p);
        auto text_field = [&](std::string_view name) {
            auto const* f = multipart::field(parts, name);
            return f ? std::string(f->data) : std::string();
        };
        if (path == "/audio/transcriptions" || path == "/audio/translations") {
            std::size_t bytes = 0;
            for (auto const& p : parts)
                if (p.name == "file") bytes += p.data.size();
            auto text = "(toolgate's offline demo heard " + std::to_string(bytes) + " bytes of audio)";
            if (text_field("response_format") == "text") {
                out.content_type = "text/plain; charset=utf-8";
                out.body = text + "\n";
            } else {
                json::object r;
                r["text"] = text;
                out.content_type = "application/json";
                out.body = json::serialize(r);
            }
        } else if (path == "/audio/speech") {
            out.content_type = "audio/wav";
            out.body = silent_wav(8000, 0.25);
        } else if (path == "/images/edits" || path == "/images/variations") {
            json::object b;
            auto prompt = text_field("prompt");
            b["prompt"] = prompt.empty() ? std::string("a variation") : prompt;
            auto n = text_field("n");
            if (!n.empty() && n.size() < 3 && std::isdigit(static_cast<unsigned char>(n[0]))) b["n"] = std::stoll(n);
            auto img = offline_answer("/images/generations", b);
            out.error = std::move(img.error);
            out.content_type = "application/json";
            out.body = json::serialize(img.response);
        } else {
            return provider_unsupported(path);
        }
        return out;
    }

    raw_outcome provider_unsupported(std::string_view path) const {
        raw_outcome out;
        out.error = api_error::bad_request("the offline demo model does not serve /v1" + std::string(path),
                                           "unsupported_for_provider");
        return out;
    }

    // A mono 8-bit PCM WAV of silence.
    static std::string silent_wav(std::uint32_t rate, double seconds) {
        auto samples = static_cast<std::uint32_t>(rate * seconds);
        std::string w;
        auto u32 = [&](std::uint32_t v) {
            for (int i = 0; i < 4; ++i) w.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
        };
        auto u16 = [&](std::uint16_t v) {
            w.push_back(static_cast<char>(v & 0xff));
            w.push_back(static_cast<char>(v >> 8));
        };
        w += "RIFF";
        u32(36 + samples);
        w += "WAVEfmt ";
        u32(16);
        u16(1);  // PCM
        u16(1);  // mono
        u32(rate);
        u32(rate);  // bytes per second
        u16(1);     // block align
        u16(8);     // bits per sample
        w += "data";
        u32(samples);
        w.append(samples, static_cast<char>(0x80));
        return w;
    }

    // The other JSON routes, offline: an image (a 1x1 PNG), a text completion, a moderation that
    // flags nothing, a rerank by shared words. Deterministic, for demos and tests.
    embeddings_outcome offline_answer(std::string_view path, json::object const& body) const {
        embeddings_outcome out;
        auto text_of = [&](char const* k) {
            auto const* v = body.if_contains(k);
            return v && v->is_string() ? std::string(v->get_string()) : std::string();
        };
        auto model = text_of("model");
        json::object r;
        if (path == "/images/generations") {
            auto prompt = text_of("prompt");
            if (prompt.empty()) {
                out.error = api_error::bad_request("'prompt' is required", "invalid_prompt");
                return out;
            }
            std::int64_t n = 1;
            if (auto const* v = body.if_contains("n"); v && v->is_int64()) n = std::clamp<std::int64_t>(v->get_int64(), 1, 10);
            json::array data;
            for (std::int64_t i = 0; i < n; ++i) {
                json::object img;
                img["b64_json"] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
                img["revised_prompt"] = prompt;
                data.push_back(std::move(img));
            }
            r["created"] = 1700000000;
            r["data"] = std::move(data);
        } else if (path == "/completions") {
            auto prompt = text_of("prompt");
            json::object choice;
            choice["text"] = " (toolgate's offline demo completes: " + prompt + ")";
            choice["index"] = 0;
            choice["logprobs"] = nullptr;
            choice["finish_reason"] = "stop";
            json::array choices;
            choices.push_back(std::move(choice));
            r["id"] = "cmpl-demo";
            r["object"] = "text_completion";
            r["created"] = 1700000000;
            r["model"] = model;
            r["choices"] = std::move(choices);
            json::object u;
            auto pt = static_cast<std::int64_t>(prompt.size() / 4 + 1);
            u["prompt_tokens"] = pt;
            u["completion_tokens"] = 8;
            u["total_tokens"] = pt + 8;
            r["usage"] = std::move(u);
            out.tokens.prompt_tokens = pt;
            out.tokens.completion_tokens = 8;
            out.tokens.present = true;
        } else if (path == "/moderations") {
            json::object result;
            result["flagged"] = false;
            result["categories"] = json::object();
            result["category_scores"] = json::object();
            json::array results;
            results.push_back(std::move(result));
            r["id"] = "modr-demo";
            r["model"] = model;
            r["results"] = std::move(results);
        } else if (path == "/rerank") {
            auto query = text_of("query");
            auto const* docs = body.if_contains("documents");
            if (query.empty() || !docs || !docs->is_array()) {
                out.error = api_error::bad_request("'query' and 'documents' are required", "invalid_rerank");
                return out;
            }
            auto words = [](std::string const& s) {
                std::vector<std::string> w;
                std::string cur;
                for (char c : s) {
                    if (std::isalnum(static_cast<unsigned char>(c))) cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
                    else if (!cur.empty()) w.push_back(std::exchange(cur, {}));
                }
                if (!cur.empty()) w.push_back(cur);
                return w;
            };
            auto q = words(query);
            std::vector<std::pair<double, std::int64_t>> scored;
            std::int64_t i = 0;
            for (auto const& d : docs->get_array()) {
                std::string text = d.is_string() ? std::string(d.get_string()) : json::serialize(d);
                auto w = words(text);
                std::unordered_set<std::string> present(w.begin(), w.end());
                double hits = 0;
                for (auto const& x : q) hits += present.count(x) ? 1 : 0;
                scored.emplace_back(q.empty() ? 0.0 : hits / double(q.size()), i++);
            }
            std::stable_sort(scored.begin(), scored.end(), [](auto const& a, auto const& b) { return a.first > b.first; });
            json::array results;
            for (auto const& [score, index] : scored) {
                json::object res;
                res["index"] = index;
                res["relevance_score"] = score;
                results.push_back(std::move(res));
            }
            r["model"] = model;
            r["results"] = std::move(results);
        } else {
            out.error = api_error::bad_request("the scripted provider does not serve /v1" + std::string(path),
                                               "unsupported_for_provider");
            return out;
        }
        out.response = std::move(r);
        return out;
    }

    embeddings_outcome compute_embeddings(json::object& body) const {
        embeddings_outcome out;
        std::vector<std::string> inputs;
        auto* in = body.if_contains("input");
        if (in && in->is_string()) {
            inputs.emplace_back(in->get_string());
        } else if (in && in->is_array() && !in->get_array().empty()) {
            for (auto const& item : in->get_array())
                inputs.push_back(item.is_string() ? std::string(item.get_string()) : json::serialize(item));
        } else {
            out.error = api_error::bad_request("'input' must be a string or a non-empty array", "invalid_input");
            return out;
        }
        std::size_t dims = 16;
        if (auto* d = body.if_contains("dimensions"); d && d->is_int64()) {
            if (d->get_int64() < 1 || d->get_int64() > 4096) {
                out.error = api_error::bad_request("'dimensions' must be between 1 and 4096", "invalid_dimensions");
                return out;
            }
            dims = static_cast<std::size_t>(d->get_int64());
        }
        bool b64 = false;
        if (auto* f = body.if_contains("encoding_format"); f && f->is_string()) b64 = f->get_string() == "base64";
        json::array data;
        std::int64_t tokens = 0;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            tokens += std::max<std::int64_t>(1, count_words(inputs[i]));
            std::vector<float> vec(dims);
            std::uint64_t h = fnv1a(inputs[i]);
            double norm = 0;
            for (auto& x : vec) {
                h ^= h << 13;
                h ^= h >> 7;
                h ^= h << 17;
                x = static_cast<float>(static_cast<double>(h % 20001) / 10000.0 - 1.0);
                norm += double(x) * x;
            }
            norm = std::sqrt(norm);
            if (norm > 0)
                for (auto& x : vec) x = static_cast<float>(x / norm);
            json::value emb;
            if (b64) {
                std::string raw(vec.size() * sizeof(float), '\0');
                std::memcpy(raw.data(), vec.data(), raw.size());  // little-endian float32, as OpenAI sends
                emb = base64(raw);
            } else {
                json::array a;
                for (float x : vec) a.push_back(static_cast<double>(x));
                emb = std::move(a);
            }
            data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(emb)}});
        }
        std::string model = model_of(body, cfg_.models.front());
        out.tokens = {tokens, 0, true};
        out.response = json::object{{"object", "list"},
                                    {"data", std::move(data)},
                                    {"model", model},
                                    {"usage", json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
        return out;
    }

private:
    struct decision {
        std::string text;
        std::string tool_name;
        std::string tool_arguments;
        bool truncated = false;
    };

    static std::optional<std::int64_t> max_tokens_of(json::object const& body) {
        for (char const* key : {"max_completion_tokens", "max_tokens"})
            if (auto const* v = body.if_contains(key); v && v->is_int64() && v->get_int64() > 0) return v->get_int64();
        return std::nullopt;
    }

    void parse_rule(json::value const& v, std::size_t index) {
        std::string where = "rules[" + std::to_string(index) + "]";
        if (!v.is_object()) throw std::invalid_argument(where + " must be a mapping");
        rule r;
        for (auto const& [k, val] : v.get_object()) {
            if (k == "when") {
                if (!val.is_string()) throw std::invalid_argument(where + ".when must be a string");
                r.when = ascii_lower(val.get_string());
            } else if (k == "reply") {
                if (!val.is_string()) throw std::invalid_argument(where + ".reply must be a string");
                r.reply = std::string(val.get_string());
            } else if (k == "tool_call") {
                auto const* o = val.if_object();
                auto const* name = o ? o->if_contains("name") : nullptr;
                if (!name || !name->is_string() || name->get_string().empty())
                    throw std::invalid_argument(where + ".tool_call needs a name");
                r.tool_name = std::string(name->get_string());
                auto const* args = o->if_contains("arguments");
                if (args && !args->is_object()) throw std::invalid_argument(where + ".tool_call.arguments must be a mapping");
                r.tool_arguments = args ? json::serialize(*args) : "{}";
                for (auto const& [ok, ov] : *o)
                    if (ok != "name" && ok != "arguments")
                        throw std::invalid_argument(where + ".tool_call: unknown key '" + std::string(ok) + "'");
            } else {
                throw std::invalid_argument(where + ": unknown key '" + std::string(k) + "' (known: when, reply, tool_call)");
            }
        }
        if (r.reply.empty() && r.tool_name.empty()) throw std::invalid_argument(where + " needs a reply or a tool_call");
        rules_.push_back(std::move(r));
    }

    // The name under which the request offers `wanted`: exact, or with a "<server>__" prefix.
    static std::string offered_tool(json::value const* tools, std::string const& wanted) {
        if (tools == nullptr || !tools->is_array()) return {};
        std::string suffix_match;
        for (auto const& t : tools->get_array()) {
            auto const* fn = t.is_object() ? t.get_object().if_contains("function") : nullptr;
            auto const* name = fn && fn->is_object() ? fn->get_object().if_contains("name") : nullptr;
            if (!name || !name->is_string()) continue;
            std::string_view n = name->get_string();
            if (n == wanted) return std::string(n);
            if (suffix_match.empty() && n.size() > wanted.size() + 2 && n.ends_with(wanted) &&
                n.substr(n.size() - wanted.size() - 2, 2) == "__")
                suffix_match = std::string(n);
        }
        return suffix_match;
    }

    decision decide(json::array const& messages, json::value const* tools, json::value const* tool_choice) const {
        decision d;
        auto const& last = messages.back();
        auto const* lo = last.if_object();
        std::string role = lo && lo->contains("role") && lo->at("role").is_string() ? std::string(lo->at("role").get_string()) : "";
        if (role == "tool") {
            // Summarise the tool results that follow the last assistant turn.
            std::string results;
            for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
                auto const* m = it->if_object();
                if (!m || !m->contains("role") || m->at("role") != "tool") break;
                auto text = content_text(m->if_contains("content"));
                if (text.size() > 2000) text = text.substr(0, 2000) + "...";
                results = results.empty() ? text : text + "; " + results;
            }
            d.text = "The tool returned: " + results;
            return d;
        }
        std::string user_text, first_text;
        std::size_t turns = 0;
        for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
            auto const* m = it->if_object();
            if (m && m->contains("role") && m->at("role") == "user") {
                if (turns++ == 0) user_text = content_text(m->if_contains("content"));
                first_text = content_text(m->if_contains("content"));
            }
        }
        bool tools_allowed = !(tool_choice && tool_choice->is_string() && tool_choice->get_string() == "none");
        auto lowered = ascii_lower(user_text);
        for (auto const& r : rules_) {
            if (!r.when.empty() && lowered.find(r.when) == std::string::npos) continue;
            if (!r.tool_name.empty()) {
                auto name = tools_allowed ? offered_tool(tools, r.tool_name) : std::string();
                if (name.empty() && r.reply.empty()) continue;  // tool not offered: try the next rule
                if (!name.empty()) {
                    d.tool_name = name;
                    d.tool_arguments = r.tool_arguments;
                    return d;
                }
            }
            d.text = substitute(r.reply, user_text, first_text, turns);
            return d;
        }
        d.text = substitute(default_reply_, user_text, first_text, turns);
        return d;
    }

    // {input}: the last user message; {first}: the first one; {turns}: how many the model saw.
    static std::string substitute(std::string const& tmpl, std::string const& input, std::string const& first,
                                  std::size_t turns) {
        std::string out = tmpl;
        auto put = [&out](std::string_view name, std::string const& value) {
            auto pos = out.find(name);
            if (pos != std::string::npos) out.replace(pos, name.size(), value);
        };
        put("{input}", input);
        put("{first}", first);
        put("{turns}", std::to_string(turns));
        return out;
    }

    std::vector<rule> rules_;
    std::chrono::milliseconds token_delay_{0};
    std::string default_reply_ = "This is the toolgate demo model. You said: {input}";
};

}  // namespace

std::unique_ptr<provider> make_scripted_provider(provider_config cfg) {
    return std::make_unique<scripted_provider>(std::move(cfg));
}

}  // namespace toolgate::providers
