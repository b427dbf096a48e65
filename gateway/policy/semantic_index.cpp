// The semantic cache's vector groups (semantic_index.hpp): a flat scan while small, an HNSW graph
// (hnswlib) once large. hnswlib 0.6 is not safe for a search during an insertion: every change
// here holds the index's lock alone, searches share it (concurrent searches are safe).
#include "gateway/policy/semantic_index.hpp"

// hnswlib's own SSE code prefetches one link past the end of a list (an out-of-bounds read that
// AddressSanitizer reports): it is turned off, and the distance below is ours.
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>

#include "state/cache_store.hpp"

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

// Inner product of unit vectors as a distance (1 - cosine), with the dot product above.
float unit_distance(void const* a, void const* b, void const* dims) {
    return 1.0f - dot(static_cast<float const*>(a), static_cast<float const*>(b), *static_cast<std::size_t const*>(dims));
}

class unit_space final : public hnswlib::SpaceInterface<float> {
public:
    explicit unit_space(std::size_t dims) : dims_(dims) {}
    std::size_t get_data_size() override { return dims_ * sizeof(float); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return &unit_distance; }
    void* get_dist_func_param() override { return &dims_; }

private:
    std::size_t dims_;
};

// Graph parameters: 12 links per node, 64 candidates while building and while searching.
constexpr std::size_t graph_links = 12;
constexpr std::size_t graph_build_ef = 64;
constexpr std::size_t graph_search_ef = 64;
constexpr std::size_t queue_limit = 4096;
constexpr std::size_t graph_neighbours = 8;

}  // namespace

struct semantic_index::group {
    std::size_t dims = 0;
    // Flat: dims floats per entry.
    std::vector<float> data;
    std::vector<std::string> keys;
    std::vector<std::int64_t> expires;
    std::unordered_map<std::string, std::size_t> slot;
    // Graph: entries by label (their vectors live in the graph).
    std::unique_ptr<unit_space> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
    struct entry {
        std::string key;
        std::int64_t expires = 0;
    };
    std::unordered_map<std::size_t, entry> by_label;
    std::unordered_map<std::string, std::size_t> label_of;
    std::size_t next_label = 0;
    std::size_t deleted = 0;

    std::size_t size() const { return graph ? by_label.size() : keys.size(); }

