#include "gateway/policy/guarded_stream.hpp"

#include <algorithm>
#include <limits>
#include <map>

#include "gateway/policy/guardrail_parts.hpp"
#include "guardrails/pii_restore.hpp"

namespace toolgate::gateway::policy::detail {

namespace {

// Wraps the turn's sink: each choice's content is held back by the plugins' window, checked as it
// grows, and released (with placeholders restored) once no rule can match it any more.
class sink_impl final : public guarded_sink {
public:
    // `inbound`: the request's placeholders (what restore puts back); `sc`: the request's scope.
    sink_impl(guardrail_settings const& s, turn_context& ctx, gr::scope& sc, gr::scope const& inbound,
                 providers::chat_sink& inner)
        : s_(s), ctx_(ctx), sc_(sc), inbound_(inbound), escaped_(escaped_scope(inbound)), inner_(inner) {
        for (auto const& p : s.plugins) {
            restore_ = restore_ || p->restore;
            if (p->stage != plugin_stage::after_request || !applies(*p, gr::part_kind::assistant)) continue;
            checked_.push_back(p.get());
            if (p->whole) window_ = std::numeric_limits<std::size_t>::max();
            else window_ = std::max(window_, p->impl->window());
        }
    }

    std::optional<api_error> const& error() const override { return error_; }

    asio::awaitable<bool> on_chunk(json::object& chunk, std::string_view raw) override {
        if (error_) co_return false;
        auto* choices = chunk.if_contains("choices");
        if (!choices || !choices->is_array() || choices->get_array().empty()) co_return co_await inner_.on_chunk(chunk, raw);
        remember_identity(chunk);
        bool changed = false;
        for (auto& c : choices->get_array()) {
            auto* co = c.if_object();
            if (!co) continue;
            auto idx = choice_index(*co);
            auto& st = streams_[idx];
            auto* delta = co->if_contains("delta");
            auto* d = delta && delta->is_object() ? &delta->get_object() : nullptr;
            auto* content = d ? d->if_contains("content") : nullptr;
            if (content && content->is_string() && !content->get_string().empty()) {
                st.held.append(content->get_string());
                if (!scan(st, idx)) co_return false;
                *content = json::value(release(st, false));
                changed = true;
            }
            // Tool-call arguments (JSON text) get the originals back too, JSON-escaped: the
            // gateway's own tools (agent loop) and the client's need the real values.
            if (restore_ && d)
                if (auto* calls = d->if_contains("tool_calls"); calls && calls->is_array())
                    for (auto& call : calls->get_array()) {
                        auto* callo = call.if_object();
                        auto* fn = callo ? callo->if_contains("function") : nullptr;
                        auto* args = fn && fn->is_object() ? fn->get_object().if_contains("arguments") : nullptr;
                        if (!args || !args->is_string()) continue;
                        auto* ci = callo->if_contains("index");
                        auto k = ci && ci->is_int64() ? ci->get_int64() : 0;
                        auto it = st.args.try_emplace(k, escaped_).first;
                        *args = json::value(it->second.feed(args->get_string()));
                        changed = true;
                    }
            auto* fin = co->if_contains("finish_reason");
            if (fin && !fin->is_null()) {
                // The end of this choice: what is held has been checked and goes out now.
                if (!final_check(st, idx)) co_return false;
                st.finished = true;
                if (auto tails = arg_tails(st); !tails.empty()) {
                    if (!d) d = &(*co)["delta"].emplace_object();
                    append_tool_call_tails(*d, std::move(tails));
                    changed = true;
                }
                auto rest = release(st, true);
                if (!rest.empty()) {
                    if (!d) d = &(*co)["delta"].emplace_object();  // a finish chunk without a delta
                    if (auto* cc = d->if_contains("content"); cc && cc->is_string())
                        *cc = json::value(std::string(cc->get_string()) + rest);
                    else
                        (*d)["content"] = rest;
                    changed = true;
                }
            }
        }
        auto pass_on = changed ? std::string_view() : raw;
        co_return co_await inner_.on_chunk(chunk, pass_on);
    }

    asio::awaitable<bool> flush() override { co_return co_await inner_.flush(); }
    asio::awaitable<bool> on_comment(std::string_view text) override { co_return co_await inner_.on_comment(text); }

    asio::awaitable<bool> drain() override {
        for (auto& [idx, st] : streams_) {
            if (st.finished) continue;
            if (!final_check(st, idx)) co_return false;
            st.finished = true;
            auto rest = release(st, true);
            auto tails = arg_tails(st);
            if (rest.empty() && tails.empty()) continue;
            auto c = content_chunk(idx, rest);
            if (!tails.empty()) {
                auto& d = c.at("choices").as_array()[0].as_object().at("delta").as_object();
                if (rest.empty()) d.erase("content");
                append_tool_call_tails(d, std::move(tails));
            }
            if (!co_await inner_.on_chunk(c, no_raw_)) co_return true;
        }
        co_return true;
    }

private:
    struct stream_state {
        std::string held;  // checked, not yet sent
        std::optional<gr::placeholder_restorer> restorer;
        std::map<std::int64_t, gr::placeholder_restorer> args;  // per tool-call index
        bool finished = false;
    };

