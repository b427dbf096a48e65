#!/usr/bin/env bash
# A scripted agent session against a running toolgate on the default config (./scripts/start.sh in
# another terminal): chat completions, the agent loop, a client tool, then the same loop through the
# Responses and Messages APIs, and an MCP call approved by the client. Needs only curl. Usage: examples/agent_session.sh [BASE_URL]
set -euo pipefail
BASE="${1:-http://127.0.0.1:8080}/v1"
post() { curl -sS --fail-with-body "$BASE/chat/completions" -H 'content-type: application/json' "$@"; echo; }

echo "== 1. A plain reply (no tools needed)"
post -d '{"model":"toolgate-demo","messages":[{"role":"user","content":"hello"}]}'

echo; echo "== 2. The agent loop: the model calls the demo MCP server's get_current_time; toolgate runs it"
echo "   and returns the final answer, with usage summed over both turns and a 'toolgate' record"
post -d '{"model":"toolgate-demo","messages":[{"role":"user","content":"what time is it?"}]}'

echo; echo "== 3. The same, streamed: one assistant message; tool activity as SSE comments (': tool ...')"
post -N -d '{"model":"toolgate-demo","stream":true,"stream_options":{"include_usage":true},
             "messages":[{"role":"user","content":"please add two numbers"}]}'

echo "== 4. A client tool: the client declares get_weather itself, so the call comes back to it"
TOOLS='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
FIRST=$(post -d '{"model":"toolgate-demo","tools":'"$TOOLS"',"messages":[{"role":"user","content":"weather in Paris?"}]}')
echo "$FIRST"
CALL_ID=$(printf '%s' "$FIRST" | grep -o '"id":"call_[^"]*"' | head -1 | cut -d'"' -f4)
ASSISTANT=$(printf '%s' "$FIRST" | grep -o '"message":{.*}]}' | sed 's/^"message"://; s/,"logprobs".*$//')

echo; echo "== 5. The client runs get_weather and posts the result back; the loop continues"
post -d '{"model":"toolgate-demo","tools":'"$TOOLS"',"messages":[
  {"role":"user","content":"weather in Paris?"},
  '"$ASSISTANT"',
  {"role":"tool","tool_call_id":"'"$CALL_ID"'","content":"sunny, 21 C"}]}'

echo; echo "== 6. MCP switched off for one request: the model has no tools and just replies"
post -H 'x-toolgate-mcp-servers: none' -d '{"model":"toolgate-demo","messages":[{"role":"user","content":"what time is it?"}]}'

echo; echo "== 7. The same agent loop through the OpenAI Responses API, MCP tools named the Responses way"
curl -sS --fail-with-body "$BASE/responses" -H 'content-type: application/json' \
  -d '{"model":"toolgate-demo","input":"what time is it?","tools":[{"type":"mcp","server_label":"toolgate"}]}'
echo

echo; echo "== 8. And through the Anthropic Messages API (what Anthropic's SDKs and Claude Code speak), streamed"
curl -sS -N --fail-with-body "$BASE/messages" -H 'content-type: application/json' -H 'x-api-key: unused' \
  -d '{"model":"toolgate-demo","max_tokens":200,"stream":true,"messages":[{"role":"user","content":"what time is it?"}]}'

echo; echo; echo "== 9. An MCP tool that needs the user's approval (Responses API): the call comes back as an"
echo "   mcp_approval_request; the client approves it and the gateway runs it and answers"
MCP_APPROVE='[{"type":"mcp","server_label":"toolgate","require_approval":"always"}]'
ASK=$(curl -sS --fail-with-body "$BASE/responses" -H 'content-type: application/json' \
  -d '{"model":"toolgate-demo","input":"what time is it?","tools":'"$MCP_APPROVE"'}')
echo "$ASK"
RESP_ID=$(printf '%s' "$ASK" | grep -o '"id":"resp_[^"]*"' | head -1 | cut -d'"' -f4)
APPROVAL_ID=$(printf '%s' "$ASK" | grep -o '"id":"mcpr_[^"]*"' | head -1 | cut -d'"' -f4)
curl -sS --fail-with-body "$BASE/responses" -H 'content-type: application/json' \
  -d '{"model":"toolgate-demo","tools":'"$MCP_APPROVE"',"previous_response_id":"'"$RESP_ID"'",
       "input":[{"type":"mcp_approval_response","approval_request_id":"'"$APPROVAL_ID"'","approve":true}]}'
echo
