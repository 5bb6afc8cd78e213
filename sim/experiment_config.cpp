#include "sim/experiment_config.hpp"

namespace rackep::sim {

SimConfig to_sim_config(const config::ExperimentConfig& c) {
  SimConfig s;
  s.model = c.model;
  s.topology = c.topology;
  s.trace = c.trace;
  s.calibration = c.calibration;
  s.balancers = c.balancers;
  s.mode = parse_mode(c.mode);
  s.fidelity = parse_fidelity(c.fidelity);
  s.precision = parse_precision(c.precision);
  // Absent optional fields are 0 in SimConfig: "derive it" (sim/trace_source.hpp decides how).
  s.ranks = c.ranks.value_or(0);
  s.slots = c.slots;
  s.domain = c.domain.value_or(0);
  s.tokens_per_rank = c.tokens_per_rank.value_or(0);
  s.microbatches = c.microbatches.value_or(0);
  s.imbalance = c.imbalance;
  s.seed = static_cast<uint64_t>(c.seed.value_or(0));
  s.seq_len = c.seq_len.value_or(0);
  s.recompute = c.recompute;
  s.dedup = c.dedup;
  s.weight_sync_mode = c.weight_sync;
  s.ptask_compress = c.ptask_compress;
  s.schedule = c.schedule;
  s.backward_comm_precision = c.backward_comm_precision;
  s.pp = c.pp;
  s.dp = c.dp;
  s.zero = c.zero;
  s.balancer_options = c.options;
  s.check_plans = c.check_plans || check_plans_by_default();
  return s;
}

config::ExperimentConfig simulate_config_from_json(const nlohmann::json& j, const std::string& source) {
  config::ExperimentConfig c;
  config::load_config_json(j, c, source);
  config::apply_command_defaults(c, config::kSimulate);
  return c;
}

}  // namespace rackep::sim