    // What the argument restorers still hold (a possible placeholder prefix), per call index.
    static std::vector<std::pair<std::int64_t, std::string>> arg_tails(stream_state& st) {
        std::vector<std::pair<std::int64_t, std::string>> out;
        for (auto& [k, r] : st.args)
            if (auto t = r.finish(); !t.empty()) out.emplace_back(k, std::move(t));
        st.args.clear();
        return out;
    }

    static void append_tool_call_tails(json::object& delta, std::vector<std::pair<std::int64_t, std::string>> tails) {
        json::array* calls = nullptr;
        if (auto* c = delta.if_contains("tool_calls"); c && c->is_array()) calls = &c->get_array();
        else calls = &delta["tool_calls"].emplace_array();
        for (auto& [k, t] : tails) {
            json::object fn;
            fn["arguments"] = std::move(t);
            json::object call;
            call["index"] = k;
            call["function"] = std::move(fn);
            calls->push_back(std::move(call));
        }
    }

    void remember_identity(json::object const& chunk) {
        for (auto key : {"id", "model", "created"})
            if (auto const* v = chunk.if_contains(key)) identity_[key] = *v;
    }

    // A chunk that carries only `text` for choice `idx`, in the stream's own id and model.
    json::object content_chunk(std::int64_t idx, std::string const& text) const {
        json::object c = identity_;
        c["object"] = "chat.completion.chunk";
        json::object delta;
        delta["content"] = text;
        json::object choice;
        choice["index"] = idx;
        choice["delta"] = std::move(delta);
        choice["finish_reason"] = nullptr;
        json::array choices;
        choices.push_back(std::move(choice));
        c["choices"] = std::move(choices);
        return c;
    }

    static std::int64_t choice_index(json::object const& c) {
        auto const* i = c.if_contains("index");
        return i && i->is_int64() ? i->get_int64() : 0;
    }

    // Checks the held text; redacting plugins rewrite it. False on a block (error_ is set).
    bool scan(stream_state& st, std::int64_t idx, bool at_end = false) {
        for (auto const* p : checked_) {
            if (p->whole && !at_end) continue;
            std::vector<gr::text_part> parts;
            parts.push_back(gr::text_part{gr::part_kind::assistant, static_cast<std::size_t>(idx), st.held});
            auto v = p->impl->check(parts, &ctx_.request.body, sc_);
            if (v.what == gr::outcome::pass) continue;
            count(*p, v.what);
            flagged_ = true;
            note(ctx_, *p, v);
            if (v.what == gr::outcome::redact) {
                st.held = parts[0].text;
                continue;
            }
            error_ = violation(*p, v, "choices[" + std::to_string(idx) + "].delta");
            return false;
        }
        return true;
    }

    bool final_check(stream_state& st, std::int64_t idx) {
        bool any_whole = false;
        for (auto const* p : checked_) any_whole = any_whole || p->whole;
        if (any_whole && !scan(st, idx, true)) return false;
        if (!flagged_)
            for (auto const* p : checked_) count(*p, gr::outcome::pass);  // one verdict per clean streamed answer
        return true;
    }

    // What can go out now: all but the last window bytes (on a UTF-8 boundary), restored.
    std::string release(stream_state& st, bool all) {
        std::size_t n = st.held.size();
        if (!all) {
            n = window_ >= st.held.size() ? 0 : st.held.size() - window_;
            while (n > 0 && n < st.held.size() && (static_cast<unsigned char>(st.held[n]) & 0xC0) == 0x80) --n;
        }
        std::string out = st.held.substr(0, n);
        st.held.erase(0, n);
        if (!restore_) return out;
        if (!st.restorer) st.restorer.emplace(inbound_);
        auto r = st.restorer->feed(out);
        if (all) r += st.restorer->finish();
        return r;
    }

    guardrail_settings const& s_;
    turn_context& ctx_;
    gr::scope& sc_;
    gr::scope const& inbound_;
    gr::scope escaped_;  // inbound_ with JSON-escaped originals, for tool-call arguments
    providers::chat_sink& inner_;
    json::object identity_;  // id, model, created of the stream's chunks
    std::string_view no_raw_;
    std::vector<guardrail_plugin const*> checked_;
    std::size_t window_ = 0;
    bool restore_ = false;
    std::map<std::int64_t, stream_state> streams_;
    std::optional<api_error> error_;
    bool flagged_ = false;
};

}  // namespace

std::unique_ptr<guarded_sink> make_guarded_sink(guardrail_settings const& s, turn_context& ctx, gr::scope& sc,
                                                gr::scope const& inbound, providers::chat_sink& inner) {
    return std::make_unique<sink_impl>(s, ctx, sc, inbound, inner);
}

bool checks_streams(guardrail_settings const& s) {
    for (auto const& p : s.plugins)
        if ((p->stage == plugin_stage::after_request && applies(*p, gr::part_kind::assistant)) || p->restore) return true;
    return false;
}

}  // namespace toolgate::gateway::policy::detail
