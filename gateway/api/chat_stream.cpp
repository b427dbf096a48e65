// Reading the chat route's stream back (chat_stream.hpp).
#include "gateway/api/chat_stream.hpp"

#include <algorithm>

#include "common/json_util.hpp"

namespace toolgate::gateway {

namespace json = boost::json;

void chat_stream_reader::block(std::string_view text, std::vector<chat_stream_item>& out) const {
    std::string data;
    bool comment = false;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto nl = text.find('\n', pos);
        auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.starts_with(":")) {
            comment = true;
        } else if (line.starts_with("data:")) {
            auto v = line.substr(5);
            if (v.starts_with(" ")) v.remove_prefix(1);
            if (!data.empty()) data += "\n";
            data += v;
        }
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    chat_stream_item item;
    if (data.empty()) {
        if (!comment) return;
        item.what = chat_stream_item::kind::comment;
    } else if (data == "[DONE]") {
        item.what = chat_stream_item::kind::done;
    } else {
        boost::system::error_code ec;
        auto v = parse_bounded(data, ec);
        if (ec || !v.is_object()) return;
        if (auto const* e = v.get_object().if_contains("error")) {
            item.what = chat_stream_item::kind::error;
            if (auto const* eo = e->if_object()) item.object = *eo;
        } else {
            item.object = std::move(v.get_object());
        }
    }
    out.push_back(std::move(item));
}

void chat_stream_reader::feed(std::string_view bytes, std::vector<chat_stream_item>& out) {
    pending_.append(bytes);
    std::size_t start = 0;
    for (;;) {
        auto end = pending_.find("\n\n", start);
        if (end == std::string::npos) break;
        block(std::string_view(pending_).substr(start, end - start), out);
        start = end + 2;
    }
    pending_.erase(0, start);
}

void chat_stream_reader::finish(std::vector<chat_stream_item>& out) {
    if (pending_.empty()) return;
    auto rest = std::move(pending_);
    pending_.clear();
    block(rest, out);
}

std::int64_t call_indexer::index_of(boost::json::object const& fragment) {
    if (auto const* i = fragment.if_contains("index"); i && (i->is_int64() || i->is_uint64())) {
        auto index = i->is_int64() ? i->get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(i->get_uint64(), 1u << 30));
        top_ = std::max(top_, index);
        return index;
    }
    auto const* id = fragment.if_contains("id");
    if (id && id->is_string() && !id->get_string().empty() && id->get_string() != last_id_) {
        last_id_ = std::string(id->get_string());
        last_ = top_ + 1;
    }
    top_ = std::max(top_, last_);
    return last_;
}

}  // namespace toolgate::gateway
