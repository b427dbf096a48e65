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

void line_framer::keep_tail(std::string_view piece) {
    constexpr std::size_t keep = 256;
    if (piece.size() >= keep) {
        tail_.assign(piece.substr(piece.size() - keep));
    } else {
        tail_.append(piece);
        if (tail_.size() > keep) tail_.erase(0, tail_.size() - keep);
    }
}

void line_framer::feed(std::string_view bytes, std::vector<std::string>& lines, std::size_t& oversized,
                       std::vector<std::int64_t>* dropped_ids) {
    constexpr std::size_t keep = 256;
    while (!bytes.empty()) {
        auto nl = bytes.find('\n');
        auto piece = bytes.substr(0, nl);
        if (skipping_) {
            keep_tail(piece);
            if (nl == std::string_view::npos) return;
            skipping_ = false;
            if (dropped_ids)
                if (auto id = answer_id_of_ends(head_, tail_)) dropped_ids->push_back(*id);
        } else if (partial_.size() + piece.size() > max_) {
            head_.assign(partial_, 0, keep);
            if (head_.size() < keep) head_.append(piece.substr(0, keep - head_.size()));
            tail_.clear();
            keep_tail(partial_.size() > keep ? std::string_view(partial_).substr(partial_.size() - keep) : partial_);
            keep_tail(piece);
            partial_.clear();
            partial_.shrink_to_fit();
            ++oversized;
            if (nl == std::string_view::npos) {
                skipping_ = true;
                return;
            }
            if (dropped_ids)
                if (auto id = answer_id_of_ends(head_, tail_)) dropped_ids->push_back(*id);
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

namespace {

// `"id"` `:` a number, at `at` (spaces allowed around the colon); the number and where it ends.
std::optional<std::pair<std::int64_t, std::size_t>> id_member(std::string_view s, std::size_t at) {
    auto skip = [&](std::size_t i) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        return i;
    };
    at = skip(at);
    if (s.substr(at, 4) != "\"id\"") return std::nullopt;
    at = skip(at + 4);
    if (at >= s.size() || s[at] != ':') return std::nullopt;
    at = skip(at + 1);
    std::size_t end = at;
    while (end < s.size() && end - at < 19 && s[end] >= '0' && s[end] <= '9') ++end;
    if (end == at || end - at > 18) return std::nullopt;
    // The whole number: what follows is the end of the member (7.5, 7e2 are no ids of ours).
    auto next = skip(end);
    if (next < s.size() && s[next] != ',' && s[next] != '}') return std::nullopt;
    return std::pair{std::stoll(std::string(s.substr(at, end - at))), end};
}

}  // namespace

std::optional<std::int64_t> answer_id_of_ends(std::string_view head, std::string_view tail) {
    // A request of the server (sampling, elicitation) carries an id of its own numbering, which may
    // equal one of ours: never guessed.
    if (head.find("\"method\"") != std::string_view::npos || tail.find("\"method\"") != std::string_view::npos)
        return std::nullopt;
    // The head: {"id":N  or  {"jsonrpc":"2.0","id":N
    if (!head.empty() && head[0] == '{') {
        if (auto m = id_member(head, 1)) return m->first;
        constexpr std::string_view jsonrpc = "\"jsonrpc\":\"2.0\",";
        if (head.substr(1, jsonrpc.size()) == jsonrpc)
            if (auto m = id_member(head, 1 + jsonrpc.size())) return m->first;
    }
    // The tail: ,"id":N}  (the last member)
    while (!tail.empty() && (tail.back() == '\r' || tail.back() == ' ')) tail.remove_suffix(1);
    if (tail.empty() || tail.back() != '}') return std::nullopt;
    for (auto at = tail.rfind(','); at != std::string_view::npos; at = at == 0 ? std::string_view::npos : tail.rfind(',', at - 1)) {
        auto m = id_member(tail, at + 1);
        if (!m) continue;
        auto end = m->second;
        while (end < tail.size() && tail[end] == ' ') ++end;
        if (end + 1 == tail.size()) return m->first;
        break;  // the last comma before an id that is not the last member
    }
    return std::nullopt;
}

std::string id_key(json::value const& id) { return json::serialize(id); }

}  // namespace toolgate::mcp
