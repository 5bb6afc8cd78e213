// File: sim/simulator.hpp
// One simulation: a model, a topology, a trace and a list of balancers in, one summary per balancer out
// (docs/DESIGN.md "Outputs"). All balancers replay the same records in lockstep; `none` and `ideal` always
// run (the speed-up and %-of-ideal references) and are reported when asked for. Deterministic: the same
// SimConfig gives the same SimReport bit for bit (planner host time is measured only with
// measure_host_planner). Usage:
//   SimConfig c;  c.model = "deepseek-v2-lite";  c.topology = "gb200-nvl72";  c.trace = "esft:intent";
//   SimReport r = run_simulation(c, /*timeline=*/nullptr);
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sim/cost_model.hpp"
#include "sim/engine.hpp"
#include "sim/schedule.hpp"
#include "sim/timeline.hpp"
#include "sim/workload.hpp"

namespace rackep::sim {

struct SimConfig {
  std::string model = "deepseek-v2-lite";
  std::string topology = "gb200-nvl72";
  /// Directory, esft:<task>[,<task>] or synthetic:<kind>; empty: the shipped ESFT routing when the model has
  /// its 64 experts, else synthetic:zipf.
  std::string trace;
  std::string calibration = "default";
  std::vector<std::string> balancers = {"none", "eplb", "lplb", "ultraep", "ideal"};
  Mode mode = Mode::kTrain;
  Fidelity fidelity = Fidelity::kPtask;
  Precision precision = Precision::kBf16;
  std::string backward_comm_precision;  ///< combine_bwd element type: "fp8" / "bf16"; "" = as precision
  /// train: sequential, 1f1b, dualpipe; prefill: sequential, two-batch; "" = what large-EP systems run:
  /// dualpipe (forward/backward overlap) for training, two-batch overlap for prefill.
  std::string schedule;
  int pp = 1;                   ///< pipeline stages; the simulated EP group is one of them
  int dp = 1;                   ///< data-parallel replicas of the EP x PP grid (training memory)
  int zero = 1;                 ///< ZeRO stage 0 or 1: Adam state sharded over data parallelism (training)
  int ranks = 0;                ///< EP ranks; 0: the trace's (directory) or 32 (generated traces)
  int slots = 2;                ///< R redundant slots per rank
  int domain = 0;               ///< scale-up domain size override; 0 = the topology's
  int64_t tokens_per_rank = 0;  ///< generated traces: T (0 = 256 for esft, 8192 for synthetic)
  int64_t microbatches = 0;     ///< replay at most this many microbatches (0 = all; synthetic: 8)
  double imbalance = 2.0;       ///< synthetic traces: target imbalance
  uint64_t seed = 1;
  int seq_len = 0;  ///< tokens per sequence for traces without sequences (0 = T)
  bool recompute = false;
  bool dedup = true;
  bool measure_host_planner = false;
  std::string weight_sync_mode = "adaptive";
  bool ptask_compress = true;
  BalancerOptions balancer_options;             ///< ultraep / eplb / lplb options
  bool check_plans = check_plans_by_default();  ///< docs/ALGORITHMS.md §2.8 checks on every plan
};

struct BalancerSummary {
  std::string name;
  std::string refused;  ///< non-empty: the balancer refused this shape/options (why); no other field is set
  double imbalance = 1.0;         ///< mean over records of max/mean rank load after balancing
  double imbalance_before = 1.0;  ///< same before balancing (masters only)
  double max_imbalance = 1.0;
  double step_s = 0.0;   ///< training step, or mean prefill pass latency
  double total_s = 0.0;  ///< simulated time of everything replayed
  double tokens_per_s = 0.0;
  double tflops_per_gpu = 0.0;
  double pct_of_ideal = 0.0;  ///< ideal throughput share: 100 x ideal time / this time
  double speedup_vs_none = 0.0;
  /// Balancing time (gather, plan, reroute, weight_sync, restore, grad_reduce, placement updates) not
  /// hidden under other work, on the rank where it is largest; per step (train) or per pass (prefill).
  double exposed_overhead_s = 0.0;
  double replicas = 0.0;         ///< mean replicas per (layer, microbatch)
  double weight_sync_gib = 0.0;  ///< weight bytes moved over the whole replay
  double peak_activation_gib = 0.0;
  double redundant_slot_gib = 0.0;  ///< extra memory per rank of redundant slots
  double memory_gib = 0.0;          ///< peak per rank: weights, gradients, optimizer, activations, slots
  bool oom = false;                 ///< memory_gib exceeds the GPU's memory
  double pipeline_bubble_s = 0.0;   ///< per step, from the simulated chunk times (0 without PP)
  double compute_busy_s = 0.0;      ///< per rank (mean), per step or pass
  double comm_busy_s = 0.0;
  double overlapped_s = 0.0;      ///< compute and communication at the same time
  nlohmann::json phases;          ///< per phase: mean duration per MoE layer (forward / backward)
  double host_planner_us = -1.0;  ///< measured mean host planner time per call; -1 unless requested
};

struct SimReport {
  nlohmann::json inputs;  ///< what was simulated (names, files, sizes, options)
  std::vector<BalancerSummary> balancers;
  nlohmann::json platform;  ///< StepEngine::describe()
  double global_tokens_per_step = 0.0;
};

/// Observer hooks of a simulation. `timeline` receives every operation of every balancer's step; it is told
/// which balancer comes next through `on_balancer`.
struct SimHooks {
  TimelineSink* timeline = nullptr;
  std::function<void(const std::string& balancer, int index)> on_balancer;
};

/// Runs the simulation. Throws InputError for bad inputs (files, flags, shapes).
SimReport run_simulation(const SimConfig& config, const SimHooks& hooks = {});

/// Builds only the platform (no trace), for --dump-topology without a simulation.
nlohmann::json describe_platform(const SimConfig& config);

}  // namespace rackep::sim
