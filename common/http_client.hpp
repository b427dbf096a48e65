#pragma once
// The one HTTP/1.1 client of the gateway: keep-alive pooling per upstream, TLS with certificate and
// host-name verification (SNI), deadlines on connect and on every read, and cancellation through a
// cancel_token. A client belongs to one io_context thread (one per worker) and must only be used
// from that thread; the pool is therefore lock-free.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/cancel.hpp"

namespace boost::asio::ssl {
class context;
}

namespace toolgate::http {

namespace asio = boost::asio;
using header_list = std::vector<std::pair<std::string, std::string>>;

// Where an upstream lives, parsed once from a base URL such as "https://api.openai.com/v1".
struct endpoint {
    bool tls = false;
    std::string host;
    std::string port;
    std::string base_path;  // without trailing slash, e.g. "/v1"
    std::string target;     // the path and query as given ("/" when there is no path), no fragment

    static boost::system::result<endpoint> parse(std::string_view url);
    std::string pool_key() const { return (tls ? "s:" : "p:") + host + ':' + port; }
};

struct request {
    std::string method = "POST";
    std::string target;  // full path, e.g. "/v1/chat/completions"
    header_list headers;  // besides Host, Content-Length (set by the client)
    std::string body;
};

struct response {
    int status = 0;
    header_list headers;  // names in lower case
    std::string body;     // empty for streamed 2xx responses
    std::string_view header(std::string_view lower_name) const;
};

struct timeouts {
    std::chrono::milliseconds connect{10'000};
    std::chrono::milliseconds read{300'000};  // idle time allowed between two reads
};

// Receives the body of a streamed 2xx response as it arrives; return false to stop reading.
class body_reader {
public:
    virtual ~body_reader() = default;
    // The status and headers of a 2xx response, before any of its body.
    virtual void on_head(response const&) {}
    virtual asio::awaitable<bool> on_data(std::string_view data) = 0;
};

enum class client_errc {
    cancelled = 1,
    response_too_large,
    bad_url,
};
boost::system::error_code make_error_code(client_errc e);

// A TLS context that verifies peers against the system trust store.
std::shared_ptr<asio::ssl::context> make_verifying_tls_context();

class client {
public:
    struct limits {
        std::size_t max_response_bytes = 64u << 20;
        std::size_t max_idle_per_host = 256;
        std::chrono::seconds idle_timeout{60};
    };

    client(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> tls);
    client(asio::any_io_executor ex, std::shared_ptr<asio::ssl::context> tls, limits lim);
    ~client();
    client(client const&) = delete;
    client& operator=(client const&) = delete;

    // Sends the request and buffers the whole response.
    asio::awaitable<boost::system::result<response>> send(endpoint const& ep, request const& req,
                                                           timeouts t, cancel_token* cancel);

    // Sends the request; for a 2xx answer hands the body to `reader` piece by piece as it arrives
    // (the returned response then has an empty body). Any other status is buffered as in send().
    asio::awaitable<boost::system::result<response>> stream(endpoint const& ep, request const& req,
                                                             timeouts t, cancel_token* cancel,
                                                             body_reader& reader);


private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// GET `url` with `Accept: application/json` (and `extra` headers), the whole answer buffered.
asio::awaitable<boost::system::result<response>> get_json(client& c, std::string const& url, timeouts t,
                                                          header_list extra = {});

}  // namespace toolgate::http

namespace boost::system {
template <>
struct is_error_code_enum<toolgate::http::client_errc> : std::true_type {};
}  // namespace boost::system
