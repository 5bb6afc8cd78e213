#!/usr/bin/env bash
# Configures (once) and builds build-asan/: clang, AddressSanitizer + UndefinedBehaviorSanitizer (any UB
# aborts), libFuzzer coverage, CUDA off, no Python module (an instrumented module cannot load into
# Debian's uninstrumented python3). Used by tools/test.sh (the whole suite) and tools/fuzz.sh.
#   bash tools/asan_build.sh [TARGET...]     # default: everything (tests, rackep, fuzz harnesses)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${RACKEP_ASAN_BUILD:-build-asan}"
if [ ! -f "$build/CMakeCache.txt" ]; then
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # -O1 with line tables: reports with file:line at half the compile time of -O2 -g.
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -gline-tables-only" \
    -DRACKEP_ENABLE_CUDA=OFF -DCMAKE_CXX_COMPILER=clang++ -DRACKEP_SANITIZE=ON -DRACKEP_FUZZ=ON \
    -DRACKEP_BUILD_BENCHMARKS=OFF -DRACKEP_BUILD_PYTHON=OFF "${launcher[@]}" >&2
fi
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}" >&2
