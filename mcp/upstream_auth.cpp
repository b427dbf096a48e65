#include "mcp/upstream_auth.hpp"

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <ctime>
#include <deque>
#include <fstream>

#include "common/asio_util.hpp"
#include "common/http_client.hpp"
#include "common/ids.hpp"
#include "common/jwt.hpp"
#include "common/text.hpp"

namespace toolgate::mcp {

namespace {

using fields = std::vector<std::pair<std::string, std::string>>;
using clock_type = std::chrono::system_clock;

constexpr auto pending_lifetime = std::chrono::minutes(10);
constexpr auto renew_before = std::chrono::seconds(60);  // or half the lifetime, when shorter
constexpr auto renew_pause = std::chrono::seconds(10);   // after a failed renewal, before the next try

std::int64_t unix_now() { return std::chrono::duration_cast<std::chrono::seconds>(clock_type::now().time_since_epoch()).count(); }

std::string join(std::vector<std::string> const& v) {
    std::string s;
    for (auto const& w : v) s = oauth::merge_scopes(s, w);
    return s;
}

// (Built in plain functions: no braced JSON inside coroutines, see CONTRIBUTING.md.)
std::string registration_body(oauth_options const& o, std::string_view method) {
    json::object b;
    b["client_name"] = o.client_name;
    json::array uris;
    uris.emplace_back(o.redirect_uri);
    b["redirect_uris"] = std::move(uris);
    json::array grants;
    grants.emplace_back("authorization_code");
    grants.emplace_back("refresh_token");
    b["grant_types"] = std::move(grants);
    json::array types;
    types.emplace_back("code");
    b["response_types"] = std::move(types);
    if (!method.empty()) b["token_endpoint_auth_method"] = method;
    return json::serialize(b);
}

std::string assertion(EVP_PKEY* key, std::string const& client_id, std::string const& audience) {
    auto alg = jwt::algorithm_for(key);
    json::object header;
    header["alg"] = alg;
    header["typ"] = "JWT";
    auto now = unix_now();
    json::object claims;
    claims["iss"] = client_id;
    claims["sub"] = client_id;
    claims["aud"] = audience;
    claims["iat"] = now;
    claims["exp"] = now + 300;
    claims["jti"] = secure_hex(16);
    return jwt::sign(key, alg, json::serialize(header), json::serialize(claims));
}

// An endpoint that would carry codes, secrets or tokens in clear to another machine.
std::string insecure_endpoint(oauth::server_metadata const& md) {
    for (auto const* u : {&md.authorization_endpoint, &md.token_endpoint, &md.registration_endpoint})
        if (!u->empty() && u->rfind("https://", 0) != 0 && !oauth::is_loopback_url(*u)) return *u;
    return {};
}

std::string basic_credentials(std::string const& id, std::string const& secret) {
    // RFC 6749 §2.3.1: both form-encoded before base64.
    auto enc = [](std::string const& v) { return oauth::form_encode({{"x", v}}).substr(2); };
    return "Basic " + base64(enc(id) + ":" + enc(secret));
}

http::timeouts limits(oauth_options const& o) {
    http::timeouts t;
    t.connect = o.timeout;
    t.read = o.timeout;
    return t;
}

// A URL toolgate may send discovery requests, codes or secrets to.
bool secure_enough(std::string const& url, oauth_options const& o) {
    return url.rfind("https://", 0) == 0 || oauth::is_loopback_url(url) || o.allow_insecure_http;
}

std::string field(json::object const& o, std::string_view k) {
    auto const* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

// Log and error lines with a conditional part: plain functions, because GCC 12 destroys a
// temporary of a conditional expression twice inside a coroutine (CONTRIBUTING.md).
std::string refused_403(std::string const& error) {
    return "the MCP server refused the token (HTTP 403" + (error.empty() ? std::string() : ", " + error) + ")";
}

std::string found_server(std::string const& issuer, bool with_prm) {
    return "authorization server " + issuer + (with_prm ? "" : " (no protected resource metadata)");
}

std::string authorized_line(std::string const& scope) {
    return "authorized" + (scope.empty() ? std::string() : " (scope '" + scope + "')");
}

std::string_view flow_name(oauth_options::grant g) {
    switch (g) {
        case oauth_options::grant::authorization_code: return "authorization_code";
        case oauth_options::grant::client_credentials: return "client_credentials";
        case oauth_options::grant::enterprise: return "enterprise";
    }
    return "authorization_code";
}

// The first line of a token file (a platform rotates it; read at each use).
std::string read_token_file(std::string const& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line;
}

std::string_view to_string(upstream_auth::state s) {
    switch (s) {
        case upstream_auth::state::unknown: return "not_yet_needed";
        case upstream_auth::state::authorized: return "authorized";
        case upstream_auth::state::needs_authorization: return "needs_authorization";
        case upstream_auth::state::failed: return "failed";
    }
    return "unknown";
}

}  // namespace

struct upstream_auth::impl {
    impl(asio::any_io_executor e) : ex(e), client(e, http::make_verifying_tls_context()) {}
    asio::any_io_executor ex;
    http::client client;
    std::string server, server_url;
    oauth_options opts;
    log_sink log;

