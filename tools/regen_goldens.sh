#!/usr/bin/env bash
# Rewrites the golden outputs tests/goldens/<name>.json of every case in tests/goldens/cases.txt with what
# the current build prints (tests/tools/golden_test.cpp, RACKEP_REGEN_GOLDENS=1), then shows the diff to
# review. Usage: tools/regen_goldens.sh [build-dir] [name-prefix]   e.g.  tools/regen_goldens.sh build simulate
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
cmake --build "$build" -j "$(nproc)" --target rackep test_tools_goldens >&2
if [ -n "${2:-}" ]; then export RACKEP_GOLDENS_ONLY="$2"; fi
RACKEP_REGEN_GOLDENS=1 "$build/tests/tools/test_tools_goldens" --gtest_brief=1 >&2
git --no-pager diff --stat -- tests/goldens
