// Google Vertex AI's model APIs: one provider, two wire formats. Gemini (and Google's embedding
// models) speak the Gemini API at the google publisher's model path; Claude models speak
// Anthropic's Messages API through rawPredict / streamRawPredict at the anthropic publisher's.
// Authentication is the provider's OAuth access token (google_auth), not part of the format.
#include "providers/wire.hpp"

namespace toolgate::providers {

namespace {

class vertex_wire final : public wire_format {
public:
    explicit vertex_wire(wire_settings s)
        : wire_format(s.name), gemini_(make_google_wire(s)), claude_(make_anthropic_wire(std::move(s))) {}

    std::optional<api_error> encode_chat(json::object const& body, bool stream, native_request& out) const override {
        return pick(wire::str(body, "model")).encode_chat(body, stream, out);
    }
    decoded decode_chat(std::string_view body, std::string const& model) const override {
        return pick(model).decode_chat(body, model);
    }
    std::unique_ptr<stream_decoder> stream(std::string const& model, bool include_usage) const override {
        return pick(model).stream(model, include_usage);
    }
    // Vertex's own errors are Google's {"error": {"code", "message", "status"}} for both publishers.
    api_error decode_error(int status, std::string_view body, std::string_view retry_after) const override {
        return gemini_->decode_error(status, body, retry_after);
    }
    std::string_view auth_header() const override { return "authorization"; }

    bool has_embeddings() const override { return true; }
    std::optional<api_error> encode_embeddings(json::object const& body, native_request& out) const override {
        return gemini_->encode_embeddings(body, out);
    }
    decoded decode_embeddings(std::string_view body, std::string const& model) const override {
        return gemini_->decode_embeddings(body, model);
    }

private:
    wire_format const& pick(std::string_view model) const { return model.starts_with("claude") ? *claude_ : *gemini_; }

    std::unique_ptr<wire_format> gemini_;
    std::unique_ptr<wire_format> claude_;
};

}  // namespace

std::unique_ptr<wire_format> make_vertex_wire(wire_settings s) { return std::make_unique<vertex_wire>(std::move(s)); }

}  // namespace toolgate::providers
