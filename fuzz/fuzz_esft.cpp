// libFuzzer harness: the ESFT expert-score reader (traces/esft.hpp); the input is layer 1's file, gzip-
// compressed when it starts with the gzip magic.
#include "fuzz/fuzz_util.hpp"
#include "traces/esft.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  std::filesystem::remove(rackep::fuzz::scratch() + "/task/expert_weights_1.txt");
  std::filesystem::remove(rackep::fuzz::scratch() + "/task/expert_weights_1.txt.gz");
  rackep::fuzz::put(gz ? "task/expert_weights_1.txt.gz" : "task/expert_weights_1.txt", data, size);
  rackep::EsftOptions o;
  o.layers = {1};
  rackep::fuzz::refuse([&] { rackep::read_esft({rackep::fuzz::scratch() + "/task"}, o); });
  return 0;
}
