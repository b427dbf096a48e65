#!/usr/bin/env bash
# Builds the concurrency-heavy suites with ThreadSanitizer (GCC, -DTOOLGATE_TSAN=ON in build-tsan)
# and runs them: the unit tests of common/ (task groups, cancellation), mcp/ (aggregator, client
# and server sessions), agentloop/, sessions/ and gateway/ (server start and shutdown, the app), then the
# end-to-end suites that drive the binary through shutdown, MCP servers and agent loops. Any
# report fails the run (halt_on_error). usage: scripts/tsan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
BUILD=build-tsan
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOOLGATE_TSAN=ON >/dev/null
UNITS=(common_tests mcp_tests agentloop_tests sessions_tests gateway_tests)
if ! cmake --build "$BUILD" -j"$(nproc)" --target "${UNITS[@]}" toolgate >"$BUILD.log" 2>&1; then
  grep -E 'error|FAILED' "$BUILD.log" | head -40
  echo "tsan: the build failed; see $BUILD.log"
  exit 1
fi
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
# hnswlib (the semantic cache's graph) takes its per-node mutexes in node-dependent order, which
# TSan reports as a potential deadlock, often with its stacks lost (so no suppression matches).
# toolgate only ever calls hnswlib from one thread at a time, under the semantic index's lock held
# alone; the two graph tests run in the ASan suite and are left out here.
declare -A FILTER=([gateway_tests]="-SemanticIndex.ALargeGroupMovesIntoAGraphAndStillFindsItsNeighbours:SemanticIndex.TheGraphIsBoundedOldestFirst")
for u in "${UNITS[@]}"; do
  if ! "$BUILD/tests/$u" --gtest_brief=1 --gtest_filter="${FILTER[$u]:-*}" >"$BUILD/$u.log" 2>&1; then
    echo "tsan: $u FAILED"
    grep -A40 -m1 'WARNING: ThreadSanitizer\|FAILED' "$BUILD/$u.log" | head -60
    exit 1
  fi
  echo "tsan: $u clean ($(grep -oE '[0-9]+ tests? from [0-9]+ test suites? ran' "$BUILD/$u.log" | head -1))"
done
for suite in integration mcp_client agent_loop mcp_oauth mcp_front_oauth cache sessions; do
  if ! (cd tests/e2e && TOOLGATE_BIN="$PWD/../../$BUILD/toolgate" node --test "$suite.test.mjs" >"../../$BUILD/e2e_$suite.log" 2>&1); then
    echo "tsan: e2e $suite FAILED"
    grep -B2 -A40 -m1 'WARNING: ThreadSanitizer\|not ok' "$BUILD/e2e_$suite.log" | head -60
    exit 1
  fi
  echo "tsan: e2e $suite clean ($(grep -E '^# pass' "$BUILD/e2e_$suite.log"))"
done
