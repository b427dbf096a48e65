#pragma once
// OAuth 2.1 to an upstream MCP server (MCP authorization, 2025-11-25): on the server's 401 it finds
// the protected resource metadata and the authorization server's metadata (with the 2025-03-26
// fallbacks), checks that the metadata names this server, registers a client when it has none
// (pre-registered id, client ID metadata document, or dynamic registration), and gets tokens: by
// client credentials (secret or private_key_jwt) at once, or by the authorization code flow with
// PKCE S256 and `resource`, whose browser step a person completes (begin_authorization() gives the
// URL, complete_authorization() takes the code the callback received). Tokens are refreshed before
// they expire; a 403 insufficient_scope asks for the wider scope, a bounded number of times.
//
// One object per configured server, shared by all of its sessions. Everything runs on the MCP
// executor, except the functions marked thread-safe.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mcp/oauth.hpp"
#include "mcp/transport.hpp"

typedef struct evp_pkey_st EVP_PKEY;

namespace toolgate::mcp {

namespace json = boost::json;

struct oauth_options {
    // enterprise: the enterprise-managed authorization of SEP-990: an ID token of the company's
    // identity provider is exchanged there (RFC 8693) for an identity assertion grant (ID-JAG),
    // which the server's authorization server takes as a JWT bearer grant (RFC 7523).
    enum class grant { authorization_code, client_credentials, enterprise };
    grant flow = grant::authorization_code;
    std::string client_id;            // pre-registered; empty: a metadata document or dynamic registration
    std::string client_secret;
    std::string client_metadata_url;  // a client ID metadata document (https URL) used as the client id
    std::shared_ptr<EVP_PKEY> private_key;  // private_key_jwt (client credentials)
    std::optional<oauth::client_auth> token_auth;  // fixed; else from the registration or chosen
    std::vector<std::string> scopes;  // asked for besides what the server's challenge names
    std::string redirect_uri;         // the gateway's /oauth/callback (set by the gateway)
    std::string idp_token_endpoint;   // enterprise: where the ID token is exchanged
    std::string idp_client_id;        // enterprise: toolgate's client id at the identity provider
    std::string id_token;             // enterprise: the ID token, or
    std::string id_token_file;        //   a file holding it, read at each exchange (rotated by the platform)
    std::string client_name = "toolgate";
    unsigned max_step_ups = 2;        // wider scopes asked for after the first authorization
    std::chrono::milliseconds timeout{10'000};  // each request to the authorization server
    bool allow_insecure_http = false;  // plain http to a non-loopback authorization server
};

// Tokens and client registration, as saved and restored across restarts.
struct oauth_saved {
    std::string client_id, client_secret, client_auth;
    std::string access_token, refresh_token, scope;
    std::string issuer;           // the authorization server they are from
    std::int64_t expires_at = 0;  // unix seconds; 0: unknown
};

class upstream_auth final : public http_auth, public std::enable_shared_from_this<upstream_auth> {
public:
    enum class state { unknown, authorized, needs_authorization, failed };

    upstream_auth(asio::any_io_executor ex, std::string server, std::string server_url, oauth_options opts, log_sink log);
    ~upstream_auth() override;

    asio::awaitable<std::string> header() override;
    asio::awaitable<bool> challenged(int status, std::string www_authenticate, std::string sent) override;
    std::string why() const override;

    // The URL a person opens to authorize (authorization_code), or an error message.
    struct begun {
        std::string url;
        std::string error;
    };
    asio::awaitable<begun> begin_authorization();
    // Whether `state` is this server's authorization in progress.
    bool expects(std::string const& state) const;
    // The callback's code for `state` (and its `iss`, RFC 9207); "" on success, else why not.
    asio::awaitable<std::string> complete_authorization(std::string state, std::string code, std::string iss = {});

    // Runs (MCP thread) whenever new tokens arrive.
    void on_authorized(std::function<void()> cb) { on_authorized_.push_back(std::move(cb)); }
    // Runs (MCP thread) whenever the tokens or the registration change: what to keep.
    void on_saved(std::function<void(oauth_saved const&)> cb) { on_saved_ = std::move(cb); }
    void restore(oauth_saved const& s);

    // Thread-safe.
    state current() const { return state_.load(); }
    // A person must authorize: no usable token (blocked), or a call wants a wider scope.
    bool needs_authorization() const { return blocked() || wants_scope_.load(); }
    bool blocked() const { return state_.load() == state::needs_authorization; }
    json::object status() const;

private:
    // One operation with the authorization server at a time (a burst of 401s makes one discovery).
    struct holder;
    asio::awaitable<holder> acquire();
    void release();
    asio::awaitable<std::string> discover(oauth::challenge const& ch);
    asio::awaitable<std::string> ensure_client();
    asio::awaitable<std::string> request_token(std::vector<std::pair<std::string, std::string>> fields, std::string const& asked_scope);
    asio::awaitable<std::string> renew();  // refresh token or client credentials; "" on success
    asio::awaitable<oauth::token_answer> exchange_id_token();
    std::string bearer() const;
    bool expiring() const;
    void set_state(state s, std::string why);
    void saved();

    struct impl;
    std::unique_ptr<impl> impl_;
    std::atomic<state> state_{state::unknown};
    std::atomic<bool> wants_scope_{false};
    mutable std::mutex mu_;  // why_ and status fields read by other threads
    std::string why_;
    std::vector<std::function<void()>> on_authorized_;
    std::function<void(oauth_saved const&)> on_saved_;
};

}  // namespace toolgate::mcp
