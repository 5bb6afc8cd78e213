// libFuzzer harness: the restricted unpickler (traces/pickle_reader.hpp) on raw pickle bytes.
#include <string>

#include "fuzz/fuzz_util.hpp"
#include "traces/pickle_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  rackep::fuzz::refuse([&] {
    auto v = rackep::unpickle(bytes, "fuzz.pkl");
    (void)v->describe();
  });
  return 0;
}
