#pragma once
// The error a client sees, always in OpenAI's shape: {"error":{"message","type","param","code"}}.
// The message is public; details (upstream bodies, exceptions) belong in the log, not here.
#include <string>

namespace toolgate {

struct api_error {
    api_error() = default;
    api_error(int status_, std::string type_, std::string code_, std::string message_)
        : status(status_), type(std::move(type_)), code(std::move(code_)), message(std::move(message_)) {}

    int status = 500;
    std::string type;     // OpenAI's error type, e.g. "invalid_request_error"
    std::string code;     // machine-readable, e.g. "model_not_found"
    std::string message;  // human-readable, safe to show
    std::string param;        // the request field at fault ("messages[2]"), or empty (null)
    std::string retry_after;  // passed on as the Retry-After header (an upstream's 429/503)

    std::string to_json() const;

    static api_error bad_request(std::string message, std::string code = "invalid_request");
    static api_error not_found(std::string message, std::string code = "not_found");
    static api_error model_not_found(std::string const& model);
    static api_error method_not_allowed(std::string message);
    static api_error payload_too_large(std::string message);
    static api_error unauthorized(std::string message);
    static api_error upstream(int status, std::string message, std::string code = "upstream_error");
    static api_error upstream_timeout(std::string message);
    static api_error unavailable(std::string message);
    static api_error internal(std::string message = "internal error");
};

// An error as it is answered (the api_error the client sees) with what only the log may see (an
// upstream's body, a transport error): the one failure type of provider outcomes and decoders.
struct failure : api_error {
    failure() = default;
    failure(api_error shown, std::string detail_ = {}) : api_error(std::move(shown)), detail(std::move(detail_)) {}
    std::string detail;  // for the log only, never sent to the client
};

}  // namespace toolgate
