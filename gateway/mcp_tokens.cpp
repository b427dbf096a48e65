#include "gateway/mcp_tokens.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include "gateway/policy/access.hpp"
#include "mcp/oauth.hpp"
#include "state/secret_store.hpp"
#include "state/sqlite.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

// Where the authorization server sends a person back to: this gateway's /oauth/callback, as reached
// from the machine it runs on (auth.redirect_uri when that is not where the browser is).
std::string default_redirect_uri(listen_address const& a) {
    if (a.port == 0) return {};  // not known before the socket is bound: auth.redirect_uri must say
    // Only a loopback address makes a plain-http redirect acceptable (the code travels in it);
    // a gateway reached under another name says where in auth.redirect_uri (https).
    std::string host = a.host;
    if (host.empty() || host == "0.0.0.0" || host == "localhost") host = "127.0.0.1";
    else if (host == "::" || host == "::1") host = "[::1]";
    auto uri = "http://" + (host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host) + ":" +
               std::to_string(a.port) + "/oauth/callback";
    return mcp::oauth::is_loopback_url(uri) ? uri : std::string();
}

// The state's SQLite file (state.sqlite.path, else its default), or memory when the state is not
// to persist.
std::shared_ptr<state::secret_store> open_secrets(gateway_config const& cfg) {
    auto const& a = cfg.access_settings;
    if (a && !a->persist) return state::make_memory_secrets();
    state::sqlite_options o;
    if (a && a->sqlite) o = *a->sqlite;
    try {
        return state::make_sqlite_secrets(state::open_sqlite(o));
    } catch (std::exception const& e) {
        spdlog::warn("upstream OAuth tokens are kept in memory only: {}", e.what());
        return state::make_memory_secrets();
    }
}

namespace {

// (Plain functions: JSON in braces, CONTRIBUTING.md.)
std::string saved_json(mcp::oauth_saved const& s) {
    json::object o;
    o["client_id"] = s.client_id;
    o["client_secret"] = s.client_secret;
    o["client_auth"] = s.client_auth;
    o["access_token"] = s.access_token;
    o["refresh_token"] = s.refresh_token;
    o["scope"] = s.scope;
    o["issuer"] = s.issuer;
    o["expires_at"] = s.expires_at;
    return json::serialize(o);
}

std::optional<mcp::oauth_saved> parse_saved(std::string const& text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) return std::nullopt;
    auto const& o = v.get_object();
    auto str = [&](char const* k) {
        auto const* x = o.if_contains(k);
        return x && x->is_string() ? std::string(x->get_string()) : std::string();
    };
    mcp::oauth_saved s;
    s.client_id = str("client_id");
    s.client_secret = str("client_secret");
    s.client_auth = str("client_auth");
    s.access_token = str("access_token");
    s.refresh_token = str("refresh_token");
    s.scope = str("scope");
    s.issuer = str("issuer");
    if (auto const* x = o.if_contains("expires_at"); x && x->is_int64()) s.expires_at = x->get_int64();
    return s;
}

}  // namespace

// Tokens are kept per server name and URL: a server whose URL changes in the config never
// receives the tokens of the old one.
void keep_tokens(std::shared_ptr<state::secret_store> const& store, mcp::server_config const& sc, mcp::upstream_auth& auth) {
    auto name = "mcp_oauth:" + sc.name + " " + (sc.http ? sc.http->url : std::string());
    auto saved = store->load(name);
    if (auto it = saved.find(name); it != saved.end())
        if (auto s = parse_saved(it->second)) auth.restore(*s);
    auth.on_saved([store, name](mcp::oauth_saved const& s) { store->save(name, saved_json(s)); });
}

}  // namespace toolgate::gateway
