#!/usr/bin/env bash
# A scripted walk through server-side sessions against a running toolgate on examples/sessions.yaml
# (build/toolgate serve --config examples/sessions.yaml in another terminal). Needs only curl.
# Usage: examples/session_walkthrough.sh [BASE_URL]
set -euo pipefail
BASE="${1:-http://127.0.0.1:8080}/v1"
say() { printf '\n== %s\n' "$*"; }
json_field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
chat() {  # chat SESSION BODY
  curl -sS --fail-with-body "$BASE/chat/completions" -H 'content-type: application/json' -H "x-session-id: $1" -d "$2"
  echo
}

say "1. Create a session with a system prompt and metadata"
SESSION=$(curl -sS --fail-with-body "$BASE/sessions" -H 'content-type: application/json' \
  -d '{"system":"You are a helpful travel agent.","metadata":{"user":"ada"}}')
echo "$SESSION"
ID=$(printf '%s' "$SESSION" | json_field id)

say "2. First message: the client sends only it"
chat "$ID" '{"model":"toolgate-demo","messages":[{"role":"user","content":"I want to visit Lisbon"}]}'

say "3. Second message: the model sees the whole conversation (turn 2, and how it began)"
chat "$ID" '{"model":"toolgate-demo","messages":[{"role":"user","content":"for three days in May"}]}'

say "4. Streamed, still in the same conversation"
curl -sS -N --fail-with-body "$BASE/chat/completions" -H 'content-type: application/json' -H "x-session-id: $ID" \
  -d '{"model":"toolgate-demo","stream":true,"messages":[{"role":"user","content":"and a hotel near the river"}]}'

say "5. A client tool inside the session: the call comes back to the client ..."
TOOLS='[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]'
FIRST=$(chat "$ID" '{"model":"toolgate-demo","tools":'"$TOOLS"',"messages":[{"role":"user","content":"what is the weather there?"}]}')
echo "$FIRST"
CALL_ID=$(printf '%s' "$FIRST" | grep -o '"id":"call_[^"]*"' | head -1 | cut -d'"' -f4)

say "   ... and the client posts only the tool result: the session has the call"
chat "$ID" '{"model":"toolgate-demo","tools":'"$TOOLS"',"messages":[{"role":"tool","tool_call_id":"'"$CALL_ID"'","content":"sunny, 24 C"}]}'

say "6. The stored history (max_messages 8: the oldest turns were trimmed, the system prompt kept)"
curl -sS --fail-with-body "$BASE/sessions/$ID"; echo

say "7. The sessions of this caller"
curl -sS --fail-with-body "$BASE/sessions?limit=5"; echo

say "8. Delete it; using it again answers 410 session_expired"
curl -sS --fail-with-body -X DELETE "$BASE/sessions/$ID"; echo
curl -sS "$BASE/chat/completions" -H 'content-type: application/json' -H "x-session-id: $ID" \
  -d '{"model":"toolgate-demo","messages":[{"role":"user","content":"hello?"}]}' -w '\nHTTP %{http_code}\n'
