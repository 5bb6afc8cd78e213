// File: sim/workload.hpp
// The workload of one balancer (docs/DESIGN.md "The simulator"): every (MoE layer, microbatch) record is
// planned by the balancer from that record's exact loads; the plan gives the byte matrices of the
// communication (dispatch token copies on their routes, weight_sync, grad_reduce, the load all-gather, the
// background placement updates of history-based balancers) and the cost model each rank's compute times.
// The result, a LayerWork per record, is what the schedule builder (sim/schedule.hpp) turns into the step
// graph. Planner host time is measured only on request and never enters LayerWork.
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
#include "sim/cost_model.hpp"
#include "sim/fabric.hpp"
#include "sim/step_graph.hpp"

namespace rackep::sim {

enum class Mode { kTrain, kPrefill };
Mode parse_mode(const std::string& text);  ///< "train" / "prefill"; InputError("--mode", ...)
const char* to_string(Mode m);

struct WorkloadOptions {
  Mode mode = Mode::kTrain;
  bool recompute = false;  ///< full recompute of every layer's forward in the backward pass
  bool dedup = true;       ///< dispatch one copy per (token, destination rank / domain), as DeepEP does
  bool compress = true;    ///< hand the engine load-preserving compressed matrices (ptask fidelity)
  bool measure_host_planner = false;
  WeightSyncOptions weight_sync;
  bool check_plans = check_plans_by_default();  ///< ALGORITHMS.md §2.8 checks on every plan (StepDriver)
};

/// Shared, read-only inputs of every BalancerRun of one simulation.
struct WorkloadContext {
  const ModelConfig* model = nullptr;
  const CostModel* cost = nullptr;
  const Calibration* calibration = nullptr;
  const Fabric* fabric = nullptr;
  WorkloadOptions options;
};

/// Per-rank token counts and attended keys of one microbatch (attention cost inputs).
struct MicrobatchInputs {
  std::vector<double> tokens;       ///< [N] tokens of each source rank
  std::vector<double> keys_full;    ///< [N] attended keys, full causal attention
  std::vector<double> keys_window;  ///< [N] attended keys, sliding-window layers
};

/// The work of one (MoE layer, microbatch): compute seconds per rank at the whole GPU, and the byte
/// matrices of its communication (shared, read-only). An empty vector / null pointer: the phase does not
/// happen.
struct LayerWork {
  std::vector<double> attention, router, plan, reroute, shared_expert, experts;
  std::vector<double> attention_bwd, router_bwd, shared_expert_bwd, experts_dgrad, experts_wgrad;
  std::shared_ptr<const SparseTraffic> tokens;       ///< dispatch token copies on their routes
  std::shared_ptr<const SparseTraffic> allgather;    ///< per-rank load all-gather (bytes)
  std::shared_ptr<const SparseTraffic> weight_sync;  ///< bytes; before dispatch (and restore in backward)
  double weight_sync_tail_s = 0.0;                   ///< relay forwarding of the last chunk
  bool weight_restore = false;  ///< backward weight_sync before expert dgrad (shared replica slots)
  std::shared_ptr<const SparseTraffic> placement_update;  ///< persistent balancers: background movement
  std::shared_ptr<const SparseTraffic> grad_reduce;       ///< bytes
  double grad_reduce_min_s = 0.0;  ///< SM-bound floor: max over ranks of pulled bytes / (SMs x rate)
  std::vector<double> saved_bytes;    ///< activations kept for the backward pass (layer input with recompute)
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
  double dispatch_network_bytes = 0.0;  ///< token copies x dispatch bytes on links (both hops)
  double host_planner_s = 0.0;          ///< measured, only with measure_host_planner
  double useful_flops = 0.0;  ///< model FLOPs of the MoE layers (fwd; x3 for training), excluding recompute
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
  const std::vector<std::vector<LayerWork>>& work() const { return work_; }  ///< [mb][layer]
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
  std::shared_ptr<const SparseTraffic> allgather_;  // the all-gather matrix never changes: built once
  std::vector<std::vector<LayerWork>> work_;
  BalancerTotals totals_;
};

}  // namespace rackep::sim
