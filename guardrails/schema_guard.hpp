#pragma once
// schema-guard beyond the guardrail interface: what the gateway does when an answer fails. Both
// functions read immutable data and may be called from any thread.
//
// Its verdicts name one of these rules:
//   schema                  the answer is JSON but does not validate; `detail` lists the errors, one
//                           per line ("/items/0/price: Value type not permitted by 'type' constraint.")
//   not_json                the answer is not one JSON value (or nests deeper than 64 levels)
//   response_format_schema  the request's response_format schema cannot be used (no repair helps)
//   schema_too_complex      validation needed more work than its bound (no repair helps)
// The errors describe the model's output, never secret input: the gateway may send them back to the
// model on repair.
#include <boost/json/fwd.hpp>

#include <memory>
#include <string>
#include <vector>

#include "guardrails/guardrail.hpp"

namespace toolgate::guardrails {

// One JSON Schema (draft 7 or 2020-12, as schema-guard reads it: RE2 patterns, bounded work),
// compiled once, for validating documents outside the guardrail chain (an AI endpoint's input and
// output). Immutable after construction: validate() may be called from any thread.
class json_schema {
public:
    // Throws config_error when the schema cannot be used.
    explicit json_schema(boost::json::value const& schema);
    ~json_schema();
    json_schema(json_schema const&) = delete;
    json_schema& operator=(json_schema const&) = delete;

    // Empty when `doc` validates; else the errors, one line each ("/input: ..."), at most
    // `max_errors` of them plus a "... and N more" line.
    std::vector<std::string> validate(boost::json::value const& doc, std::size_t max_errors = 20) const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// True when `g` is a schema-guard whose config says `on_failure: repair` (send the errors back to
// the model once, then answer 422); false for `reject` and for every other guardrail.
bool wants_repair(guardrail const& g);

// True when a repair turn can fix what `v` found (rules schema and not_json).
bool is_repairable(verdict const& v);

}  // namespace toolgate::guardrails
