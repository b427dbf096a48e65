// The HTTP request path: bytes a client sends, parsed by Beast's request parser with the front's
// limits (64 KiB of headers, a body limit), read in pieces the way the server reads a socket,
// pipelined requests one after the other. Each is checked and made into the handler's request by
// the server's own functions (gateway/http_request.hpp) and handled by the real application (the
// route table, authentication, the chat, models and embeddings handlers, guardrails) on an
// offline config: a scripted model, one virtual key, guardrails; no sockets, no MCP servers. No
// admin token: an input must not change what the next one finds (keys made, disabled, rotated). The first byte
// chooses the read size.
// Oracles: no crash or sanitizer report, no handler throws or hangs; every request gets exactly one
// answer with a status in 200..599 and never a 500; an error answer is OpenAI's JSON error shape.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_client.hpp"
#include "gateway/app.hpp"
#include "gateway/config_parse.hpp"
#include "gateway/http_request.hpp"
#include "gateway/server.hpp"

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using namespace toolgate;
using namespace toolgate::gateway;

namespace {

constexpr std::size_t max_body = 64 * 1024;

void require(bool ok) {
    if (!ok) std::abort();
}

constexpr char const* config_text = R"(
providers_from_env: false
server: { max_body_bytes: 65536 }
state: { persist: false }
keys:
  - { name: app, key: sk-fuzz-key-1, models: [toolgate-demo] }
providers:
  - name: demo
    type: scripted
    models: [toolgate-demo]
    token_delay: 0ms
    rules:
      - when: "weather"
        tool_call: { name: get_weather, arguments: { city: "Paris" } }
      - when: "hello"
        reply: "Hello!"
plugins:
  - name: pii-redact
    config: { entities: [email, phone], action: redact, restore: true }
  - name: max-token
    config: { max_input_tokens: 4000, max_output_tokens: 500, max_messages: 50 }
)";

request_handler& app() {
    static auto const cfg = parse_config(config_text, "fuzz.yaml", [](std::string const&) { return std::nullopt; });
    static auto const handler = make_app(cfg);
    return *handler;
}

// Records what the handler answered; checks that it answers once, in a legal order.
class capture final : public response_channel {
public:
    asio::awaitable<bool> send(int st, std::string_view, std::string_view b, header_list const&) override {
        require(!started_);
        started_ = done = true;
        status = st;
        body = b;
        co_return true;
    }
    asio::awaitable<bool> begin_stream(int st, std::string_view, header_list const&) override {
        require(!started_);
        started_ = true;
        status = st;
        co_return true;
    }
    asio::awaitable<bool> write(std::string_view) override {
        require(started_ && !done);
        co_return true;
    }
    asio::awaitable<bool> end_stream(std::string_view) override {
        require(started_ && !done);
        done = true;
        co_return true;
    }
    bool started() const override { return started_; }

    int status = 0;
    bool done = false;
    std::string body;

private:
    bool started_ = false;
};

asio::awaitable<void> run_handler(request_handler& h, worker_services& services, inbound_request& req, capture& out,
                                  cancel_token& cancel, bool& finished) {
    co_await h.handle(services, req, out, cancel);
    finished = true;
}

// One worker for the whole run, as a server thread has (its TLS context reads the trust store once).
struct worker {
    asio::io_context ioc{1};
    http::client client{ioc.get_executor(), http::make_verifying_tls_context()};
};

void handle(inbound_request& req) {
    static worker w;
    auto& ioc = w.ioc;
    worker_services services{w.client};
    capture out;
    cancel_token cancel;
    bool finished = false;
    asio::co_spawn(ioc, run_handler(app(), services, req, out, cancel, finished), [](std::exception_ptr e) {
        if (e) std::abort();  // a handler that throws is a bug (the server would answer 500)
    });
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!finished && std::chrono::steady_clock::now() < deadline) {
        ioc.restart();
        ioc.run_for(std::chrono::milliseconds(50));  // work may be on another thread (state, MCP)
    }
    require(finished);
    require(out.started() && out.done);
    require(out.status >= 200 && out.status < 600 && out.status != 500);
    if (out.status >= 400 && !out.body.empty()) {
        auto v = json::parse(out.body);
        auto const& e = v.as_object().at("error").as_object();
        require(e.at("message").is_string() && e.at("type").is_string());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t step = 1 + data[0] % 61;
    std::string_view bytes(reinterpret_cast<char const*>(data + 1), size - 1);
    std::string pending;  // read but not yet consumed by the parser
    std::size_t at = 0;
    for (int n = 0; n < 4; ++n) {  // pipelined requests
        bhttp::request_parser<bhttp::string_body> parser;
        parser.header_limit(64 * 1024);
        parser.body_limit(max_body);
        parser.eager(true);
        boost::system::error_code ec;
        while (!parser.is_done()) {
            if (!pending.empty()) {
                auto used = parser.put(asio::buffer(pending), ec);
                pending.erase(0, used);
                if (ec == bhttp::error::need_more) ec = {};
                else if (ec) return 0;  // the server answers 400/413/431 and closes
                if (parser.is_done()) break;
                if (used > 0) continue;
            }
            if (at >= bytes.size()) {
                parser.put_eof(ec);
                if (ec || !parser.is_done()) return 0;  // partial message: the connection just ends
                break;
            }
            auto piece = bytes.substr(at, step);
            at += piece.size();
            pending.append(piece);
        }
        auto& msg = parser.get();
        if (!framing_is_plain(msg)) return 0;  // the server answers 400 and closes
        bool keep_alive = msg.keep_alive();
        auto req = to_inbound(msg);
        handle(req);
        if (!keep_alive) break;
    }
    return 0;
}
