#pragma once
// Putting back what pii-redact took out: with `restore: true` the placeholders ("<EMAIL_1>") the
// model echoes in its answer are replaced by the originals recorded in the request's scope before
// the client sees the answer. Only exact placeholders of this request are replaced; any other text
// in angle brackets is left as it is.
//
// Threads: both are plain functions of their arguments; a placeholder_restorer belongs to one
// stream (one request) and is used from one thread at a time. The scope must outlive it.
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include "guardrails/guardrail.hpp"

namespace toolgate::guardrails {

// `text` with every placeholder recorded in `s` replaced by its original.
std::string restore_placeholders(std::string_view text, scope const& s);

// The same for a streamed answer. feed() returns what can be relayed now: everything except a
// tail that could still grow into a placeholder ('<' followed by fewer [A-Z0-9_-] characters than
// the longest placeholder of the scope has), so "<EMA" + "IL_1> hi" restores. Text that cannot
// be a placeholder is released at once. finish() returns the held-back tail, as it is.
// Placeholders added to the scope after construction are picked up by the next feed().
class placeholder_restorer {
public:
    explicit placeholder_restorer(scope const& s);
    std::string feed(std::string_view chunk);
    std::string finish();

private:
    void index();

    scope const* s_;
    std::unordered_map<std::string, std::size_t> by_name_;  // placeholder -> index in s_->placeholders
    std::size_t indexed_ = 0;                               // entries of s_->placeholders indexed
    std::size_t longest_ = 0;                               // longest placeholder, '<' and '>' included
    std::string pending_;                                   // held back: a possible placeholder prefix
};

}  // namespace toolgate::guardrails
