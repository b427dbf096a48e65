#pragma once
// Google service-account credentials (Vertex AI): the JSON key file, the RS256-signed JWT assertion
// (RFC 7523) exchanged at the token URI for an OAuth access token, and a cache that holds that token
// for every worker thread and refreshes it before it expires. The parts that need no network
// (reading the key file, making the assertion, reading the token answer, when to refresh) are free
// functions, tested on their own.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/api_error.hpp"
#include "common/http_client.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace toolgate::providers::google_auth {

namespace asio = boost::asio;

inline constexpr std::string_view cloud_platform_scope = "https://www.googleapis.com/auth/cloud-platform";
inline constexpr std::string_view default_token_uri = "https://oauth2.googleapis.com/token";

struct service_account {
    std::string client_email;
    std::string private_key_id;
    std::string token_uri;
    std::string project_id;  // may be empty
    std::shared_ptr<EVP_PKEY> key;
};

// A service-account key file's text; throws std::invalid_argument saying what is missing or wrong
// (never quoting the key). The token URI must be https (http only to a loopback address, for tests).
service_account parse_service_account(std::string_view json_text);
// Reads and parses the file; the error names the file.
service_account load_service_account(std::string const& path);

// The signed assertion: header {alg: RS256, typ: JWT, kid}, claims {iss, scope, aud: token_uri, iat,
// exp: iat + 3600}; base64url without padding.
std::string make_assertion(service_account const& sa, std::int64_t now_unix, std::string_view scope = cloud_platform_scope);
// The form body of the token request.
std::string token_request_body(std::string_view assertion);

// The token endpoint's answer: a token and its lifetime, or why there is none (for the log).
struct token_answer {
    std::string access_token;
    std::chrono::seconds lifetime{0};
    std::string error;  // empty on success
};
token_answer parse_token_answer(int status, std::string_view body);

// When a token obtained now with `lifetime` should be replaced (refresh: a new exchange starts,
// the old token still serves meanwhile) and when it must no longer be sent (usable).
struct token_times {
    std::chrono::milliseconds refresh_after;
    std::chrono::milliseconds usable_for;
};
token_times times_for(std::chrono::seconds lifetime);

// The access token of one service account, shared by all worker threads. get() answers from the
// cache while the token is fresh; otherwise one caller exchanges a new assertion and the others
// wait for it (single flight), or keep using the old token while it is still usable.
class token_cache {
public:
    token_cache(service_account sa, std::string provider_name, http::timeouts t);
    ~token_cache();
    token_cache(token_cache const&) = delete;
    token_cache& operator=(token_cache const&) = delete;

    // The token, or the client's error (502 upstream_auth_failed; its detail, the reason, is for the
    // log only). `http` is the calling worker's client.
    asio::awaitable<std::variant<std::string, failure>> get(http::client& http);
    // The upstream refused `token` (401): forget it, so that the next get() exchanges anew.
    void invalidate(std::string_view token);

    std::uint64_t exchanges() const;  // successful ones, for tests and /metrics

private:
    struct waiter;
    asio::awaitable<std::variant<std::string, failure>> exchange(http::client& http);
    void wake_all_locked();

    service_account sa_;
    std::string provider_;
    http::endpoint token_ep_;
    std::string token_target_;
    std::string token_host_;
    http::timeouts timeouts_;

    mutable std::mutex mu_;
    std::string token_;
    std::chrono::steady_clock::time_point refresh_at_{};
    std::chrono::steady_clock::time_point usable_until_{};
    bool fetching_ = false;
    std::uint64_t generation_ = 0;  // completed exchanges, failed or not
    std::optional<failure> last_error_;
    std::uint64_t exchanges_ = 0;
    std::vector<std::shared_ptr<waiter>> waiters_;
};

}  // namespace toolgate::providers::google_auth
