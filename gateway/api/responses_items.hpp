#pragma once
// Pieces of Responses items shared by the translation (responses_wire.cpp) and the stream
// (responses_stream.cpp); no other callers.
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/api/responses_wire.hpp"

namespace toolgate::gateway::responses_wire::detail {

std::string_view str_of(boost::json::object const& o, std::string_view k);
// "resp_abc" -> "abc": what other ids of the same Response end with.
std::string suffix_of(std::string const& id);
boost::json::object function_item(std::string_view call_id, std::string_view name, std::string_view arguments,
                                  std::string_view status);
boost::json::object output_message(std::string const& id, std::string text, std::string_view status);
boost::json::object usage_of(std::int64_t in, std::int64_t out);
// The finish reason as the Response's status and incomplete_details.
void set_status(boost::json::object& r, std::string_view finish);
// A call of a tool that needs approval, as the mcp_approval_request the client answers; its id is
// "mcpr_" + the call id, so that the answer names the call.
std::string approval_id(std::string_view call_id);
// 400s of a request's fields: invalid_request, unsupported_parameter.
api_error bad(std::string msg, std::string_view param = {});
api_error unsupported(std::string msg, std::string_view param);
// `{"type": "mcp", ...}` of a request's tools (`where`: "tools[i]"): the tools it offers into v.
std::optional<api_error> add_mcp_tool(boost::json::object const& to, std::string const& where, mcp_offer const& mcp,
                                      request_view& v);
boost::json::object approval_item(std::string_view call_id, mcp_tool_ref const& ref, std::string_view arguments);

}  // namespace toolgate::gateway::responses_wire::detail
