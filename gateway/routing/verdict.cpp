// What the router does after one attempt: pure functions of the outcome and the target's policy.
#include "gateway/routing/router.hpp"

#include <algorithm>

namespace toolgate::gateway::routing {

bool counts_as_failure(turn_result const& r) {
    if (!r.error) return false;
    int s = r.upstream_status;
    if (s == 0) return r.error->status >= 500;  // no answer: connect error, timeout, reset
    if (s / 100 == 2) return true;              // an answer we could not use (malformed, cut short)
    return s >= 500 || s == 429 || s == 401 || s == 403 || s == 408;
}

verdict classify(turn_result const& r, bool cancelled, bool delivered, retry_policy const& policy, bool more_keys) {
    if (cancelled) return verdict::cancelled;
    if (!r.error) return verdict::success;
    if (delivered) return verdict::give_up;  // never mix two answers in one stream
    int s = r.upstream_status;
    // An answer we could not use (malformed, cut short) counts as the 502 the client would see.
    int as_status = s / 100 == 2 ? 502 : s;
    auto const& codes = policy.on_status_codes;
    bool listed = std::find(codes.begin(), codes.end(), as_status) != codes.end();
    if (s == 401 || s == 403) return more_keys ? verdict::rotate_key : verdict::next_target;
    if (s == 429 && more_keys) return verdict::rotate_key;
    if (s == 0) {
        // Refused before sending (this adapter cannot express the request): another may.
        if (r.error->status < 500) return verdict::next_target;
        return verdict::retry;
    }
    if (s / 100 == 2) return listed ? verdict::retry : verdict::next_target;
    if (listed) return verdict::retry;
    if (s >= 500 || s == 429 || s == 408) return verdict::next_target;
    return verdict::give_up;  // 400, 404, 413, 422...: the next target would refuse it alike
}

}  // namespace toolgate::gateway::routing
