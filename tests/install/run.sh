#!/usr/bin/env bash
# Installs the build tree into a temporary prefix inside it, then configures, builds and runs the consumer
# project (tests/install/consumer) against that prefix with find_package(rackep).
# Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$1"; src="$2"
work="$build/install-test"
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work.log" 2>&1 || { cat "$work.log"; exit 1; }
test -f "$work/prefix/lib/cmake/rackep/rackepConfig.cmake"
test -f "$work/prefix/include/rackep/core/balancer.hpp"
test -x "$work/prefix/bin/rackep"
cmake -S "$src/tests/install/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER}
cmake --build "$work/consumer" -j 2
"$work/consumer/consumer" "$src/configs/models/deepseek-v2-lite.json"
