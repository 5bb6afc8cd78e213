// libFuzzer harness: the simulator's model file loader (sim/model*.hpp, via sim/config_io.hpp).
#include "fuzz/fuzz_util.hpp"
#include "sim/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("model.json", data, size);
  rackep::fuzz::refuse([&] { rackep::sim::load_model(p); });
  return 0;
}
