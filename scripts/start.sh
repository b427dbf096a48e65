#!/usr/bin/env bash
# Sets up, builds and starts toolgate on the shipped default config (offline demo model; real
# providers are added when OPENAI_API_KEY and friends are set). Extra arguments go to `serve`,
# e.g. ./scripts/start.sh --listen 127.0.0.1:9090
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones in different directories
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
TOOLGATE_SKIP_NPM=1 ./scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target toolgate
cat <<'MSG'

toolgate is starting. Try it from another terminal:
  curl -s http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"toolgate-demo","messages":[{"role":"user","content":"hello"}]}'
  # the agent loop: the demo model calls the built-in demo MCP server's get_current_time tool,
  # toolgate runs it and streams the final answer
  curl -sN http://127.0.0.1:8080/v1/chat/completions -H 'content-type: application/json' \
    -d '{"model":"toolgate-demo","stream":true,"messages":[{"role":"user","content":"what time is it?"}]}'
Stop it with Ctrl-C.

MSG
exec ./build/toolgate serve --config examples/gateway.yaml "$@"
