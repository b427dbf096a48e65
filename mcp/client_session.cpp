#include "mcp/client_session.hpp"
#include "common/asio_util.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <utility>
#include <optional>

#include "mcp/jsonrpc.hpp"

namespace toolgate::mcp {

using boost::system::error_code;

namespace {
// Braced JSON is built in plain functions (CONTRIBUTING.md).
json::object initialize_params(session_options const& o) {
    return json::object{{"protocolVersion", supported_protocol_versions().front()},
                        {"capabilities", o.client_capabilities},
                        {"clientInfo", json::object{{"name", o.client_name}, {"version", o.client_version}}}};
}
json::object cancelled_params(std::int64_t id, std::string const& reason) {
    return json::object{{"requestId", id}, {"reason", reason}};
}
}  // namespace

struct client_session::pending {
    alarm_timer signal;
    std::optional<message> reply;
    progress_handler on_progress;
    bool cancelled = false;
    bool answered_twice = false;  // logged once
    pending(time_source& c, asio::any_io_executor ex) : signal(c, std::move(ex)) {}
};

client_session::client_session(asio::any_io_executor ex, std::unique_ptr<transport> t, session_options opts, log_sink log)
    : ex_(ex), transport_(std::move(t)), opts_(std::move(opts)), log_(std::move(log)),
      closed_signal_(opts_.clock ? *opts_.clock : time_source::steady(), ex) {}

client_session::~client_session() = default;

asio::awaitable<boost::system::result<server_info>> client_session::start() {
    if (auto ec = co_await transport_->start()) {
        mark_closed();
        co_return ec;
    }
    read_loop_running_ = true;
    asio::co_spawn(ex_, [self = shared_from_this()]() { return self->read_loop(); }, asio::detached);

    auto params = initialize_params(opts_);
    auto r = co_await request("initialize", std::move(params), opts_.initialize_timeout);
    if (!r.ok()) {
        log_(log_level::error, "initialize failed: " + r.message);
        co_await close();
        co_return error_code(asio::error::connection_refused);
    }
    auto const* o = r.result.if_object();
    auto const* pv = o ? o->if_contains("protocolVersion") : nullptr;
    std::string version = pv && pv->is_string() ? std::string(pv->get_string()) : "";
    auto const& supported = supported_protocol_versions();
    if (std::find(supported.begin(), supported.end(), version) == supported.end()) {
        log_(log_level::error, "server wants protocol version '" + version + "', which toolgate does not speak");
        co_await close();
        co_return error_code(asio::error::no_protocol_option);
    }
    info_.protocol_version = version;
    if (auto const* c = o->if_contains("capabilities"); c && c->is_object()) info_.capabilities = c->get_object();
    if (auto const* si = o->if_contains("serverInfo"); si && si->is_object()) info_.info = si->get_object();
    if (auto const* ins = o->if_contains("instructions"); ins && ins->is_string())
        info_.instructions = std::string(ins->get_string());
    transport_->set_protocol_version(version);
    co_await notify("notifications/initialized", nullptr);
    co_return info_;
}

asio::awaitable<call_result> client_session::request(std::string const& method, json::value params,
                                                     std::chrono::milliseconds timeout, cancel_token* cancel,
                                                     progress_handler on_progress) {
    call_result out;
    if (closed_) {
        out.message = "server connection is closed";
        co_return out;
    }
    auto id = next_id_++;
    auto self = shared_from_this();  // keep the session alive while we wait
    pending p(closed_signal_.source(), ex_);
    std::string token;
    if (on_progress) {
        token = "tg-" + std::to_string(id);
        if (!params.is_object()) params = json::object{};
        auto& meta = params.get_object()["_meta"];
        if (!meta.is_object()) meta = json::object{};
        meta.get_object()["progressToken"] = token;
        p.on_progress = std::move(on_progress);
        progress_tokens_[token] = id;
    }
    pending_[id] = &p;
    struct cleanup {
        client_session& s;
        std::int64_t id;
        std::string token;
        ~cleanup() {
            s.pending_.erase(id);
            if (!token.empty()) s.progress_tokens_.erase(token);
        }
    } guard{*this, id, token};

    if (auto ec = co_await transport_->send(make_request(json::value(id), method, params))) {
        out.message = "could not send to the server: " + ec.message();
        co_return out;
    }
    cancel_token::subscription sub;
    if (cancel)
        sub = cancel->subscribe([&p] {
            p.cancelled = true;
            p.signal.cancel();
        });
    p.signal.expires_after(timeout);
    if (!p.reply && !closed_ && !p.cancelled) co_await p.signal.wait();
    sub.reset();

    if (p.reply) {
        if (p.reply->type == message::kind::response) {
            out.state = call_result::status::ok;
            out.result = std::move(p.reply->result);
        } else if (p.reply->error_code == errc::transport_failure) {
            out.state = call_result::status::closed;  // never reached the server, or its answer never came
            out.message = p.reply->error_message;
        } else {
            out.state = call_result::status::error;
            out.code = p.reply->error_code;
            out.message = p.reply->error_message;
        }
        co_return out;
    }
    if (closed_) {
        out.message = "server connection closed during the call";
        co_return out;
    }
    out.state = p.cancelled ? call_result::status::cancelled : call_result::status::timeout;
    out.message = p.cancelled ? std::string("cancelled by the caller")
                              : "no answer within " + std::to_string(timeout.count()) + " ms";
    // Tell the server to stop working on it.
    auto note = cancelled_params(id, p.cancelled ? "caller went away" : "timeout");
    co_await notify("notifications/cancelled", std::move(note));
    co_return out;
}

asio::awaitable<void> client_session::notify(std::string const& method, json::value params) {
    if (closed_) co_return;
    co_await transport_->send(make_notification(method, params));
}

asio::awaitable<void> client_session::read_loop() {
    auto self = shared_from_this();
    for (;;) {
        auto r = co_await transport_->receive();
        if (!r) break;
        handle_message(*r);
    }
    mark_closed();
}

void client_session::handle_message(std::string const& text) {
    auto m = parse_message(text);
    switch (m.type) {
        case message::kind::response:
        case message::kind::error: {
            std::int64_t id = m.id.is_int64() ? m.id.get_int64() : m.id.is_uint64() ? static_cast<std::int64_t>(m.id.get_uint64()) : -1;
            auto it = pending_.find(id);
            if (it == pending_.end()) {
                if (m.type == message::kind::error && m.id.is_null())
                    log_(log_level::warn, "server reported an error: " + m.error_message);
                return;  // late answer to a call that timed out or was cancelled
            }
            if (it->second->reply) {
                // A second answer to one request (or one with a reused id): the first one stands.
                if (!std::exchange(it->second->answered_twice, true))
                    log_(log_level::warn, "server answered request " + std::to_string(id) + " more than once; the first answer stands");
                return;
            }
            it->second->reply = std::move(m);
            it->second->signal.cancel();
            return;
        }
        case message::kind::request: {
            if (m.method != "ping" && on_request_) {
                asio::co_spawn(ex_, answer_request(shared_from_this(), std::move(m)), asio::detached);
                return;
            }
            std::string reply;
            if (m.method == "ping") reply = make_result(m.id, json::object{});
            else reply = make_error(m.id, errc::method_not_found, "toolgate does not offer " + m.method + " to this server");
            asio::co_spawn(ex_, [self = shared_from_this(), reply = std::move(reply)]() -> asio::awaitable<void> {
                co_await self->transport_->send(reply);
            }, asio::detached);
            return;
        }
        case message::kind::notification: {
            if (m.method == "notifications/progress") {
                auto const* po = m.params.if_object();
                auto const* tok = po ? po->if_contains("progressToken") : nullptr;
                if (tok && tok->is_string()) {
                    auto it = progress_tokens_.find(std::string(tok->get_string()));
                    if (it != progress_tokens_.end()) {
                        auto pit = pending_.find(it->second);
                        if (pit != pending_.end() && pit->second->on_progress) pit->second->on_progress(m.params);
                    }
                }
                return;
            }
            if (m.method == "notifications/message") {
                auto const* po = m.params.if_object();
                auto const* data = po ? po->if_contains("data") : nullptr;
                log_(log_level::info, "server log: " + (data ? json::serialize(*data).substr(0, 1000) : std::string()));
                if (on_notification_) on_notification_(m.method, m.params);
                return;
            }
            if (on_notification_) on_notification_(m.method, m.params);
            return;
        }
        case message::kind::invalid:
            log_(log_level::warn, "ignored an invalid message (" + m.problem + "): " + text.substr(0, 200));
            return;
    }
}

asio::awaitable<void> client_session::answer_request(std::shared_ptr<client_session> self, message m) {
    auto r = co_await self->on_request_(m.method, std::move(m.params));
    std::string reply;
    if (r.ok()) reply = make_result(m.id, r.result);
    else reply = make_error(m.id, r.state == call_result::status::error ? r.code : errc::internal_error,
                            r.message.empty() ? std::string("no answer") : r.message);
    if (!self->closed_) co_await self->transport_->send(reply);
}

void client_session::mark_closed() {
    if (closed_) return;
    closed_ = true;
    for (auto& [id, p] : pending_) p->signal.cancel();
    closed_signal_.cancel();
}

asio::awaitable<void> client_session::wait_closed() {
    while (!closed_) {
        closed_signal_.expires_never();
        co_await closed_signal_.wait();
    }
}

asio::awaitable<bool> client_session::wait_closed_for(std::chrono::milliseconds d) {
    if (closed_) co_return true;
    closed_signal_.expires_after(d);
    co_await closed_signal_.wait();
    co_return closed_;
}

asio::awaitable<void> client_session::close() {
    auto self = shared_from_this();
    co_await transport_->close();
    mark_closed();
}

}  // namespace toolgate::mcp
