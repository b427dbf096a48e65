#pragma once
// A streamed answer through the after_request guardrails: the turn's sink wrapped so that each
// choice's content is held back by the plugins' window, checked as it grows, and released (with
// pii placeholders restored, tool-call arguments included) once no rule can match it any more.
// Internal to gateway/policy; one per streamed turn, on the turn's thread.
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>

#include "common/api_error.hpp"
#include "gateway/pipeline.hpp"
#include "gateway/policy/guardrails.hpp"
#include "guardrails/guardrail.hpp"

namespace toolgate::gateway::policy::detail {

class guarded_sink : public providers::chat_sink {
public:
    // The violation that ended the stream, if one did.
    virtual std::optional<api_error> const& error() const = 0;
    // The stream ended without a finish_reason for some choice: what is held is checked and sent
    // (nothing may be lost). False when that last check blocks (error() is set).
    virtual asio::awaitable<bool> drain() = 0;
};

// `inbound`: the request's placeholders (what restore puts back); `sc`: the request's scope. Both,
// `ctx` and `inner` outlive the sink.
std::unique_ptr<guarded_sink> make_guarded_sink(guardrail_settings const& s, turn_context& ctx, toolgate::guardrails::scope& sc,
                                                toolgate::guardrails::scope const& inbound, providers::chat_sink& inner);

// Whether a streamed turn needs the sink at all.
bool checks_streams(guardrail_settings const& s);

}  // namespace toolgate::gateway::policy::detail
