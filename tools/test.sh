#!/usr/bin/env bash
# The project's test command (README; .ci/run runs exactly this). Fails on any failure:
#   1. tools/bootstrap.sh: packages and the release build in build/;
#   2. the whole suite on build/;
#   3. the whole suite again under ASan + UBSan (build-asan/, tools/asan_build.sh);
#   4. a short fuzz pass: every libFuzzer harness for RACKEP_FUZZ_SECONDS (default 30) s (tools/fuzz.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS
bash tools/bootstrap.sh
ctest --test-dir build --output-on-failure -j 2
echo "test.sh: release suite passed ($((SECONDS - start)) s so far)" >&2
bash tools/asan_build.sh
# Leaks inside SimGrid's own one-per-process engine are not ours (tools/lsan.supp).
ASAN_OPTIONS="detect_leaks=1" LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp" \
  UBSAN_OPTIONS="print_stacktrace=1" ctest --test-dir build-asan --output-on-failure -j 2
echo "test.sh: sanitizer suite passed ($((SECONDS - start)) s so far)" >&2
RACKEP_FUZZ_NO_BUILD=1 RACKEP_FUZZ_SEED="${RACKEP_FUZZ_SEED:-1}" LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp" bash tools/fuzz.sh "${RACKEP_FUZZ_SECONDS:-30}"
echo "test.sh: all passed in $((SECONDS - start)) s" >&2
