// The semantic cache's flat vector groups (semantic_index.hpp).
#include "gateway/policy/semantic_index.hpp"

#include "state/cache_store.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

namespace toolgate::gateway::policy {

namespace {

bool normalize(std::vector<float>& v) {
    double n = 0;
    for (float x : v) n += double(x) * x;
    if (n <= 0 || !std::isfinite(n)) return false;
    auto inv = static_cast<float>(1.0 / std::sqrt(n));
    for (auto& x : v) x *= inv;
    return true;
}

// Eight independent sums, so that the compiler can keep them in vector registers without
// reordering a single sum (which it may not do without -ffast-math).
float dot(float const* a, float const* b, std::size_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (std::size_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; ++i) s += a[i] * b[i];
    for (float x : acc) s += x;
    return s;
}

}  // namespace

void semantic_index::group_data::remove(std::size_t i) {
    auto last = keys.size() - 1;
    slot.erase(keys[i]);
    if (i != last) {
        std::copy(data.begin() + last * dims, data.begin() + (last + 1) * dims, data.begin() + i * dims);
        keys[i] = std::move(keys[last]);
        expires[i] = expires[last];
        slot[keys[i]] = i;
    }
    data.resize(last * dims);
    keys.pop_back();
    expires.pop_back();
}

void semantic_index::drop(std::string const& group, std::string const& key) {
    auto g = groups_.find(group);
    if (g == groups_.end()) return;
    auto s = g->second.slot.find(key);
    if (s == g->second.slot.end()) return;
    g->second.remove(s->second);
    --count_;
    if (g->second.keys.empty()) groups_.erase(g);
}

void semantic_index::add(std::string const& group, std::string const& key, std::vector<float> vector,
                         std::int64_t expires_ms) {
    if (max_entries_ == 0 || !normalize(vector)) return;
    std::unique_lock lock(mu_);
    auto& g = groups_[group];
    if (g.keys.empty()) g.dims = vector.size();
    if (vector.size() != g.dims) return;
    if (auto s = g.slot.find(key); s != g.slot.end()) {
        std::copy(vector.begin(), vector.end(), g.data.begin() + s->second * g.dims);
        g.expires[s->second] = expires_ms;
        return;
    }
    g.slot.emplace(key, g.keys.size());
    g.keys.push_back(key);
    g.expires.push_back(expires_ms);
    g.data.insert(g.data.end(), vector.begin(), vector.end());
    ++count_;
    order_.emplace_back(group, key);
    while (count_ > max_entries_ && !order_.empty()) {
        auto [og, ok] = std::move(order_.front());
        order_.pop_front();
        drop(og, ok);
    }
    // The order list may also name entries erased since: keep it from growing past twice the bound.
    while (order_.size() > 2 * max_entries_ + 16) order_.pop_front();
}

std::optional<semantic_index::match> semantic_index::best(std::string const& group, std::vector<float> const& vector,
                                                           float threshold, std::int64_t now_ms) const {
    auto q = vector;
    if (!normalize(q)) return std::nullopt;
    std::shared_lock lock(mu_);
    auto g = groups_.find(group);
    if (g == groups_.end() || g->second.dims != q.size()) return std::nullopt;
    auto const& d = g->second;
    std::optional<match> out;
    float top = threshold;
    for (std::size_t i = 0; i < d.keys.size(); ++i) {
        if (d.expires[i] <= now_ms) continue;
        float s = dot(d.data.data() + i * d.dims, q.data(), d.dims);
        if (s >= top) {
            top = s;
            if (!out) out.emplace();
            out->key = d.keys[i];
            out->score = s;
        }
    }
    return out;
}

void semantic_index::erase(std::string_view scope_part, std::string_view model_part) {
    std::unique_lock lock(mu_);
    for (auto g = groups_.begin(); g != groups_.end();) {
        auto& d = g->second;
        for (std::size_t i = d.keys.size(); i-- > 0;)
            if (state::cache_key_matches(d.keys[i], scope_part, model_part)) {
                d.remove(i);
                --count_;
            }
        if (d.keys.empty()) g = groups_.erase(g);
        else ++g;
    }
}

std::size_t semantic_index::size() const {
    std::shared_lock lock(mu_);
    return count_;
}

}  // namespace toolgate::gateway::policy
