// File: sim/experiment_config.hpp
// The simulator's config (SimConfig) from the experiment config (config/experiment.hpp) that `rackep
// simulate`, `rackep sweep` and the Python module read: the one conversion, so every front end simulates the
// same thing. Usage:
//   config::ExperimentConfig e;  config::load_config_json(dict, e, "config");
//   config::apply_command_defaults(e, config::kSimulate);
//   SimReport r = run_simulation(to_sim_config(e));
#pragma once

#include "config/experiment.hpp"
#include "sim/simulator.hpp"

namespace rackep::sim {

/// Converts a resolved experiment config (apply_command_defaults already applied).
SimConfig to_sim_config(const config::ExperimentConfig& c);

/// A simulate config from a JSON object of experiment-config keys (strict: unknown keys and bad values throw
/// InputError naming `source` and the key), with simulate's defaults applied.
config::ExperimentConfig simulate_config_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace rackep::sim
