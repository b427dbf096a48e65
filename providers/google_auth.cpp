#include "providers/google_auth.hpp"


#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/jwt.hpp"
#include "common/text.hpp"

namespace toolgate::providers::google_auth {

namespace json = boost::json;
using steady = std::chrono::steady_clock;

namespace {


std::string text_field(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

bool loopback(std::string_view host) { return host == "127.0.0.1" || host == "localhost" || host == "::1"; }

std::shared_ptr<EVP_PKEY> read_private_key(std::string const& pem) {
    std::shared_ptr<EVP_PKEY> key;
    try {
        key = jwt::read_private_key(pem);
    } catch (std::invalid_argument const&) {
        throw std::invalid_argument("'private_key' is not a PEM private key");
    }
    if (jwt::algorithm_for(key.get()) != "RS256")
        throw std::invalid_argument("'private_key' is not an RSA key (service-account keys are RSA)");
    return key;
}

json::object jwt_header(std::string const& kid) {
    json::object h{{"alg", "RS256"}, {"typ", "JWT"}};
    if (!kid.empty()) h["kid"] = kid;
    return h;
}

failure auth_failure(std::string const& provider, std::string detail) {
    return failure(api_error::upstream(502, "provider '" + provider + "' could not obtain an access token for its service account",
                                       "upstream_auth_failed"),
                   std::move(detail));
}

}  // namespace

service_account parse_service_account(std::string_view json_text) {
    boost::system::error_code ec;
    auto v = json::parse(json_text, ec);
    if (ec || !v.is_object()) throw std::invalid_argument("is not a JSON object (a service-account key file)");
    auto const& o = v.get_object();
    auto type = text_field(o, "type");
    if (!type.empty() && type != "service_account")
        throw std::invalid_argument("has type '" + type + "'; only service_account keys are supported");
    service_account sa;
    sa.client_email = text_field(o, "client_email");
    sa.private_key_id = text_field(o, "private_key_id");
    sa.project_id = text_field(o, "project_id");
    sa.token_uri = text_field(o, "token_uri");
    if (sa.token_uri.empty()) sa.token_uri = std::string(default_token_uri);
    if (sa.client_email.empty()) throw std::invalid_argument("has no 'client_email'");
    auto pem = text_field(o, "private_key");
    if (pem.empty()) throw std::invalid_argument("has no 'private_key'");
    sa.key = read_private_key(pem);
    auto ep = http::endpoint::parse(sa.token_uri);
    if (!ep) throw std::invalid_argument("has a 'token_uri' that is not an http(s) URL");
    if (!ep->tls && !loopback(ep->host))
        throw std::invalid_argument("has a 'token_uri' that is not https (the assertion would travel in clear)");
    return sa;
}

service_account load_service_account(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument("credentials file '" + path + "' cannot be read");
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > (1u << 20)) throw std::invalid_argument("credentials file '" + path + "' is over 1 MiB");
    try {
        return parse_service_account(text.str());
    } catch (std::invalid_argument const& e) {
        throw std::invalid_argument("credentials file '" + path + "' " + e.what());
    }
}

std::string make_assertion(service_account const& sa, std::int64_t now_unix, std::string_view scope) {
    json::object claims;
    claims["iss"] = sa.client_email;
    claims["scope"] = scope;
    claims["aud"] = sa.token_uri;
    claims["iat"] = now_unix;
    claims["exp"] = now_unix + 3600;
    return jwt::sign(sa.key.get(), "RS256", json::serialize(jwt_header(sa.private_key_id)), json::serialize(claims));
}

std::string token_request_body(std::string_view assertion) {
    // The assertion is base64url and dots: nothing in it needs escaping.
    return "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + std::string(assertion);
}

token_answer parse_token_answer(int status, std::string_view body) {
    token_answer a;
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    auto const* o = !ec ? v.if_object() : nullptr;
    if (status / 100 != 2) {
        a.error = "status " + std::to_string(status);
        if (o) {
            // OAuth's {"error", "error_description"}; Google's APIs also answer {"error": {"message"}}.
            if (auto e = text_field(*o, "error"); !e.empty()) a.error += ": " + e;
            if (auto d = text_field(*o, "error_description"); !d.empty()) a.error += ": " + d;
            if (auto const* e = o->if_contains("error"); e && e->is_object())
                if (auto m = text_field(e->get_object(), "message"); !m.empty()) a.error += ": " + m;
        } else if (!body.empty()) {
            a.error += ": " + std::string(body.substr(0, 200));
        }
        return a;
    }
    if (!o) {
        a.error = "the token endpoint's answer is not a JSON object";
        return a;
    }
    a.access_token = text_field(*o, "access_token");
    auto const* exp = o->if_contains("expires_in");
    std::int64_t secs = 3600;  // RFC 6749: optional; Google always sends it
    if (exp && exp->is_int64()) secs = exp->get_int64();
    else if (exp && exp->is_uint64()) secs = static_cast<std::int64_t>(std::min<std::uint64_t>(exp->get_uint64(), 1u << 30));
    else if (exp && exp->is_double()) secs = static_cast<std::int64_t>(std::clamp(exp->get_double(), -1.0, 1e9));
    a.lifetime = std::chrono::seconds(std::clamp<std::int64_t>(secs, 0, 7 * 24 * 3600));
    auto type = text_field(*o, "token_type");
    if (a.access_token.empty()) a.error = "the token endpoint's answer has no access_token";
    else if (a.access_token.find_first_of("\r\n") != std::string::npos) a.error = "the access token is not a header value";
    else if (!type.empty() && type != "Bearer" && type != "bearer") a.error = "token_type '" + type + "' is not Bearer";
    else if (a.lifetime.count() <= 0) a.error = "the access token has already expired (expires_in " + std::to_string(secs) + ")";
    return a;
}

token_times times_for(std::chrono::seconds lifetime) {
    using std::chrono::milliseconds;
    // Refresh 5 minutes early (half the lifetime for short ones); stop sending a token 30 s before
    // it ends (a tenth of the lifetime for short ones), so none expires on its way.
    milliseconds life = lifetime;
    auto early = std::min(milliseconds(300'000), life / 2);
    auto margin = std::min(milliseconds(30'000), life / 10);
    return token_times{life - early, life - margin};
}

struct token_cache::waiter {
    explicit waiter(asio::any_io_executor ex) : timer(std::move(ex)) {}
    asio::steady_timer timer;
};

token_cache::token_cache(service_account sa, std::string provider_name, http::timeouts t)
    : sa_(std::move(sa)), provider_(std::move(provider_name)), timeouts_(t) {
    auto ep = http::endpoint::parse(sa_.token_uri);
    if (!ep) throw std::invalid_argument("token_uri '" + sa_.token_uri + "' is not an http(s) URL");
    token_ep_ = *ep;
    // The URI's own path and query are the target, exactly as written.
    auto u = boost::urls::parse_uri(sa_.token_uri);
    token_target_ = u->encoded_path().empty() ? std::string("/") : std::string(u->encoded_path());
    if (u->has_query()) token_target_ += "?" + std::string(u->encoded_query());
}

token_cache::~token_cache() = default;

std::uint64_t token_cache::exchanges() const {
    std::lock_guard lock(mu_);
    return exchanges_;
}

void token_cache::invalidate(std::string_view token) {
    std::lock_guard lock(mu_);
    if (!token_.empty() && token_ == token) {
        token_.clear();
        refresh_at_ = usable_until_ = {};
    }
}

void token_cache::wake_all_locked() {
    for (auto& w : waiters_) asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    waiters_.clear();
}

asio::awaitable<std::variant<std::string, failure>> token_cache::get(http::client& http) {
    auto ex = co_await asio::this_coro::executor;
    // Waiting for another caller's exchange is bounded by that exchange's own time limits.
    auto deadline = steady::now() + timeouts_.connect + timeouts_.read + std::chrono::seconds(1);
    for (;;) {
        std::string ready;
        std::shared_ptr<waiter> w;
        std::uint64_t seen = 0;
        {
            std::lock_guard lock(mu_);
            auto now = steady::now();
            bool have = !token_.empty();
            if (have && (now < refresh_at_ || (fetching_ && now < usable_until_))) {
                ready = token_;
            } else if (!fetching_) {
                fetching_ = true;
            } else {
                w = std::make_shared<waiter>(ex);
                w->timer.expires_at(deadline);
                waiters_.push_back(w);
                seen = generation_;
            }
        }
        if (!ready.empty()) co_return ready;
        if (!w) co_return co_await exchange(http);
        co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
        std::optional<failure> err;
        {
            std::lock_guard lock(mu_);
            std::erase(waiters_, w);
            // The exchange this caller waited for failed: its failure is this caller's too.
            if (generation_ != seen && token_.empty() && last_error_) err = last_error_;
        }
        if (err) co_return *err;
        if (steady::now() >= deadline)
            co_return auth_failure(provider_, "timed out waiting for another request's token exchange");
    }
}

asio::awaitable<std::variant<std::string, failure>> token_cache::exchange(http::client& http) {
    std::variant<std::string, failure> result;
    token_answer answer;
    bool answered = false;
    try {
        http::request req;
        req.target = token_target_;
        req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
        req.headers.emplace_back("Accept", "application/json");
        auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
        req.body = token_request_body(make_assertion(sa_, now.count()));
        auto r = co_await http.send(token_ep_, req, timeouts_, nullptr);
        if (!r) {
            answer.error = "no answer from " + sa_.token_uri + ": " + r.error().message();
        } else {
            answer = parse_token_answer(r->status, r->body);
            if (!answer.error.empty()) answer.error = "token endpoint " + sa_.token_uri + ": " + answer.error;
        }
        answered = true;
    } catch (std::exception const& e) {
        answer.error = std::string("token exchange failed: ") + e.what();
    }
    if (!answered && answer.error.empty()) answer.error = "token exchange failed";
    auto obtained = steady::now();
    {
        std::lock_guard lock(mu_);
        fetching_ = false;
        ++generation_;
        if (answer.error.empty()) {
            auto t = times_for(answer.lifetime);
            token_ = answer.access_token;
            refresh_at_ = obtained + t.refresh_after;
            usable_until_ = obtained + t.usable_for;
            last_error_.reset();
            ++exchanges_;
            result = token_;
        } else {
            // A failed refresh keeps a token that is still usable; the next caller tries again.
            last_error_ = auth_failure(provider_, answer.error);
            if (!token_.empty() && obtained < usable_until_) {
                // Try again in a few seconds, not on every request meanwhile.
                refresh_at_ = std::min(usable_until_, obtained + std::chrono::seconds(5));
                result = token_;
            } else {
                result = *last_error_;
            }
        }
        wake_all_locked();
    }
    co_return result;
}

}  // namespace toolgate::providers::google_auth
