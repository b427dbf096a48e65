#pragma once
// One unit of a shared count held for a scope's lifetime (a connection, a request in flight, an
// agent loop); `before` is the count it found, for "is there room" checks.
#include <atomic>
#include <cstddef>

namespace toolgate {

struct held_count {
    explicit held_count(std::atomic<std::size_t>& c) : n(c), before(c.fetch_add(1, std::memory_order_relaxed)) {}
    held_count(held_count const&) = delete;
    held_count& operator=(held_count const&) = delete;
    ~held_count() { n.fetch_sub(1, std::memory_order_relaxed); }
    std::atomic<std::size_t>& n;
    std::size_t before;
};

}  // namespace toolgate
