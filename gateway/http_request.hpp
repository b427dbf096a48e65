#pragma once
// The front's reading of one HTTP request, shared by gateway/server.cpp and the HTTP fuzz target:
// Beast's parsed message made into the handler's inbound_request, and the framing check made
// before any handler runs.
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "gateway/server.hpp"

namespace toolgate::gateway {

using beast_request = boost::beast::http::request<boost::beast::http::string_body>;

// Method, target, path, lower-case header names; the body is moved out of `msg`.
inbound_request to_inbound(beast_request& msg);

// False when the request's framing is in doubt: a Transfer-Encoding other than one lone "chunked"
// (Beast frames "chunked, identity" or "gzip" as having no body, so their bytes would be read as
// the next request), one beside a Content-Length, or any in HTTP/1.0. Such a request is refused
// and its connection closed (RFC 9112 6.1, 6.3).
bool framing_is_plain(beast_request const& msg);

}  // namespace toolgate::gateway
