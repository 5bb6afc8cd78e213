// File: tools/sim_options.hpp
// The simulator's config (sim::SimConfig) from the experiment config (config/experiment.hpp) of `rackep
// simulate` and `rackep sweep`.
#pragma once

#include "config/experiment.hpp"
#include "sim/simulator.hpp"

namespace rackep::tools {

/// Converts a resolved experiment config (apply_command_defaults already applied).
sim::SimConfig to_sim_config(const config::ExperimentConfig& c);

}  // namespace rackep::tools
