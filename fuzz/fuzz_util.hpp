// File: fuzz/fuzz_util.hpp
// What every libFuzzer harness of fuzz/ shares: a private scratch directory, writing the input to a file
// (most parsers read paths), and draining a record stream. A harness catches rackep::InputError only: any
// other exception, a crash, a leak, undefined behaviour or an allocation over -malloc_limit_mb is a finding.
// Usage (see tools/fuzz.sh):
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     const std::string p = rackep::fuzz::put("x.npy", data, size);
//     rackep::fuzz::refuse([&] { rackep::read_npy_info(p); });
//     return 0;
//   }
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.hpp"
#include "traces/trace_format.hpp"

namespace rackep::fuzz {

/// A directory of this process under $TMPDIR (or /tmp), created on first use.
inline const std::string& scratch() {
  static const std::string dir = [] {
    const char* t = std::getenv("TMPDIR");
    const std::string d =
        std::string(t != nullptr ? t : "/tmp") + "/rackep-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

/// Writes `size` bytes to `<scratch>/<name>` (replacing it) and returns the path.
inline std::string put(const std::string& name, const uint8_t* data, size_t size) {
  const std::string p = scratch() + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

/// Runs `f`; an InputError is the expected answer to bad input, anything else propagates (a finding).
template <class F>
void refuse(F&& f) {
  try {
    f();
  } catch (const InputError&) {
  }
}

/// Reads every record of `s`.
inline void drain(RecordStream& s) {
  TraceRecord r;
  while (s.next(r)) {
  }
}

}  // namespace rackep::fuzz