    bool busy = false;
    std::deque<asio::steady_timer*> waiters;

    // Discovery.
    bool discovered = false;
    bool fallback = false;        // the 2025-03-26 endpoints, no metadata document
    std::string restored_issuer;  // whose tokens were restored (dropped when discovery finds another)
    oauth::server_metadata md;
    std::string issuer;    // the authorization server's identifier (JWT audience)
    std::string resource;  // RFC 8707
    std::string scope;     // what to ask for next
    std::vector<std::string> scopes_supported;

    // The client.
    std::string client_id, client_secret;
    std::optional<oauth::client_auth> method;

    // Tokens.
    std::string access_token, refresh_token, token_scope;
    std::optional<clock_type::time_point> expires;
    std::optional<clock_type::time_point> renew_at;
    clock_type::time_point renew_failed{};
    std::string last_error_code;  // of the last token request
    unsigned step_ups = 0;

    struct pending {
        std::string state, verifier, scope;
        clock_type::time_point created;
    };
    std::optional<pending> pending_auth;
};

// The async mutex, held: keeps the object alive (a frame destroyed late still releases safely).
struct upstream_auth::holder {
    std::shared_ptr<upstream_auth> self;
    holder(std::shared_ptr<upstream_auth> s) : self(std::move(s)) {}
    holder(holder&& o) noexcept : self(std::move(o.self)) {}
    holder(holder const&) = delete;
    ~holder() {
        if (self) self->release();
    }
};

namespace {

// A waiter's timer stays listed only while its frame lives (cancelled waits included).
struct listed {
    std::deque<asio::steady_timer*>& list;
    asio::steady_timer* timer;
    listed(std::deque<asio::steady_timer*>& l, asio::steady_timer* t) : list(l), timer(t) { list.push_back(t); }
    ~listed() { std::erase(list, timer); }
};

}  // namespace

upstream_auth::upstream_auth(asio::any_io_executor ex, std::string server, std::string server_url, oauth_options opts,
                             log_sink log)
    : impl_(std::make_unique<impl>(ex)) {
    impl_->server = std::move(server);
    impl_->server_url = std::move(server_url);
    impl_->opts = std::move(opts);
    impl_->log = std::move(log);
    impl_->client_id = impl_->opts.client_id;
    impl_->client_secret = impl_->opts.client_secret;
    impl_->method = impl_->opts.token_auth;
}

upstream_auth::~upstream_auth() = default;

asio::awaitable<upstream_auth::holder> upstream_auth::acquire() {
    auto self = shared_from_this();
    while (impl_->busy) {
        asio::steady_timer t(impl_->ex, asio::steady_timer::time_point::max());
        listed entry(impl_->waiters, &t);
        co_await t.async_wait(nothrow_awaitable);
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none) throw boost::system::system_error(asio::error::operation_aborted);
    }
    impl_->busy = true;
    co_return holder(std::move(self));
}

void upstream_auth::release() {
    impl_->busy = false;
    if (!impl_->waiters.empty()) impl_->waiters.front()->cancel();
}

void upstream_auth::set_state(state s, std::string why) {
    {
        std::lock_guard lock(mu_);
        why_ = std::move(why);
    }
    state_ = s;
}

std::string upstream_auth::why() const {
    std::lock_guard lock(mu_);
    return why_.empty() ? "the MCP server refused the authorization" : why_;
}

std::string upstream_auth::bearer() const { return impl_->access_token.empty() ? std::string() : "Bearer " + impl_->access_token; }

bool upstream_auth::expiring() const { return impl_->renew_at && clock_type::now() >= *impl_->renew_at; }

asio::awaitable<std::string> upstream_auth::header() {
    if (!impl_->access_token.empty() && expiring() && clock_type::now() - impl_->renew_failed > renew_pause &&
        (!impl_->refresh_token.empty() || impl_->opts.flow != oauth_options::grant::authorization_code)) {
        auto h = co_await acquire();
        if (expiring() && clock_type::now() - impl_->renew_failed > renew_pause) {
            auto err = co_await renew();
            if (!err.empty()) {
                impl_->renew_failed = clock_type::now();
                impl_->log(log_level::warn, "could not renew the access token: " + err);
            }
        }
    }
    if (impl_->expires && clock_type::now() >= *impl_->expires) impl_->access_token.clear();
    co_return bearer();
}

asio::awaitable<bool> upstream_auth::challenged(int status, std::string www_authenticate, std::string sent) {
    auto h = co_await acquire();
    auto& d = *impl_;
    // Another request renewed the token meanwhile: try with that one.
    if (sent != bearer() && !bearer().empty()) co_return true;
    auto ch = oauth::parse_challenge(www_authenticate);
    if (!d.discovered) {
        auto err = co_await discover(ch);
        if (!err.empty()) {
            impl_->log(log_level::error, err);
            set_state(state::failed, err);
            co_return false;
        }
    }
    // Flows that need no person: a new token is asked for at once.
    auto cc = d.opts.flow != oauth_options::grant::authorization_code;
    if (status == 403) {
        if (ch.error != "insufficient_scope" && ch.scope.empty()) {
            set_state(current(), refused_403(ch.error));
            co_return false;
        }
        auto had = d.token_scope;
        if (!ch.scope.empty() && oauth::covers(had, ch.scope)) {
            auto msg = "the MCP server refuses the token although it has the scope asked for ('" + ch.scope +
                       "'); not asking the authorization server again";
            impl_->log(log_level::error, msg);
            set_state(current(), msg);
            co_return false;
        }
        auto wider = oauth::merge_scopes(oauth::merge_scopes(d.scope, had), ch.scope);
        if (!oauth::covers(d.scope, wider)) {
            // (A scope asked for already, by a concurrent 403, is not another step-up.)
            if (d.step_ups >= d.opts.max_step_ups) {
                auto msg = "the MCP server asks for scope '" + ch.scope + "' again after " + std::to_string(d.step_ups) +
                           " step-ups; giving up";
                impl_->log(log_level::error, msg);
                set_state(current(), msg);
                co_return false;
            }
            ++d.step_ups;
            d.scope = wider;
            impl_->log(log_level::info, "the MCP server asks for scope '" + d.scope + "' (step-up)");
        }
        if (cc) {
            auto err = co_await renew();
            if (err.empty()) co_return true;
            set_state(state::failed, "client credentials for scope '" + d.scope + "' refused: " + err);
            co_return false;
        }
        // The current token still serves what it may: only the calls that need more wait.
        wants_scope_ = true;
        set_state(current(), "MCP server '" + d.server + "' asks for more scope ('" + d.scope +
                                 "'): authorize it again at /admin/mcp/servers/" + d.server + "/authorize");
        co_return false;
    }
    // 401: no token, or one the server no longer takes.
    if (!ch.scope.empty() && !oauth::covers(d.scope, ch.scope)) d.scope = oauth::merge_scopes(d.scope, ch.scope);
    if (!sent.empty()) d.access_token.clear();
    if (!d.refresh_token.empty()) {
        auto err = co_await renew();
        if (err.empty()) co_return true;
        impl_->log(log_level::warn, "refreshing the token failed: " + err);
        if (d.last_error_code != "invalid_grant") {
            // Not the grant's fault (the server unreachable, a 5xx): keep it for the next try.
            set_state(state::failed, "the authorization server could not refresh the token: " + err);
            co_return false;
        }
        d.refresh_token.clear();
        saved();
    }
    if (cc) {
        auto err = co_await renew();
        if (err.empty()) co_return true;
        set_state(state::failed, "the authorization server refused the client credentials: " + err);
        impl_->log(log_level::error, "the authorization server refused the client credentials: " + err);
        co_return false;
    }
    if (current() != state::needs_authorization)
        impl_->log(log_level::warn, "needs authorization: open /admin/mcp/servers/" + d.server + "/authorize");
    set_state(state::needs_authorization,
              "MCP server '" + d.server + "' needs authorization: open /admin/mcp/servers/" + d.server + "/authorize");
    co_return false;
}

// Finds the authorization server; "" on success, else why not.
asio::awaitable<std::string> upstream_auth::discover(oauth::challenge const& ch) {
    auto& d = *impl_;
    auto get = [&](std::string url) -> asio::awaitable<boost::system::result<http::response>> {
        http::header_list version;
        version.emplace_back("MCP-Protocol-Version", "2025-11-25");
        co_return co_await http::get_json(d.client, url, limits(d.opts), std::move(version));
    };
    // The first candidate that answers 200 with a document `accept` takes; an error when none answered.
    auto first = [&](std::vector<std::string> urls, std::function<bool(std::string const&)> accept,
                     std::string what) -> asio::awaitable<std::string> {
        std::string unreadable;
        bool answered = false;
        for (auto const& url : urls) {
            if (!secure_enough(url, d.opts)) continue;
            auto r = co_await get(url);
            if (!r) {
                unreadable = what + " at " + url + " could not be read: " + r.error().message();
                continue;
            }
            answered = true;
            if (r->status == 200 && accept(r->body)) co_return std::string();
        }
        if (answered) co_return std::string();
        co_return unreadable;
    };
    std::optional<oauth::resource_metadata> prm;
    auto err = co_await first(
        oauth::resource_metadata_urls(d.server_url, ch.resource_metadata),
        [&](std::string const& body) { return (prm = oauth::parse_resource_metadata(body)).has_value(); },
        "protected resource metadata");
    if (!err.empty()) co_return err;
    auto server = oauth::split_url(d.server_url);
    if (!server) co_return "the server URL is not an http(s) URL";
    std::string as_url;
    if (prm) {
        if (!oauth::resource_matches(d.server_url, prm->resource))
            co_return "the server's protected resource metadata is for another resource ('" + prm->resource +
                "', not " + d.server_url + "): refusing to authorize";
        if (prm->authorization_servers.empty()) co_return "the server's protected resource metadata names no authorization server";
        as_url = prm->authorization_servers.front();
        d.resource = prm->resource;
        d.scopes_supported = prm->scopes_supported;
    } else {
        // 2025-03-26: the MCP server's origin is the authorization server.
        as_url = server->origin;
        d.resource = d.server_url;
    }
    auto as = oauth::split_url(as_url);
    if (!as) co_return "the authorization server '" + as_url + "' is not an http(s) URL";
    if (!secure_enough(as_url, d.opts))
        co_return "the authorization server " + as_url + " is not https (allow_insecure_http: true permits it)";
    std::optional<oauth::server_metadata> md;
    err = co_await first(
        oauth::server_metadata_urls(as_url),
        [&](std::string const& body) { return (md = oauth::parse_server_metadata(body)).has_value(); },
        "authorization server metadata");
    if (!err.empty()) co_return err;
    d.fallback = !md;
    if (!md) md = oauth::fallback_metadata(as->origin);
    if (auto bad = insecure_endpoint(*md); !bad.empty() && !d.opts.allow_insecure_http)
        co_return "the authorization server's endpoint " + bad + " is not https (allow_insecure_http: true permits it)";
    d.md = std::move(*md);
    d.issuer = d.md.issuer.empty() ? as_url : d.md.issuer;
    if (!d.restored_issuer.empty() && d.restored_issuer != d.issuer) {
        // Tokens and a registration of another authorization server are never sent to this one.
        impl_->log(log_level::warn, "the authorization server changed: the saved tokens are dropped");
        d.access_token.clear();
        d.refresh_token.clear();
        d.expires.reset();
        d.renew_at.reset();
        if (d.client_id != d.opts.client_id) {
            d.client_id = d.opts.client_id;
            d.client_secret = d.opts.client_secret;
            d.method = d.opts.token_auth;
        }
        d.restored_issuer.clear();
        set_state(state::unknown, {});
    }
    d.scope = oauth::merge_scopes(join(d.opts.scopes), ch.scope);
    if (d.scope.empty()) d.scope = join(d.scopes_supported);
    d.discovered = true;
    impl_->log(log_level::info, found_server(d.issuer, prm.has_value()));
    co_return std::string();
}

asio::awaitable<std::string> upstream_auth::ensure_client() {
    auto& d = *impl_;
    if (!d.client_id.empty()) co_return std::string();
    if (!d.opts.client_metadata_url.empty() && d.md.client_id_metadata_documents) {
        d.client_id = d.opts.client_metadata_url;
        d.method = oauth::client_auth::none;
        co_return std::string();
    }
    if (d.md.registration_endpoint.empty())
        co_return "the authorization server offers no dynamic client registration: set auth.client_id (or "
                  "auth.client_metadata_url when it accepts client ID metadata documents)";
    auto offers = [&](std::string_view m) {
        return std::find(d.md.token_auth_methods.begin(), d.md.token_auth_methods.end(), m) != d.md.token_auth_methods.end();
    };
    std::string_view want = offers("client_secret_basic") ? "client_secret_basic"
                            : offers("client_secret_post") ? "client_secret_post"
                            : offers("none")               ? "none"
                                                           : "";
    auto ep = http::endpoint::parse(d.md.registration_endpoint);
    if (!ep) co_return "the registration endpoint is not a URL";
    http::request req;
    req.target = ep->target;
    req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("Accept", "application/json");
    req.body = registration_body(d.opts, want);
    auto const t = limits(d.opts);
    auto r = co_await d.client.send(*ep, req, t, nullptr);
    if (!r) co_return "dynamic client registration failed: " + r.error().message();
    if (r->status / 100 != 2) co_return "dynamic client registration was refused (HTTP " + std::to_string(r->status) + ")";
    boost::system::error_code ec;
    auto v = json::parse(r->body, ec);
    if (ec || !v.is_object() || field(v.get_object(), "client_id").empty())
        co_return "dynamic client registration answered without a client_id";
    auto const& o = v.get_object();
    d.client_id = field(o, "client_id");
    d.client_secret = field(o, "client_secret");
    d.method = oauth::parse_client_auth(field(o, "token_endpoint_auth_method"));
    impl_->log(log_level::info, "registered as client " + d.client_id);
    saved();
    co_return std::string();
}

asio::awaitable<std::string> upstream_auth::request_token(fields f, std::string const& asked_scope) {
    auto& d = *impl_;
    auto ep = http::endpoint::parse(d.md.token_endpoint);
    if (!ep) co_return "the token endpoint is not a URL";
    http::request req;
    req.target = ep->target;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.headers.emplace_back("Accept", "application/json");
    auto method = d.method ? *d.method : oauth::choose_client_auth(d.md.token_auth_methods, !d.client_secret.empty(), d.opts.private_key != nullptr);
    switch (method) {
        case oauth::client_auth::none:
            f.emplace_back("client_id", d.client_id);
            break;
        case oauth::client_auth::secret_basic:
            req.headers.emplace_back("Authorization", basic_credentials(d.client_id, d.client_secret));
            break;
        case oauth::client_auth::secret_post:
            f.emplace_back("client_id", d.client_id);
            f.emplace_back("client_secret", d.client_secret);
            break;
        case oauth::client_auth::private_key_jwt:
            if (!d.opts.private_key) co_return "private_key_jwt needs auth.private_key";
            f.emplace_back("client_id", d.client_id);
            f.emplace_back("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            f.emplace_back("client_assertion", assertion(d.opts.private_key.get(), d.client_id, d.issuer));
            break;
    }
    if (!d.resource.empty()) f.emplace_back("resource", d.resource);
    req.body = oauth::form_encode(f);
    auto const t = limits(d.opts);
    auto r = co_await d.client.send(*ep, req, t, nullptr);
    if (!r) co_return "the token endpoint could not be reached: " + r.error().message();
    auto a = oauth::parse_token_answer(r->status, r->body);
    d.last_error_code = a.error_code;
    if (!a.error.empty()) co_return a.error;
    d.access_token = std::move(a.access_token);
    if (!a.refresh_token.empty()) d.refresh_token = std::move(a.refresh_token);
    d.token_scope = a.scope.empty() ? asked_scope : a.scope;
    d.expires.reset();
    d.renew_at.reset();
    if (a.lifetime) {
        d.expires = clock_type::now() + *a.lifetime;
        d.renew_at = *d.expires - std::min<clock_type::duration>(renew_before, *a.lifetime / 2);
    }
    d.renew_failed = {};
    wants_scope_ = false;
    set_state(state::authorized, {});
    saved();
    for (auto const& cb : on_authorized_) cb();
    co_return std::string();
}

asio::awaitable<std::string> upstream_auth::renew() {
    auto& d = *impl_;
    if (!d.discovered) {
        // (Tokens restored after a restart: the authorization server is found again first.)
        oauth::challenge none;
        auto err = co_await discover(none);
        if (!err.empty()) co_return err;
    }
    fields f;
    if (!d.refresh_token.empty()) {
        f.emplace_back("grant_type", "refresh_token");
        f.emplace_back("refresh_token", d.refresh_token);
        if (!d.token_scope.empty()) f.emplace_back("scope", d.token_scope);
        auto err = co_await request_token(std::move(f), d.token_scope);
        if (err.empty() || d.opts.flow == oauth_options::grant::authorization_code) co_return err;
        d.refresh_token.clear();
        f.clear();
    }
    if (d.opts.flow == oauth_options::grant::authorization_code) co_return "no refresh token";
    if (!d.discovered) co_return "the authorization server is not known yet";
    if (d.client_id.empty()) co_return "this flow needs auth.client_id";
    if (d.opts.flow == oauth_options::grant::enterprise) {
        auto jag = co_await exchange_id_token();
        if (!jag.error.empty()) co_return jag.error;
        f.emplace_back("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer");
        f.emplace_back("assertion", jag.access_token);
        if (!d.scope.empty()) f.emplace_back("scope", d.scope);
        co_return co_await request_token(std::move(f), d.scope);
    }
    f.emplace_back("grant_type", "client_credentials");
    if (!d.scope.empty()) f.emplace_back("scope", d.scope);
    co_return co_await request_token(std::move(f), d.scope);
}

// SEP-990: the ID token for an identity assertion grant at the identity provider (RFC 8693), for
// this server's authorization server (audience) and this server (resource).
asio::awaitable<oauth::token_answer> upstream_auth::exchange_id_token() {
    auto& d = *impl_;
    oauth::token_answer out;
    auto id_token = d.opts.id_token;
    if (!d.opts.id_token_file.empty()) id_token = read_token_file(d.opts.id_token_file);
    if (id_token.empty()) {
        out.error = "no ID token to exchange (auth.id_token or a readable auth.id_token_file)";
        co_return out;
    }
    auto ep = http::endpoint::parse(d.opts.idp_token_endpoint);
    if (!ep) {
        out.error = "auth.idp_token_endpoint is not a URL";
        co_return out;
    }
    fields f;
    f.emplace_back("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    f.emplace_back("subject_token", id_token);
    f.emplace_back("subject_token_type", "urn:ietf:params:oauth:token-type:id_token");
    f.emplace_back("requested_token_type", "urn:ietf:params:oauth:token-type:id-jag");
    f.emplace_back("audience", d.issuer);
    f.emplace_back("resource", d.resource);
    if (!d.scope.empty()) f.emplace_back("scope", d.scope);
    if (!d.opts.idp_client_id.empty()) f.emplace_back("client_id", d.opts.idp_client_id);
    http::request req;
    req.target = ep->target;
    req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    req.headers.emplace_back("Accept", "application/json");
    req.body = oauth::form_encode(f);
    auto const t = limits(d.opts);
    auto r = co_await d.client.send(*ep, req, t, nullptr);
    if (!r) {
        out.error = "the identity provider could not be reached: " + r.error().message();
        co_return out;
    }
    out = oauth::parse_token_answer(r->status, r->body, true);
    if (!out.error.empty()) out.error = "the identity provider refused the token exchange: " + out.error;
    co_return out;
}

asio::awaitable<upstream_auth::begun> upstream_auth::begin_authorization() {
    auto h = co_await acquire();
    auto& d = *impl_;
    begun out;
    if (d.opts.flow != oauth_options::grant::authorization_code) {
        out.error = "server '" + d.server + "' gets its tokens without a person: there is nothing to authorize in a browser";
        co_return out;
    }
    if (d.opts.redirect_uri.empty()) {
        out.error = "no redirect URI is known for the OAuth callback: set auth.redirect_uri";
        co_return out;
    }
    if (!d.discovered) {
        oauth::challenge none;
        out.error = co_await discover(none);
        if (!out.error.empty()) co_return out;
    }
    out.error = co_await ensure_client();
    if (!out.error.empty()) co_return out;
    if (d.md.authorization_endpoint.empty()) {
        out.error = "the authorization server has no authorization endpoint";
        co_return out;
    }
    if (!d.fallback && std::find(d.md.code_challenge_methods.begin(), d.md.code_challenge_methods.end(), "S256") ==
                           d.md.code_challenge_methods.end()) {
        out.error = "the authorization server does not offer PKCE with S256 (code_challenge_methods_supported): refusing to authorize";
        co_return out;
    }
    // A gateway wants to keep its access: offline_access where the authorization server offers it
    // (SEP-2207), never where it does not.
    auto scope = d.scope;
    if (std::find(d.md.scopes_supported.begin(), d.md.scopes_supported.end(), "offline_access") != d.md.scopes_supported.end())
        scope = oauth::merge_scopes(scope, "offline_access");
    auto p = oauth::make_pkce();
    impl::pending pend;
    pend.state = secure_hex(16);
    pend.verifier = p.verifier;
    pend.scope = scope;
    pend.created = clock_type::now();
    fields f;
    f.emplace_back("response_type", "code");
    f.emplace_back("client_id", d.client_id);
    f.emplace_back("redirect_uri", d.opts.redirect_uri);
    f.emplace_back("code_challenge", p.challenge);
    f.emplace_back("code_challenge_method", "S256");
    f.emplace_back("state", pend.state);
    if (!scope.empty()) f.emplace_back("scope", scope);
    if (!d.resource.empty()) f.emplace_back("resource", d.resource);
    out.url = oauth::with_query(d.md.authorization_endpoint, f);
    d.pending_auth = std::move(pend);
    co_return out;
}

bool upstream_auth::expects(std::string const& state) const {
    auto const& p = impl_->pending_auth;
    return p && !state.empty() && p->state == state;
}

asio::awaitable<std::string> upstream_auth::complete_authorization(std::string state, std::string code, std::string iss) {
    auto h = co_await acquire();
    auto& d = *impl_;
    if (!expects(state)) co_return "unknown or already used authorization state";
    auto p = std::move(*d.pending_auth);
    d.pending_auth.reset();
    if (clock_type::now() - p.created > pending_lifetime) co_return "the authorization took longer than 10 minutes: start again";
    if (code.empty()) co_return "the callback brought no code";
    // RFC 9207: a callback naming another authorization server is a mix-up (or an attack).
    if ((d.md.iss_in_response || !iss.empty()) && iss != d.issuer)
        co_return "the callback comes from another authorization server (iss '" + iss + "', expected '" + d.issuer + "')";
    fields f;
    f.emplace_back("grant_type", "authorization_code");
    f.emplace_back("code", code);
    f.emplace_back("redirect_uri", d.opts.redirect_uri);
    f.emplace_back("code_verifier", p.verifier);
    auto err = co_await request_token(std::move(f), p.scope);
    if (!err.empty()) {
        impl_->log(log_level::error, "the authorization code was not exchanged: " + err);
        co_return "the authorization server refused the code: " + err;
    }
    impl_->log(log_level::info, authorized_line(d.token_scope));
    co_return std::string();
}

void upstream_auth::saved() {
    if (!on_saved_) return;
    auto const& d = *impl_;
    oauth_saved s;
    s.client_id = d.client_id == d.opts.client_id ? std::string() : d.client_id;
    s.client_secret = d.client_id == d.opts.client_id ? std::string() : d.client_secret;
    if (d.method && s.client_id.size()) s.client_auth = std::string(oauth::to_string(*d.method));
    s.access_token = d.access_token;
    s.refresh_token = d.refresh_token;
    s.scope = d.token_scope;
    s.issuer = d.issuer.empty() ? d.restored_issuer : d.issuer;
    if (d.expires) s.expires_at = std::chrono::duration_cast<std::chrono::seconds>(d.expires->time_since_epoch()).count();
    on_saved_(s);
}

void upstream_auth::restore(oauth_saved const& s) {
    auto& d = *impl_;
    if (!s.client_id.empty() && d.opts.client_id.empty()) {
        d.client_id = s.client_id;
        d.client_secret = s.client_secret;
        d.method = oauth::parse_client_auth(s.client_auth);
    }
    if (s.expires_at != 0 && s.expires_at <= unix_now() && s.refresh_token.empty()) return;
    d.restored_issuer = s.issuer;
    d.access_token = s.access_token;
    d.refresh_token = s.refresh_token;
    d.token_scope = s.scope;
    if (s.expires_at != 0) {
        d.expires = clock_type::time_point(std::chrono::seconds(s.expires_at));
        d.renew_at = *d.expires - renew_before;
    }
    if (!d.access_token.empty() || !d.refresh_token.empty()) set_state(state::authorized, {});
}

json::object upstream_auth::status() const {
    json::object o;
    o["type"] = "oauth";
    o["flow"] = flow_name(impl_->opts.flow);
    o["state"] = to_string(current());
    {
        std::lock_guard lock(mu_);
        if (!why_.empty() && current() != state::authorized) o["reason"] = why_;
    }
    if (impl_->opts.flow == oauth_options::grant::authorization_code)
        o["authorize"] = "/admin/mcp/servers/" + impl_->server + "/authorize";
    return o;
}

}  // namespace toolgate::mcp