    void remove_flat(std::size_t i) {
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

    // Removes `key`; false when it is not here.
    bool remove(std::string const& key) {
        if (!graph) {
            auto s = slot.find(key);
            if (s == slot.end()) return false;
            remove_flat(s->second);
            return true;
        }
        auto l = label_of.find(key);
        if (l == label_of.end()) return false;
        graph->markDelete(l->second);
        by_label.erase(l->second);
        label_of.erase(l);
        ++deleted;
        return true;
    }

    // A new, empty graph with room for `capacity` vectors.
    void build_graph(std::size_t capacity) {
        space = std::make_unique<unit_space>(dims);
        graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(space.get(), capacity, graph_links, graph_build_ef, 100);
        graph->setEf(graph_search_ef);
    }

    // Moves the flat entries into a graph.
    void to_graph() {
        build_graph(std::max<std::size_t>(keys.size() * 2, 1024));
        for (std::size_t i = 0; i < keys.size(); ++i) {
            auto label = next_label++;
            graph->addPoint(data.data() + i * dims, label);
            label_of[keys[i]] = label;
            by_label[label] = entry{keys[i], expires[i]};
        }
        data = {};
        keys = {};
        expires = {};
        slot = {};
    }

    // A graph with as many deleted nodes as live ones is built again from the live ones.
    void rebuild() {
        // The new graph is built beside the old one and replaces it only when complete.
        auto fresh_space = std::make_unique<unit_space>(dims);
        auto fresh = std::make_unique<hnswlib::HierarchicalNSW<float>>(
            fresh_space.get(), std::max<std::size_t>(by_label.size() * 2, 1024), graph_links, graph_build_ef, 100);
        fresh->setEf(graph_search_ef);
        std::unordered_map<std::size_t, entry> fresh_entries;
        std::unordered_map<std::string, std::size_t> fresh_labels;
        std::size_t label = 0;
        for (auto const& [old_label, e] : by_label) {
            auto v = graph->getDataByLabel<float>(old_label);
            fresh->addPoint(v.data(), label);
            fresh_labels[e.key] = label;
            fresh_entries[label] = e;
            ++label;
        }
        graph = std::move(fresh);
        space = std::move(fresh_space);
        by_label = std::move(fresh_entries);
        label_of = std::move(fresh_labels);
        next_label = label;
        deleted = 0;
    }

    void add_to_graph(std::string const& key, std::vector<float> const& v, std::int64_t expires_ms) {
        if (auto l = label_of.find(key); l != label_of.end()) {
            graph->addPoint(v.data(), l->second);  // replaces the vector
            by_label[l->second].expires = expires_ms;
            return;
        }
        if (graph->cur_element_count >= graph->max_elements_) {
            if (deleted * 2 >= graph->cur_element_count) rebuild();
            else graph->resizeIndex(graph->max_elements_ * 2);
        }
        auto label = next_label++;
        graph->addPoint(v.data(), label);
        label_of[key] = label;
        by_label[label] = entry{key, expires_ms};
    }

    std::optional<match> best(std::vector<float> const& q, float threshold, std::int64_t now_ms) const {
        std::optional<match> out;
        float top = threshold;
        auto consider = [&](std::string const& key, std::int64_t expires, float s) {
            if (expires <= now_ms || s < top) return;
            top = s;
            if (!out) out.emplace();
            out->key = key;
            out->score = s;
        };
        if (!graph) {
            for (std::size_t i = 0; i < keys.size(); ++i) consider(keys[i], expires[i], dot(data.data() + i * dims, q.data(), dims));
            return out;
        }
        auto found = graph->searchKnn(q.data(), graph_neighbours);
        while (!found.empty()) {
            auto [distance, label] = found.top();  // inner-product distance: 1 - cosine
            found.pop();
            auto e = by_label.find(label);
            if (e != by_label.end()) consider(e->second.key, e->second.expires, 1.0f - distance);
        }
        return out;
    }
};

semantic_index::semantic_index(std::size_t max_entries, std::size_t flat_limit)
    : max_entries_(max_entries), flat_limit_(std::max<std::size_t>(flat_limit, 16)) {}

semantic_index::~semantic_index() {
    {
        std::lock_guard lock(queue_mu_);
        stop_ = true;
    }
    queue_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void semantic_index::drop(std::string const& group_key, std::string const& key) {
    auto g = groups_.find(group_key);
    if (g == groups_.end() || !g->second->remove(key)) return;
    --count_;
    if (g->second->size() == 0) groups_.erase(g);
}

void semantic_index::add(std::string const& group_key, std::string const& key, std::vector<float> vector,
                         std::int64_t expires_ms) {
    if (max_entries_ == 0 || !normalize(vector)) return;
    {
        // A flat group that stays flat: microseconds, done now, unless the indexing thread holds
        // the index (then it queues like the rest).
        std::unique_lock lock(mu_, std::try_to_lock);
        if (lock.owns_lock()) {
            auto g = groups_.find(group_key);
            if (g == groups_.end() || (!g->second->graph && g->second->size() < flat_limit_)) {
                apply(group_key, key, vector, expires_ms);
                published_count_.store(count_, std::memory_order_relaxed);
                return;
            }
        }
    }
    std::lock_guard lock(queue_mu_);
    if (stop_ || queue_.size() >= queue_limit) return;  // too much to index: this one is only cached exactly
    queue_.push_back(pending{group_key, key, std::move(vector), expires_ms});
    if (!thread_.joinable()) thread_ = std::thread([this] { indexer(); });
    queue_cv_.notify_one();
}

void semantic_index::indexer() {
    std::unique_lock lock(queue_mu_);
    for (;;) {
        queue_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        auto next = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
        lock.unlock();
        try {
            std::unique_lock index_lock(mu_);
            apply(next.group, next.key, next.vector, next.expires_ms);
            published_count_.store(count_, std::memory_order_relaxed);
        } catch (std::exception const&) {
            // Out of memory in a container or the graph: this entry is not indexed; the index stays
            // consistent (every change below either completes or is undone by its own guard).
        }
        lock.lock();
        busy_ = false;
        queue_cv_.notify_all();
    }
}

void semantic_index::wait_idle() {
    std::unique_lock lock(queue_mu_);
    queue_cv_.wait(lock, [this] { return stop_ || (queue_.empty() && !busy_); });
}

void semantic_index::apply(std::string const& group_key, std::string const& key, std::vector<float>& vector,
                           std::int64_t expires_ms) {
    auto& slot = groups_[group_key];
    if (!slot) slot = std::make_unique<group>();
    auto& g = *slot;
    if (g.size() == 0) g.dims = vector.size();
    if (vector.size() != g.dims) return;
    if (g.graph) {
        bool fresh = !g.label_of.count(key);
        try {
            g.add_to_graph(key, vector, expires_ms);
        } catch (std::exception const&) {
            return;  // hnswlib could not allocate: this entry is not kept (the cache only misses)
        }
        if (!fresh) return;
    } else if (auto s = g.slot.find(key); s != g.slot.end()) {
        std::copy(vector.begin(), vector.end(), g.data.begin() + s->second * g.dims);
        g.expires[s->second] = expires_ms;
        return;
    } else {
        g.slot.emplace(key, g.keys.size());
        g.keys.push_back(key);
        g.expires.push_back(expires_ms);
        g.data.insert(g.data.end(), vector.begin(), vector.end());
        if (g.keys.size() > flat_limit_) {
            auto held = g.keys.size();
            try {
                g.to_graph();
            } catch (std::exception const&) {
                // No room for a graph: the group is dropped (its answers stay cached exactly).
                count_ -= held - 1;
                groups_.erase(group_key);
                return;
            }
        }
    }
    ++count_;
    order_.emplace_back(group_key, key);
    while (count_ > max_entries_ && !order_.empty()) {
        auto [og, ok] = std::move(order_.front());
        order_.pop_front();
        drop(og, ok);
    }
    // The order list may also name entries erased since (an admin clear): past twice what is
    // held, it is rebuilt from what is still there, so that it never loses a live entry.
    if (order_.size() > 2 * count_ + 64) compact_order();
}

void semantic_index::compact_order() {
    std::deque<std::pair<std::string, std::string>> kept;
    for (auto& entry : order_) {
        auto g = groups_.find(entry.first);
        if (g == groups_.end()) continue;
        auto const& d = *g->second;
        bool live = d.graph ? d.label_of.count(entry.second) > 0 : d.slot.count(entry.second) > 0;
        if (live) kept.push_back(std::move(entry));
    }
    order_ = std::move(kept);
}

std::optional<semantic_index::match> semantic_index::best(std::string const& group_key, std::vector<float> const& vector,
                                                           float threshold, std::int64_t now_ms) const {
    auto q = vector;
    if (!normalize(q)) return std::nullopt;
    std::shared_lock lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) return std::nullopt;  // the indexing thread is changing it: a miss, not a wait
    auto g = groups_.find(group_key);
    if (g == groups_.end() || g->second->dims != q.size()) return std::nullopt;
    try {
        return g->second->best(q, threshold, now_ms);
    } catch (std::exception const&) {
        return std::nullopt;
    }
}

void semantic_index::erase(std::string_view scope_part, std::string_view model_part) {
    std::unique_lock lock(mu_);
    for (auto g = groups_.begin(); g != groups_.end();) {
        auto& d = *g->second;
        std::vector<std::string> gone;
        if (d.graph) {
            for (auto const& [label, e] : d.by_label)
                if (state::cache_key_matches(e.key, scope_part, model_part)) gone.push_back(e.key);
        } else {
            for (auto const& k : d.keys)
                if (state::cache_key_matches(k, scope_part, model_part)) gone.push_back(k);
        }
        for (auto const& k : gone)
            if (d.remove(k)) --count_;
        if (d.size() == 0) g = groups_.erase(g);
        else ++g;
    }
    published_count_.store(count_, std::memory_order_relaxed);
}

std::size_t semantic_index::size() const { return published_count_.load(std::memory_order_relaxed); }

std::size_t semantic_index::graph_groups() const {
    std::shared_lock lock(mu_);
    std::size_t n = 0;
    for (auto const& [k, g] : groups_) n += g->graph ? 1 : 0;
    return n;
}

}  // namespace toolgate::gateway::policy
