// The multipart upload routes of the OpenAI API: POST /v1/audio/transcriptions,
// /v1/audio/translations, /v1/images/edits and /v1/images/variations. The body is read whole
// (server.max_upload_bytes), checked as multipart/form-data, routed by its `model` field like any
// turn (keys, limits, budgets, retries, fallback, the request log) and sent to the same path of
// the OpenAI-compatible provider that serves the model, with the model field naming the upstream
// model and every other byte as the client sent it; the answer goes back as it came.
#include <boost/algorithm/string/predicate.hpp>
#include <boost/json/object.hpp>

#include <boost/json/serialize.hpp>

#include "common/json_util.hpp"
#include "common/multipart.hpp"
#include "gateway/api/handlers.hpp"
#include "gateway/api/state.hpp"
#include "gateway/policy/guardrails.hpp"

namespace toolgate::gateway::api {

namespace json = boost::json;

namespace {

api_error bad(std::string message, std::string_view code, std::string_view param = {}) {
    auto err = api_error::bad_request(std::move(message), std::string(code));
    if (!param.empty()) err.param = std::string(param);
    return err;
}

struct upload_route {
    std::string_view path;        // upstream, after /v1
    std::string_view file_field;  // the part that must carry a file
    bool transcript;              // the answer is a transcript the output guardrails read
};

// The request checked: the error to answer, or nothing (and `model` set).
std::optional<api_error> check_upload(api_request const& r, upload_route const& route, std::string& model) {
    auto boundary = multipart::boundary_of(r.req.header("content-type"));
    if (!boundary)
        return bad("/v1" + std::string(route.path) + " takes multipart/form-data (with a boundary)",
                   "invalid_content_type");
    auto parts = multipart::parse(r.req.body, *boundary);
    if (!parts) return bad("the multipart/form-data body is malformed or has too many parts", "invalid_multipart");
    std::size_t models = 0;
    for (auto const& p : *parts) models += boost::algorithm::iequals(p.name, "model") ? 1 : 0;
    if (models > 1) return bad("'model' must be given once", "duplicate_field", "model");
    auto const* m = multipart::field(*parts, "model");
    if (!m || m->data.empty() || m->data.size() > 256)
        return bad("'model' is required (a form field)", "missing_field", "model");
    bool file = false;
    for (auto const& p : *parts)
        file = file || (p.name == route.file_field || p.name == std::string(route.file_field) + "[]");
    if (!file)
        return bad("'" + std::string(route.file_field) + "' is required (a file part)", "missing_field", route.file_field);
    model = std::string(m->data);
    return std::nullopt;
}

// How many images the upload asks for (its `n` field; 0 when it has none).
std::int64_t images_of(api_request const& r) {
    auto parts = multipart::parse(r.req.body, *multipart::boundary_of(r.req.header("content-type")));
    auto const* n = parts ? multipart::field(*parts, "n") : nullptr;
    if (!n || n->data.empty() || n->data.size() > 3 || n->data.find_first_not_of("0123456789") != std::string_view::npos)
        return 0;
    return std::stoll(std::string(n->data));
}

constexpr upload_route transcriptions{"/audio/transcriptions", "file", true};
constexpr upload_route translations{"/audio/translations", "file", true};
constexpr upload_route edits{"/images/edits", "image", false};
constexpr upload_route variations{"/images/variations", "image", false};

// The upload's `prompt` field through the input guardrails; a redaction rewrites the body.
std::optional<api_error> screen_prompt(api_request& r) {
    auto const& g = r.app.cfg.guardrail_settings;
    if (!g) return std::nullopt;
    auto parts = multipart::parse(r.req.body, *multipart::boundary_of(r.req.header("content-type")));
    auto const* p = parts ? multipart::field(*parts, "prompt") : nullptr;
    if (!p) return std::nullopt;
    std::string text(p->data);
    std::vector<std::string*> texts{&text};
    if (auto err = policy::screen_texts(*g, policy::plugin_stage::before_request, texts, "prompt", &r.rec.guardrails))
        return err;
    if (text != p->data) r.req.body = multipart::with_field(r.req.body, *parts, "prompt", text);
    return std::nullopt;
}

// A transcript (JSON {"text"}, or text, srt or vtt as it came) through the output guardrails.
std::optional<api_error> screen_transcript(api_request& r, std::string& raw, std::string_view content_type) {
    auto const& g = r.app.cfg.guardrail_settings;
    if (!g) return std::nullopt;
    if (content_type.starts_with("application/json")) {
        boost::system::error_code ec;
        auto v = parse_bounded(raw, ec);
        auto* o = ec ? nullptr : v.if_object();
        auto* t = o ? o->if_contains("text") : nullptr;
        if (!t || !t->is_string()) return std::nullopt;
        std::string text(t->get_string());
        std::vector<std::string*> texts{&text};
        if (auto err = policy::screen_texts(*g, policy::plugin_stage::after_request, texts, "text", &r.rec.guardrails))
            return err;
        if (text != t->get_string()) {
            *t = text;
            raw = json::serialize(v);
        }
        return std::nullopt;
    }
    std::vector<std::string*> texts{&raw};
    return policy::screen_texts(*g, policy::plugin_stage::after_request, texts, "text", &r.rec.guardrails);
}

asio::awaitable<void> upload(api_request& r, upload_route const& route) {
    std::string model;
    if (auto err = check_upload(r, route, model)) {
        co_await reply_error(r, *err);
        co_return;
    }
    r.rec.model = model;
    if (auto err = screen_prompt(r)) {
        co_await reply_error(r, *err);
        co_return;
    }
    json::object body;
    body["model"] = model;
    if (auto n = images_of(r); n > 0) body["n"] = n;  // what a budget reserves for
    raw_request raw{r.req.header("content-type"), r.req.body};
    answer_check check = [&r](json::object&, std::string& bytes, std::string_view type) {
        return screen_transcript(r, bytes, type);
    };
    answer_check const* after = nullptr;
    if (route.transcript) after = &check;
    co_await json_turn(r, route.path, std::move(body), &raw, after);
}

}  // namespace

asio::awaitable<void> audio_transcriptions(api_request& r) { co_await upload(r, transcriptions); }
asio::awaitable<void> audio_translations(api_request& r) { co_await upload(r, translations); }
asio::awaitable<void> image_edits(api_request& r) { co_await upload(r, edits); }
asio::awaitable<void> image_variations(api_request& r) { co_await upload(r, variations); }

}  // namespace toolgate::gateway::api
