#pragma once
// The agent loop: one client request in, one final assistant message out, with the gateway running
// the MCP tools the model calls in between. A turn goes to the model (through the same turn pipeline
// as any chat request); if the model calls gateway tools they run in parallel (bounded), their results
// are appended as tool messages and the next turn starts; client tools (the ones the client declared
// itself) are handed back to the client in the standard shape. Streaming relays every turn's tokens as
// they arrive, as ONE well-formed assistant message: no intermediate finish_reason, one role, tool
// activity as SSE comment lines. Every limit ends the loop with an honest message, never a hang.
//
// Everything here runs on the request's worker thread; tools may be served from any thread behind
// the toolbox interface.
#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/cancel.hpp"
#include "common/time_source.hpp"
#include "mcp/tool_outcome.hpp"
#include "providers/provider.hpp"

namespace toolgate::agentloop {

namespace asio = boost::asio;
namespace json = boost::json;

struct limits {
    unsigned max_iterations = 10;                     // model turns in one loop
    std::chrono::milliseconds tool_timeout{60'000};   // one tool call
    std::chrono::milliseconds loop_timeout{300'000};  // the whole loop, model turns and tools
    unsigned max_tool_calls_per_turn = 16;            // more in one turn are answered "not run"
    unsigned max_parallel_tools = 8;                  // calls of one turn running at once
    std::size_t max_tool_result_bytes = 64 * 1024;    // a longer result is cut, with a notice
    std::int64_t max_total_tokens = 0;                // prompt + completion over all turns; 0: none
    double max_cost_usd = 0;                          // over all turns; 0: none
    std::chrono::milliseconds keepalive_interval{10'000};  // SSE comment while tools run
};

// The gateway tools one request may use (the MCP aggregator in production, fakes in tests); the
// caller has already offered them to the model in the request's "tools".
class toolbox {
public:
    virtual ~toolbox() = default;
    virtual bool has(std::string_view name) const = 0;
    // Awaited on the request's executor; `cancel` fires on timeout or when the client leaves.
    virtual asio::awaitable<mcp::tool_outcome> call(std::string name, json::object arguments, cancel_token& cancel) = 0;
};

// One model turn, run by the gateway through its turn pipeline. `cancel` is the turn's own token: it
// fires when the request is cancelled or the loop's deadline passes.
using turn_fn = std::function<asio::awaitable<providers::chat_outcome>(providers::chat_request& request,
                                                                       providers::chat_sink* sink,
                                                                       cancel_token& cancel)>;

// What a turn's model name and usage cost, in USD; optional.
using cost_fn = std::function<double(std::string_view model, providers::usage const& tokens)>;

struct tool_call_record {
    std::string id;
    std::string name;
    std::chrono::microseconds duration{0};
    bool ok = false;    // ran and the tool did not report an error
    std::string error;  // why not: timeout, cancelled, tool_error, invalid_arguments, unknown_tool, not_run, ...
};

// Sees the gateway tool calls as they run (the Responses ingress shows them as mcp_call items).
// Called on the loop's thread, in order; must not block. In a streamed loop each call is followed
// by an SSE comment line ("tool NAME started" / "... done"), so a reader of the stream knows where
// the call happened among the tokens.
class loop_observer {
public:
    virtual ~loop_observer() = default;
    virtual void tool_started(std::string_view call_id, std::string_view name, std::string_view arguments) = 0;
    // `output`: the tool message the model reads (the result, or why the call failed).
    virtual void tool_finished(tool_call_record const& record, std::string_view output) = 0;
};

enum class stop_reason { none, max_iterations, loop_timeout, max_total_tokens, max_cost };
std::string_view to_string(stop_reason r);

// One tool call of the model, whole.
struct assembled_call {
    std::string id;
    std::string name;
    std::string arguments;
};

struct loop_input {
    json::object body;                             // the client's request with the gateway tools merged in
    std::unordered_set<std::string> client_tools;  // names of the tools the client declared itself
    bool stream = false;
    bool include_usage = false;              // the client asked for a usage chunk
    providers::chat_sink* sink = nullptr;    // streaming: the client's side
    cancel_token* cancel = nullptr;          // the request's token
    limits lim;
    toolbox* tools = nullptr;
    cost_fn cost;
    std::string fallback_model;  // names the model in the answer if the upstream did not
    toolgate::time_source* clock = nullptr;  // deadlines, keep-alives and durations; null: the steady clock
    loop_observer* observer = nullptr;
    // Gateway calls of the conversation's last assistant message to run before the first turn (a
    // call the client approved); their tool messages go after the body's messages.
    std::vector<assembled_call> run_first;
};

struct loop_result {
    // error set: the request failed (a model turn failed); else `response` holds the final answer
    // (non-streaming) and `tokens` the usage summed over all turns.
    providers::chat_outcome outcome;
    std::vector<tool_call_record> calls;
    unsigned iterations = 0;
    stop_reason stopped = stop_reason::none;
    std::string finish_reason;
    double cost_usd = 0;
    // The loop ended with client tool calls: their ids (for sessions::hybrid_turns, so the
    // follow-up request continues with the full conversation).
    std::vector<std::string> client_call_ids;
    // The messages the loop added on its own: each turn's assistant message with its tool calls,
    // and the tool results (ending with the client's calls when it handed them back).
    json::array transcript;
    // The final answer as one assistant message (the last turn's text, and the notice of a limit);
    // empty when the loop handed client calls back (their message ends the transcript).
    json::object final_message;
};

// ---- the decision after each model turn, without I/O ----

// Whose tool a call of the model names: a gateway (MCP) tool, run by the loop, or one the client
// declared, handed back to it.
enum class call_kind { undecided, client, gateway };

// What the loop has spent so far.
struct loop_counters {
    unsigned iterations = 0;  // model turns, this one included
    std::int64_t total_tokens = 0;
    double cost_usd = 0;
};

// What to do after a turn that ended with `calls` (in the model's order):
//   answer  no calls: the turn's text is the final answer;
//   stop    gateway calls, but a limit is reached: end with a notice (reason);
//   act     run `run` (gateway calls, at most max_tool_calls_per_turn), answer `refused` "not run",
//           then hand `hand_back` (the client's calls) back to the client, or start the next turn
//           when there are none.
struct step {
    enum class kind { answer, stop, act } what = kind::answer;
    stop_reason reason = stop_reason::none;
    std::vector<std::size_t> run, refused, hand_back;  // indexes into `calls`
};
step next_step(std::vector<call_kind> const& calls, loop_counters const& spent, limits const& lim,
               time_source::time_point now, time_source::time_point deadline);

// Runs the loop. Streaming: every chunk goes to in.sink, the final chunk (and the usage chunk) too;
// the caller ends the stream ("[DONE]") unless outcome.error is set.
asio::awaitable<loop_result> run(loop_input& in, turn_fn const& turn);

// A tool's answer as the text of a tool message: text parts joined, other parts described, cut at
// max_bytes (on a UTF-8 boundary) with a notice.
std::string tool_message_text(std::string_view tool, mcp::tool_outcome const& outcome, std::size_t max_bytes);

// Reassembles streamed tool-call fragments (OpenAI delta.tool_calls) by index.
class call_assembler {
public:
    // Merges one fragment; returns the position of the call it belongs to.
    std::size_t add(json::object const& fragment);
    std::vector<assembled_call> const& calls() const { return calls_; }
    void clear() {
        calls_.clear();
        by_index_.clear();
        last_index_ = 0;
    }

private:
    std::vector<assembled_call> calls_;
    std::unordered_map<std::int64_t, std::size_t> by_index_;
    std::int64_t last_index_ = 0;
};

}  // namespace toolgate::agentloop
