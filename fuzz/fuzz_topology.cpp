// libFuzzer harness: the simulator's topology file loader (sim/topology*.hpp, via sim/config_io.hpp).
#include "fuzz/fuzz_util.hpp"
#include "sim/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("topology.json", data, size);
  rackep::fuzz::refuse([&] { rackep::sim::load_topology(p); });
  return 0;
}
