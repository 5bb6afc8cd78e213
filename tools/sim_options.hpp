// File: tools/sim_options.hpp
// The options `rackep simulate` and `rackep sweep` share: registration on a CLI11 command, conversion to a
// sim::SimConfig, and back to an argument list (sweep re-runs simulate as separate processes, docs/DESIGN.md
// "Scaling out").
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "sim/simulator.hpp"

namespace rackep::tools {

struct SimCliOptions {
  std::string model = "deepseek-v2-lite";
  std::string topology = "gb200-nvl72";
  std::string trace = "esft:intent,summary,translation";
  std::string calibration = "default";
  std::vector<std::string> balancers = {"none", "eplb", "lplb", "ultraep", "ideal"};
  std::string mode = "train";
  std::string fidelity = "ptask";
  std::string precision = "bf16";
  std::string backward_comm_precision;
  std::string schedule;  ///< "" = the mode's overlapped schedule
  int pp = 1;
  int ranks = 0;
  int slots = 2;
  int domain = 0;
  int64_t tokens_per_rank = 0;
  int64_t microbatches = 0;
  double imbalance = 2.0;
  uint64_t seed = 1;
  int seq_len = 0;
  bool recompute = false;
  bool no_dedup = false;
  std::string weight_sync = "adaptive";
  bool no_ptask_compress = false;
};

/// Registers every shared option on `cmd` with its default shown in --help.
void add_sim_options(CLI::App& cmd, SimCliOptions& o);
/// Validates enumerations (throws InputError naming the flag) and builds the simulator's config.
sim::SimConfig to_sim_config(const SimCliOptions& o);
/// The same options as `--flag value` arguments for a child `rackep simulate`.
std::vector<std::string> to_args(const SimCliOptions& o);

}  // namespace rackep::tools
