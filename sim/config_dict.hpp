// File: sim/config_dict.hpp
// A SimConfig from a JSON object whose keys are SimConfig's field names ({"model": "qwen3-235b-a22b",
// "ranks": 64, "balancers": ["none", "ultraep"], "mode": "prefill", ...}); missing keys keep SimConfig's
// defaults. Used by the Python module's rackep.simulate(dict). Meant to be replaced by the typed
// experiment-config loader when it lands: callers go through this one function.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "sim/simulator.hpp"

namespace rackep::sim {

/// Throws InputError(source, key, ...) for an unknown key or a value of the wrong type or range.
SimConfig sim_config_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace rackep::sim
