// libFuzzer harness: the ZIP reader (traces/zip_reader.hpp) behind .npz and .pt files: every member is read
// and parsed as .npy.
#include "fuzz/fuzz_util.hpp"
#include "traces/npy.hpp"
#include "traces/zip_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("fuzz.npz", data, size);
  rackep::fuzz::refuse([&] {
    rackep::ZipReader zip(p);
    for (const rackep::ZipEntry& e : zip.entries())
      rackep::fuzz::refuse([&] {
        const std::string bytes = zip.read(e.name);
        rackep::parse_npy_header(bytes, p + ":" + e.name);
      });
  });
  return 0;
}
