// libFuzzer harness: the .npy reader (traces/npy.hpp), on a file and on bytes in memory.
#include "fuzz/fuzz_util.hpp"
#include "traces/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rackep::fuzz::refuse(
      [&] { rackep::parse_npy_header(reinterpret_cast<const char*>(data), size, "fuzz.npy"); });
  const std::string p = rackep::fuzz::put("fuzz.npy", data, size);
  rackep::fuzz::refuse([&] { rackep::read_npy_info(p); });
  return 0;
}
