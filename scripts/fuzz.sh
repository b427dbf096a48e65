#!/usr/bin/env bash
# Builds the fuzz targets with clang and libFuzzer (ASan + UBSan) and runs each for a bounded time
# on its corpus (tests/fuzz/corpus/<target>, grown in a scratch copy; new crashes are left in
# build-fuzz/crashes/<target>/). usage: scripts/fuzz.sh [seconds per target, default 30] [targets...]
# A crash fails the run: fix it, then copy its input into tests/fuzz/corpus/<target>/ so the normal
# test build replays it (ctest -R fuzz_replay).
# FUZZ_SEED fixes libFuzzer's random seed (scripts/test.sh sets 1, so that the bounded run in CI
# retraces the run that was checked before it landed); unset, every run explores anew.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
SECONDS_PER="${1:-30}"
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  TARGETS=(sse redis_reply redis_url jsonrpc tool_names native_wire openai_stream mcp_http server_session guardrails
           config http_request eventstream oauth cache ingress)
fi
BUILD=build-fuzz
# The whole project, every library instrumented (-DTOOLGATE_FUZZ=ON); only the fuzz targets are built.
if [ -f "$BUILD/CMakeCache.txt" ] && ! grep -q '^TOOLGATE_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then rm -rf "$BUILD"; fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DTOOLGATE_FUZZ=ON \
  >/dev/null
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=("fuzz_$t"); done
if ! cmake --build "$BUILD" -j"$(nproc)" --target "${build_targets[@]}" >"$BUILD.log" 2>&1; then
  grep -E 'error|FAILED' "$BUILD.log" | head -40
  echo "fuzz: the build failed; see $BUILD.log"
  exit 1
fi
[ "${FUZZ_BUILD_ONLY:-0}" = 1 ] && exit 0
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t" crashes="$BUILD/crashes/$t"
  mkdir -p "$work" "$crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
  dict=()
  if [ -f "tests/fuzz/$t.dict" ]; then dict=(-dict="tests/fuzz/$t.dict"); fi
  seed=()
  if [ -n "${FUZZ_SEED:-}" ]; then seed=(-seed="$FUZZ_SEED"); fi
  if "$BUILD/tests/fuzz/fuzz_$t" "${dict[@]}" "${seed[@]}" -max_total_time="$SECONDS_PER" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
       -artifact_prefix="$crashes/" -print_final_stats=1 "$work" >"$BUILD/fuzz_$t.log" 2>&1; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$BUILD/fuzz_$t.log" | grep -oE '[0-9]+$' || echo "?")
    echo "fuzz $t: ${SECONDS_PER}s, $runs inputs, no crash ($(ls "$work" | wc -l) in its corpus)"
  else
    echo "fuzz $t: CRASH; see $BUILD/fuzz_$t.log and $crashes/"
    tail -30 "$BUILD/fuzz_$t.log"
    status=1
  fi
done
exit $status
