#include "common/api_error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "common/text.hpp"

namespace toolgate {

std::string api_error::to_json() const {
    boost::json::object err;
    // A message may quote what the client sent (a path, a model name): never invalid UTF-8 in JSON.
    err["message"] = utf8_valid(message);
    err["type"] = type;
    if (param.empty()) err["param"] = nullptr;
    else err["param"] = utf8_valid(param);
    err["code"] = code;
    boost::json::object root;
    root["error"] = std::move(err);
    return boost::json::serialize(root);
}

api_error api_error::bad_request(std::string message, std::string code) {
    return {400, "invalid_request_error", std::move(code), std::move(message)};
}
api_error api_error::not_found(std::string message, std::string code) {
    return {404, "invalid_request_error", std::move(code), std::move(message)};
}
api_error api_error::model_not_found(std::string const& model) {
    return {404, "invalid_request_error", "model_not_found",
            "The model '" + model + "' does not exist or no configured provider serves it"};
}
api_error api_error::method_not_allowed(std::string message) {
    return {405, "invalid_request_error", "method_not_allowed", std::move(message)};
}
api_error api_error::payload_too_large(std::string message) {
    return {413, "invalid_request_error", "payload_too_large", std::move(message)};
}
api_error api_error::unauthorized(std::string message) {
    return {401, "authentication_error", "invalid_api_key", std::move(message)};
}
api_error api_error::upstream(int status, std::string message, std::string code) {
    return {status, "upstream_error", std::move(code), std::move(message)};
}
api_error api_error::upstream_timeout(std::string message) {
    return {504, "upstream_error", "upstream_timeout", std::move(message)};
}
api_error api_error::unavailable(std::string message) {
    return {503, "server_error", "unavailable", std::move(message)};
}
api_error api_error::internal(std::string message) {
    return {500, "server_error", "internal_error", std::move(message)};
}

}  // namespace toolgate
