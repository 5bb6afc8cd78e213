#!/usr/bin/env bash
# Sets up a fresh Debian machine for rackep and builds it into build/:
#   1. installs the Debian packages rackep depends on (only those missing; sudo when not root);
#   2. configures with CMake (the CUDA backend turns itself on when nvcc is found) and builds.
# Safe to re-run: an existing build/ is reused incrementally.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(cmake g++ make pkg-config libsimgrid-dev nlohmann-json3-dev libcli11-dev libspdlog-dev
          libgtest-dev libbenchmark-dev libglpk-dev zlib1g-dev python3-dev pybind11-dev python3-numpy
          libopenmpi-dev openmpi-bin
          clang libclang-rt-14-dev)  # clang + compiler-rt: the sanitizer build and fuzzers of tools/test.sh
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

jobs="$(nproc)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >&2
cmake --build build -j "$jobs" >&2
