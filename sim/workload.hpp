// File: sim/workload.hpp
// The workload of one balancer (DESIGN.md "Workload"): every (MoE layer, microbatch) record is planned by the
// balancer from that record's exact loads, the plan's byte matrices (dispatch, combine, their backward
// transposes, weight_sync, grad_reduce, the load all-gather) go through the communication model, and the cost
// model gives each rank's compute times. The result, a LayerStep per record, is all the step loop needs
// (sim/step_loop.hpp). Planner host time is measured only on request and never enters LayerStep.
// Usage:
//   BalancerRun run("ultraep", shape, options, ctx);
//   run.process(layer, microbatch, loads, mb_inputs, /*last_microbatch=*/false);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/step_driver.hpp"
#include "core/transfer.hpp"
#include "sim/calibration.hpp"
#include "sim/comm_model.hpp"
#include "sim/cost_model.hpp"

namespace rackep::sim {

enum class Mode { kTrain, kPrefill };
Mode parse_mode(const std::string& text);  ///< "train" / "prefill"; InputError("--mode", ...)
const char* to_string(Mode m);

struct WorkloadOptions {
  Mode mode = Mode::kTrain;
  bool recompute = false;  ///< full recompute of every layer's forward in the backward pass
  bool dedup = true;       ///< dispatch one copy per (token, destination rank), as DeepEP does
  bool measure_host_planner = false;
  WeightSyncOptions weight_sync;
  bool check_plans = check_plans_by_default();  ///< ALGORITHMS.md §2.8 checks on every plan (StepDriver)
};

/// Shared, read-only inputs of every BalancerRun of one simulation.
struct WorkloadContext {
  const ModelConfig* model = nullptr;
  const CostModel* cost = nullptr;
  const Calibration* calibration = nullptr;
  CommModel* comm = nullptr;
  double port_bytes_per_s = 0.0;  ///< effective NVLink port bandwidth (relay chunk forwarding time)
  WorkloadOptions options;
};

/// Per-rank token counts and attended keys of one microbatch (attention cost inputs).
struct MicrobatchInputs {
  std::vector<double> tokens;       ///< [N] tokens of each source rank
  std::vector<double> keys_full;    ///< [N] attended keys, full causal attention
  std::vector<double> keys_window;  ///< [N] attended keys, sliding-window layers
};

/// Durations (seconds) per rank of one (MoE layer, microbatch). Comm phases exclude their launch costs; an
/// empty vector means the phase does not happen.
struct LayerStep {
  std::vector<double> attention_fwd_s, attention_bwd_s, router_fwd_s, shared_fwd_s, experts_fwd_s,
      experts_bwd_s;
  std::vector<double> reroute_s;
  std::vector<double> dispatch_s, combine_s, combine_bwd_s, dispatch_bwd_s;
  std::vector<double> allgather_s, weight_sync_s, grad_reduce_s;
  double plan_s = 0.0;          ///< modelled planning time (calibration), on every rank
  bool weight_restore = false;  ///< backward weight_sync before expert dgrad (shared replica slots)
  std::vector<double>
      saved_bytes;  ///< activations kept for the backward pass (layer input only with recompute)
  std::vector<double> working_bytes;  ///< all activations of the layer (alive while it runs)
};

/// What one balancer did over the whole trace.
struct BalancerTotals {
  int64_t plans = 0;
  double imbalance_before_sum = 0.0;
  double imbalance_after_sum = 0.0;
  double max_imbalance_after = 0.0;
  double replicas_sum = 0.0;
  int64_t weight_sync_calls = 0;
  double weight_sync_bytes = 0.0;
  double dispatch_network_bytes = 0.0;
  double host_planner_s = 0.0;  ///< measured, only with measure_host_planner
  double useful_flops = 0.0;    ///< model FLOPs of the MoE layers (fwd; x3 for training), excluding recompute
};

class BalancerRun {
 public:
  BalancerRun(const std::string& name, const ClusterShape& shape, const BalancerOptions& options,
              const WorkloadContext& context, int num_moe_layers, int64_t num_microbatches);
  ~BalancerRun();

  /// Plans and costs one record. `layer` is the model's MoE layer index (0-based), `mb` the microbatch index
  /// (0-based, in replay order).
  void process(int layer, int64_t mb, const LoadMatrix& loads, const MicrobatchInputs& inputs);

  const std::string& name() const { return name_; }
  bool persistent() const { return persistent_; }
  const std::vector<std::vector<LayerStep>>& steps() const { return steps_; }  ///< [mb][layer]
  const BalancerTotals& totals() const { return totals_; }
  /// Memory of redundant slots per rank: R x slot bytes when slots are shared by all layers, R x layers x
  /// slot bytes when replicas stay resident per layer; 0 without replication.
  double redundant_slot_bytes() const;

 private:
  std::string name_;
  ClusterShape shape_;
  WorkloadContext ctx_;
  std::unique_ptr<StepDriver> driver_;  // plans, legality, resident replicas, transfer plans
  bool persistent_ = false;
  bool replicates_ = false;
  ExpertBytes expert_bytes_;
  int num_moe_layers_ = 0;
  int64_t num_microbatches_ = 0;
  std::vector<double> allgather_s_;  // the all-gather matrix never changes: simulated once
  std::vector<std::vector<LayerStep>> steps_;
  BalancerTotals totals_;
};

}  // namespace rackep::sim
