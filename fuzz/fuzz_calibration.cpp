// libFuzzer harness: the simulator's calibration file loader (sim/calibration*.hpp, via sim/config_io.hpp).
#include "fuzz/fuzz_util.hpp"
#include "sim/calibration.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("calibration.json", data, size);
  rackep::fuzz::refuse([&] { rackep::sim::load_calibration(p); });
  return 0;
}
