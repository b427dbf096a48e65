#include "mcp/jsonrpc.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace toolgate::mcp {

message classify(json::value v) {
    message m;
    auto* o = v.if_object();
    if (o == nullptr) {
        m.problem = v.is_array() ? "batches are not supported" : "not a JSON object";
        return m;
    }
    auto* ver = o->if_contains("jsonrpc");
    if (ver == nullptr || !ver->is_string() || ver->get_string() != "2.0") {
        m.problem = "missing jsonrpc: \"2.0\"";
        return m;
    }
    auto* id = o->if_contains("id");
    bool id_ok = id != nullptr && (id->is_string() || id->is_int64() || id->is_uint64());
    if (auto* method = o->if_contains("method")) {
        if (!method->is_string()) {
            m.problem = "method must be a string";
            return m;
        }
        m.method = std::string(method->get_string());
        if (auto* p = o->if_contains("params")) m.params = std::move(*p);
        if (id == nullptr) {
            m.type = message::kind::notification;
        } else if (id_ok) {
            m.type = message::kind::request;
            m.id = std::move(*id);
        } else {
            m.problem = "id must be a string or an integer";
        }
        return m;
    }
    if (auto* err = o->if_contains("error")) {
        m.type = message::kind::error;
        if (id) m.id = std::move(*id);
        if (auto* eo = err->if_object()) {
            if (auto* c = eo->if_contains("code"); c && c->is_int64()) m.error_code = static_cast<int>(c->get_int64());
            if (auto* msg = eo->if_contains("message"); msg && msg->is_string()) m.error_message = std::string(msg->get_string());
            if (auto* d = eo->if_contains("data")) m.error_data = std::move(*d);
        }
        return m;
    }
    if (auto* res = o->if_contains("result")) {
        if (!id_ok) {
            m.problem = "response without a valid id";
            return m;
        }
        m.type = message::kind::response;
        m.id = std::move(*id);
        m.result = std::move(*res);
        return m;
    }
    m.problem = "neither a request, a notification nor a response";
    return m;
}

message parse_message(std::string_view text) {
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = 128;
    auto v = json::parse(text, ec, {}, opts);
    if (ec) {
        message m;
        m.problem = "invalid JSON: " + ec.message();
        return m;
    }
    return classify(std::move(v));
}

std::string make_request(json::value const& id, std::string_view method, json::value const& params) {
    json::object o{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null()) o["params"] = params;
    return json::serialize(o);
}

std::string make_notification(std::string_view method, json::value const& params) {
    json::object o{{"jsonrpc", "2.0"}, {"method", method}};
    if (!params.is_null()) o["params"] = params;
    return json::serialize(o);
}

std::string make_result(json::value const& id, json::value const& result) {
    return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", result}});
}

std::string make_error(json::value const& id, int code, std::string_view message) {
    return json::serialize(
        json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", json::object{{"code", code}, {"message", message}}}});
}

void line_framer::feed(std::string_view bytes, std::vector<std::string>& lines, std::size_t& oversized) {
    while (!bytes.empty()) {
        auto nl = bytes.find('\n');
        auto piece = bytes.substr(0, nl);
        if (skipping_) {
            if (nl == std::string_view::npos) return;
            skipping_ = false;
        } else if (partial_.size() + piece.size() > max_) {
            partial_.clear();
            ++oversized;
            if (nl == std::string_view::npos) {
                skipping_ = true;
                return;
            }
        } else if (nl == std::string_view::npos) {
            partial_.append(piece);
            return;
        } else {
            partial_.append(piece);
            if (!partial_.empty() && partial_.back() == '\r') partial_.pop_back();
            if (!partial_.empty()) lines.push_back(std::move(partial_));
            partial_.clear();
        }
        bytes.remove_prefix(nl + 1);
    }
}

std::string id_key(json::value const& id) { return json::serialize(id); }

}  // namespace toolgate::mcp
