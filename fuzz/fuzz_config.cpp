// libFuzzer harness: the experiment-config loader of plan/simulate/sweep/run-layer --config
// (config/experiment.hpp: load_config_file parses, load_config_json checks every key, type and range), then
// the echo (to_json) of whatever was accepted, for every command.
#include "config/experiment.hpp"
#include "fuzz/fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string p = rackep::fuzz::put("config.json", data, size);
  rackep::fuzz::refuse([&] {
    rackep::config::ExperimentConfig c;
    rackep::config::load_config_file(p, c);
    for (rackep::config::Command command : {rackep::config::kPlan, rackep::config::kSimulate,
                                            rackep::config::kSweep, rackep::config::kRunLayer}) {
      rackep::config::ExperimentConfig d = c;
      rackep::config::apply_command_defaults(d, command);
      (void)rackep::config::to_json(d, command).dump();
    }
  });
  return 0;
}
