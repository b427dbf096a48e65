// Sessions without I/O: rows, the API's JSON, decisions and trimming.
#include "sessions/session.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <vector>

#include "common/ids.hpp"
#include "common/json_util.hpp"

namespace toolgate::sessions {

namespace {

constexpr std::size_t max_metadata_pairs = 16;
constexpr std::size_t max_metadata_key = 64;
constexpr std::size_t max_metadata_value = 512;
constexpr std::size_t max_system_bytes = 256 * 1024;

std::string text_of(json::object const& o, std::string_view key) {
    auto const* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t int_of(json::object const& o, std::string_view key, std::int64_t fallback = 0) {
    auto const* v = o.if_contains(key);
    if (v == nullptr) return fallback;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
    return fallback;
}

json::object limits_json(limits const& l, bool api) {
    json::object o;
    if (api) o["ttl_seconds"] = l.ttl.count() / 1000;
    else o["ttl_ms"] = l.ttl.count();
    o["max_messages"] = l.max_messages;
    o["max_tokens"] = l.max_tokens;
    o["on_limit"] = to_string(l.when_full);
    return o;
}

std::string_view role_of(json::value const& m) {
    auto const* o = m.if_object();
    auto const* r = o ? o->if_contains("role") : nullptr;
    return r && r->is_string() ? std::string_view(r->get_string()) : std::string_view();
}

bool is_system(json::value const& m) {
    auto r = role_of(m);
    return r == "system" || r == "developer";
}

// A positive integer field within [1, ceiling] (ceiling 0: up to `hard`).
std::optional<api_error> bounded(json::object const& body, std::string_view key, std::int64_t ceiling,
                                 std::int64_t hard, std::int64_t& out) {
    auto const* v = body.if_contains(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    std::int64_t n = 0;
    if (v->is_int64()) n = v->get_int64();
    else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(hard)) n = static_cast<std::int64_t>(v->get_uint64());
    else n = -1;
    auto top = ceiling > 0 ? ceiling : hard;
    if (n < 1 || n > top) {
        auto err = api_error::bad_request("'" + std::string(key) + "' must be an integer from 1 to " + std::to_string(top) +
                                              (ceiling > 0 ? " (the gateway's limit)" : ""),
                                          "invalid_session_limit");
        err.param = std::string(key);
        return err;
    }
    out = n;
    return std::nullopt;
}

}  // namespace

std::string_view to_string(on_limit v) { return v == on_limit::reject ? "reject" : "trim"; }

bool valid_id(std::string_view id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string new_id() { return "sess_" + secure_hex(12); }

state::session_row to_row(session const& s) {
    state::session_row r;
    r.id = s.id;
    r.owner = s.owner;
    r.created_ms = s.created_ms;
    r.updated_ms = s.updated_ms;
    r.expires_ms = s.expires_ms;
    r.version = s.version;
    json::object meta;
    meta["metadata"] = s.metadata;
    if (!s.system.empty()) meta["system"] = s.system;
    meta["limits"] = limits_json(s.lim, false);
    meta["count"] = s.messages.size();
    r.meta = json::serialize(meta);
    r.messages = json::serialize(s.messages);
    return r;
}

std::optional<session> from_row(state::session_row const& row) {
    boost::system::error_code ec;
    auto meta = parse_bounded(row.meta, ec);
    if (ec || !meta.is_object()) return std::nullopt;
    session s;
    s.id = row.id;
    s.owner = row.owner;
    s.created_ms = row.created_ms;
    s.updated_ms = row.updated_ms;
    s.expires_ms = row.expires_ms;
    s.version = row.version;
    auto const& m = meta.get_object();
    if (auto const* md = m.if_contains("metadata"); md && md->is_object()) s.metadata = md->get_object();
    s.system = text_of(m, "system");
    if (auto const* l = m.if_contains("limits"); l && l->is_object()) {
        auto const& lo = l->get_object();
        s.lim.ttl = std::chrono::milliseconds(int_of(lo, "ttl_ms", s.lim.ttl.count()));
        s.lim.max_messages = static_cast<std::size_t>(int_of(lo, "max_messages"));
        s.lim.max_tokens = int_of(lo, "max_tokens");
        s.lim.when_full = text_of(lo, "on_limit") == "reject" ? on_limit::reject : on_limit::trim;
    }
    if (!row.messages.empty()) {
        auto msgs = parse_bounded(row.messages, ec);
        if (ec || !msgs.is_array()) return std::nullopt;
        s.messages = std::move(msgs.get_array());
    }
    // A list page leaves the messages out: their count comes from the meta.
    s.message_count = s.messages.empty() ? static_cast<std::size_t>(int_of(m, "count")) : s.messages.size();
    return s;
}

json::object to_json(session const& s, bool with_messages) {
    json::object o;
    o["id"] = s.id;
    o["object"] = "session";
    o["created_at"] = s.created_ms / 1000;
    o["updated_at"] = s.updated_ms / 1000;
    o["expires_at"] = s.expires_ms / 1000;
    o["metadata"] = s.metadata;
    if (!s.system.empty()) o["system"] = s.system;
    o["limits"] = limits_json(s.lim, true);
    o["message_count"] = s.messages.empty() ? s.message_count : s.messages.size();
    if (with_messages) o["messages"] = s.messages;
    return o;
}

std::variant<create_request, api_error> parse_create(json::object const& body, settings const& s) {
    for (auto const& kv : body) {
        static constexpr std::string_view known[] = {"id", "metadata", "system", "ttl_seconds", "max_messages", "max_tokens",
                                                     "on_limit"};
        bool ok = false;
        for (auto k : known) ok = ok || kv.key() == k;
        if (!ok) {
            auto err = api_error::bad_request("unknown field '" + std::string(kv.key()) +
                                                  "' (known: id, metadata, system, ttl_seconds, max_messages, "
                                                  "max_tokens, on_limit)",
                                              "unknown_parameter");
            err.param = std::string(kv.key());
            return err;
        }
    }
    create_request out;
    out.lim = s.lim;
    if (auto const* id = body.if_contains("id"); id && !id->is_null()) {
        if (!id->is_string() || !valid_id(id->get_string())) return invalid_id_error();
        out.id = std::string(id->get_string());
    }
    if (auto const* md = body.if_contains("metadata"); md && !md->is_null()) {
        if (!md->is_object()) return api_error::bad_request("'metadata' must be an object of strings", "invalid_metadata");
        auto const& mo = md->get_object();
        if (mo.size() > max_metadata_pairs)
            return api_error::bad_request("'metadata' holds at most 16 pairs", "invalid_metadata");
        for (auto const& kv : mo) {
            if (kv.key().size() > max_metadata_key || !kv.value().is_string() ||
                kv.value().get_string().size() > max_metadata_value)
                return api_error::bad_request("'metadata' keys are at most 64 characters and values strings of at most 512",
                                              "invalid_metadata");
        }
        out.metadata = mo;
    }
    if (auto const* sys = body.if_contains("system"); sys && !sys->is_null()) {
        if (!sys->is_string() || sys->get_string().size() > max_system_bytes)
            return api_error::bad_request("'system' must be a string of at most 256 KiB", "invalid_system");
        out.system = std::string(sys->get_string());
    }
    std::int64_t ttl_s = s.lim.ttl.count() / 1000;
    if (auto err = bounded(body, "ttl_seconds", s.lim.ttl.count() / 1000, 0, ttl_s)) return *err;
    out.lim.ttl = std::chrono::seconds(ttl_s);
    std::int64_t n = static_cast<std::int64_t>(s.lim.max_messages);
    if (auto err = bounded(body, "max_messages", static_cast<std::int64_t>(s.lim.max_messages), 1'000'000, n)) return *err;
    out.lim.max_messages = static_cast<std::size_t>(n);
    n = s.lim.max_tokens;
    if (auto err = bounded(body, "max_tokens", s.lim.max_tokens, 1'000'000'000, n)) return *err;
    out.lim.max_tokens = n;
    if (auto const* ol = body.if_contains("on_limit"); ol && !ol->is_null()) {
        if (!ol->is_string() || (ol->get_string() != "trim" && ol->get_string() != "reject"))
            return api_error::bad_request("'on_limit' must be \"trim\" or \"reject\"", "invalid_session_limit");
        out.lim.when_full = ol->get_string() == "reject" ? on_limit::reject : on_limit::trim;
    }
    return out;
}

verdict decide(state::session_state found, std::string_view owner, std::string_view caller, bool create_on_use) {
    switch (found) {
    case state::session_state::missing:
        return create_on_use ? verdict::create : verdict::not_found;
    case state::session_state::gone:
        return owner == caller ? verdict::gone : verdict::not_found;
    case state::session_state::live:
        return owner == caller ? verdict::use : verdict::not_found;
    }
    return verdict::not_found;
}

api_error invalid_id_error() {
    auto err = api_error::bad_request("a session id is 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
                                      "invalid_session_id");
    err.param = "x-session-id";
    return err;
}

api_error not_found_error(std::string_view id) {
    return api_error::not_found("no session '" + std::string(id) + "' for this key", "session_not_found");
}

api_error gone_error(std::string_view id) {
    return api_error(410, "invalid_request_error", "session_expired",
                     "session '" + std::string(id) + "' has expired or was deleted");
}

api_error busy_error(std::string_view id) {
    return api_error(409, "invalid_request_error", "session_busy",
                     "another request on session '" + std::string(id) + "' is still running; retry when it is done");
}

api_error limit_error(std::string_view why) {
    return api_error(429, "invalid_request_error", "session_limit",
                     "the session is full (" + std::string(why) +
                         ") and its on_limit is reject; start a new session or delete this one");
}

api_error store_error() {
    auto err = api_error::unavailable("the session store cannot answer; retry shortly");
    err.code = "session_store_unavailable";
    err.retry_after = "1";
    return err;
}

std::int64_t message_tokens(json::object const& message, token_counter const& count) {
    std::int64_t n = 4;  // the role and the message's framing
    if (auto const* c = message.if_contains("content")) {
        if (c->is_string()) {
            n += static_cast<std::int64_t>(count(c->get_string()));
        } else if (c->is_array()) {
            for (auto const& part : c->get_array()) {
                auto const* po = part.if_object();
                auto const* t = po ? po->if_contains("text") : nullptr;
                if (t && t->is_string()) n += static_cast<std::int64_t>(count(t->get_string()));
                else n += 85;  // an image or another part: a flat estimate
            }
        }
    }
    if (auto const* calls = message.if_contains("tool_calls"); calls && calls->is_array()) {
        for (auto const& call : calls->get_array()) {
            auto const* co = call.if_object();
            auto const* fn = co ? co->if_contains("function") : nullptr;
            auto const* fo = fn ? fn->if_object() : nullptr;
            if (!fo) continue;
            n += static_cast<std::int64_t>(count(text_of(*fo, "name")) + count(text_of(*fo, "arguments"))) + 3;
        }
    }
    return n;
}

fit_result fit_history(json::array& messages, std::size_t keep_from, limits const& lim, std::size_t max_bytes,
                       token_counter const& count) {
    fit_result out;
    auto n = messages.size();
    if (keep_from > n) keep_from = n;
    std::vector<std::int64_t> tokens(n, 0);
    std::vector<std::size_t> bytes(n, 0);
    std::int64_t total_tokens = 0;
    std::size_t total_bytes = 2;
    for (std::size_t i = 0; i < n; ++i) {
        auto const* o = messages[i].if_object();
        if (lim.max_tokens > 0) tokens[i] = o ? message_tokens(*o, count) : 0;
        if (max_bytes > 0) bytes[i] = json::serialize(messages[i]).size() + 1;
        total_tokens += tokens[i];
        total_bytes += bytes[i];
    }
    auto over = [&](std::size_t kept, std::int64_t tok, std::size_t by) -> std::string {
        if (lim.max_messages > 0 && kept > lim.max_messages) return "max_messages " + std::to_string(lim.max_messages);
        if (lim.max_tokens > 0 && tok > lim.max_tokens) return "max_tokens " + std::to_string(lim.max_tokens);
        if (max_bytes > 0 && by > max_bytes) return "max_history_bytes " + std::to_string(max_bytes);
        return {};
    };
    out.over = over(n, total_tokens, total_bytes);
    if (out.over.empty()) return out;
    out.fits = false;
    if (lim.when_full == on_limit::reject) return out;

    std::size_t head = 0;
    while (head < n && is_system(messages[head])) ++head;
    // The last turn start at or before keep_from: the current turn, which stays.
    std::size_t last_start = head;
    for (std::size_t i = head; i <= keep_from && i < n; ++i)
        if (role_of(messages[i]) == "user") last_start = i;
    // Cut candidates: user messages in (head, last_start]; the first that fits wins, else the last.
    std::size_t cut = head;
    std::int64_t dropped_tokens = 0;
    std::size_t dropped_bytes = 0;
    for (std::size_t i = head; i < last_start; ++i) {
        dropped_tokens += tokens[i];
        dropped_bytes += bytes[i];
        auto next = i + 1;
        if (role_of(messages[next]) != "user") continue;
        cut = next;
        auto why = over(n - (cut - head), total_tokens - dropped_tokens, total_bytes - dropped_bytes);
        if (why.empty()) {
            out.fits = true;
            out.over.clear();
            break;
        }
        out.over = why;
    }
    if (cut > head) {
        messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(head), messages.begin() + static_cast<std::ptrdiff_t>(cut));
        out.dropped = cut - head;
    }
    return out;
}

}  // namespace toolgate::sessions
