#!/usr/bin/env bash
# Sets up, builds (with AddressSanitizer and UndefinedBehaviorSanitizer) and runs every test, then
# the fuzz targets for a bounded time and the ThreadSanitizer suites.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache hits across clones in different directories
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
./scripts/setup.sh
BUILD="${TOOLGATE_TEST_BUILD_DIR:-build-test}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOOLGATE_SANITIZE=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$BUILD" --output-on-failure --timeout 600
# A bounded fuzz run of every parser target (clang + libFuzzer; scripts/fuzz.sh 600 for a long one).
FUZZ_SEED="${FUZZ_SEED:-1}" ./scripts/fuzz.sh "${TOOLGATE_FUZZ_SECONDS:-15}"
# The concurrency-heavy suites under ThreadSanitizer (TOOLGATE_TEST_TSAN=0 leaves them out).
if [ "${TOOLGATE_TEST_TSAN:-1}" = 1 ]; then ./scripts/tsan.sh; fi
