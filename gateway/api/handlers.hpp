#pragma once
// The route handlers, one family per file under gateway/api/; app.cpp's route table points here.
#include <boost/asio/awaitable.hpp>

#include <functional>
#include <optional>

#include "gateway/api/request.hpp"
#include "gateway/policy/cache.hpp"

namespace toolgate::gateway::api {

asio::awaitable<void> chat_completions(api_request& r);  // chat.cpp
asio::awaitable<void> embeddings(api_request& r);        // embeddings.cpp
asio::awaitable<void> messages(api_request& r);          // messages.cpp: the Anthropic Messages API
asio::awaitable<void> count_message_tokens(api_request& r);
asio::awaitable<void> image_generations(api_request& r);  // passthrough.cpp: the rest of the OpenAI surface
asio::awaitable<void> audio_speech(api_request& r);
asio::awaitable<void> audio_transcriptions(api_request& r);  // uploads.cpp: multipart uploads
asio::awaitable<void> audio_translations(api_request& r);
asio::awaitable<void> image_edits(api_request& r);
asio::awaitable<void> image_variations(api_request& r);
asio::awaitable<void> completions(api_request& r);
asio::awaitable<void> moderations(api_request& r);
asio::awaitable<void> rerank(api_request& r);
asio::awaitable<void> create_response(api_request& r);  // responses.cpp: the OpenAI Responses API
asio::awaitable<void> get_response(api_request& r);
asio::awaitable<void> delete_response(api_request& r);
asio::awaitable<void> response_input_items(api_request& r);
asio::awaitable<void> list_models(api_request& r);       // models.cpp
asio::awaitable<void> get_model(api_request& r);
asio::awaitable<void> mcp_servers(api_request& r);       // mcp_admin.cpp
asio::awaitable<void> mcp_authorize(api_request& r);     // mcp_admin.cpp: OAuth to an upstream server
asio::awaitable<void> oauth_callback(api_request& r);
asio::awaitable<void> protected_resource(api_request& r);  // /mcp's RFC 9728 metadata
asio::awaitable<void> mcp_tools(api_request& r);
asio::awaitable<void> mcp_call(api_request& r);
asio::awaitable<void> admin_list_keys(api_request& r);   // admin.cpp
asio::awaitable<void> admin_create_key(api_request& r);
asio::awaitable<void> admin_get_key(api_request& r);
asio::awaitable<void> admin_update_key(api_request& r);
asio::awaitable<void> admin_delete_key(api_request& r);
asio::awaitable<void> admin_rotate_key(api_request& r);
asio::awaitable<void> admin_disable_key(api_request& r);
asio::awaitable<void> admin_enable_key(api_request& r);
asio::awaitable<void> admin_spend(api_request& r);
asio::awaitable<void> admin_logs(api_request& r);
asio::awaitable<void> admin_audit(api_request& r);
asio::awaitable<void> admin_clear_cache(api_request& r);  // DELETE /admin/cache
asio::awaitable<void> create_session(api_request& r);  // sessions.cpp
asio::awaitable<void> list_sessions(api_request& r);
asio::awaitable<void> get_session(api_request& r);
asio::awaitable<void> delete_session(api_request& r);
asio::awaitable<void> call_endpoint(api_request& r);   // endpoints.cpp
asio::awaitable<void> list_endpoints(api_request& r);  // endpoints_admin.cpp
asio::awaitable<void> admin_create_endpoint(api_request& r);
asio::awaitable<void> admin_get_endpoint(api_request& r);
asio::awaitable<void> admin_replace_endpoint(api_request& r);
asio::awaitable<void> admin_update_endpoint(api_request& r);
asio::awaitable<void> admin_delete_endpoint(api_request& r);
asio::awaitable<void> health(api_request& r);            // health.cpp
asio::awaitable<void> metrics(api_request& r);           // metrics.cpp

// Not a route: one text's embedding through the embeddings pipeline on behalf of the turn
// `parent` (its key, limits and budget), for the semantic cache (embeddings.cpp).
asio::awaitable<policy::embedding_answer> embed_text(app_state& app, turn_context& parent, std::string const& model,
                                                     std::string const& text, cancel_token& cancel);

// A route whose request or answer is not JSON: the body as the client sent it and its type
// (application/json for a JSON request with a binary answer; the body is then `body` itself).
struct raw_request {
    std::string_view content_type;
    std::string_view body;
};
// One turn of the embeddings pipeline on an OpenAI route (`path` empty: /embeddings), the answer
// or the error sent (embeddings.cpp; the passthrough and upload routes use it too). `body` holds at
// least the model; with `raw` the upstream's answer goes back as it came, bytes and type.
// `check`, when given, reads a successful answer before it goes out (the JSON answer, or a raw
// answer's bytes and type) and may rewrite it, or refuse it with an error.
using answer_check = std::function<std::optional<api_error>(boost::json::object& response, std::string& raw,
                                                            std::string_view content_type)>;
asio::awaitable<void> json_turn(api_request& r, std::string_view path, boost::json::object body,
                                raw_request const* raw = nullptr, answer_check const* check = nullptr);

// Who owns the sessions this request makes and may use: its key's id, or "anonymous" (sessions.cpp).
std::string session_owner(api_request const& r);
api_error sessions_disabled();

// The channel a /v1/messages request answers through: Messages shapes (messages.cpp).
std::unique_ptr<response_channel> messages_channel_for(response_channel& inner, std::string const& request_id);

// Built once at start-up (models.cpp).
void build_models_cache(app_state& app);

}  // namespace toolgate::gateway::api
