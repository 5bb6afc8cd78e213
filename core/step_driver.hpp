// File: core/step_driver.hpp
// The one place that decides what a balancing step is (DESIGN.md "Workload"): for every (layer, microbatch)
// the StepDriver of one balancer plans the record's exact loads, checks the plan's legality (ALGORITHMS.md
// §2.8, on request), keeps each layer's resident replicas, and derives the step's data-plane work from
// core/transfer.hpp: the weight_sync copies, whether the backward pass restores the replica weights, and the
// grad_reduce pulls. `rackep plan` (metrics), `rackep simulate` (timing, sim/workload.cpp) and
// `rackep run-layer` (execution on GPUs, kernels/run_layer.cpp) all consume the same StepRecord.
//
// The rules: balancers whose replica slots are shared by all layers (masters_fixed plans of a balancer
// without persistent_replicas: ultraep, ultraep-legacy) refill every replica from its master on every plan
// (plan_weight_sync) and, in training, restore them before the expert dgrad and reduce their gradients on
// every microbatch; balancers whose replicas stay resident per layer (eplb, lplb) move only what differs from
// the layer's previous plan (plan_persistent_weight_sync, starting from masters only) and reduce gradients
// once per step, on its last microbatch. Usage:
//   StepDriverConfig cfg;  cfg.shape = shape;  cfg.balancer = "ultraep";  cfg.expert = {2048, 1408, 2};
//   StepDriver driver(cfg);                       // throws InputError when the balancer refuses the shape
//   const StepRecord& s = driver.step(loads, layer, microbatch);
//   if (s.weight_sync) use(*s.weight_sync);
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/metrics.hpp"
#include "core/plan.hpp"
#include "core/transfer.hpp"

namespace rackep {

/// True in debug builds (NDEBUG unset) or when the environment sets RACKEP_CHECK_PLANS=1 (the test suite
/// does); release builds check plans with `--check-plans` (config key check_plans).
bool check_plans_by_default();

struct StepDriverConfig {
  ClusterShape shape;
  std::string balancer = "ultraep";
  BalancerOptions options;
  ExpertBytes expert;             ///< sizes of one routed expert (weight_sync and grad_reduce bytes)
  WeightSyncOptions weight_sync;  ///< plan mode of fixed-master weight_sync
  bool training = true;           ///< grad_reduce plans and weight restores exist only in training
  /// Microbatches of one training step: resident replicas reduce their gradients on the last one
  /// ((microbatch + 1) % microbatches_per_step == 0). 1: every record is a step of its own.
  int64_t microbatches_per_step = 1;
  bool check_legality = check_plans_by_default();  ///< run check_plan on every plan
  /// Persistent placements start warm: the first plan of each layer becomes resident without moving
  /// anything (production EPLB holds a placement from earlier steps; the simulator's fair start).
  bool warm_start = false;
};

/// Everything one balancing step of one (layer, microbatch) does.
struct StepRecord {
  int layer = 0;
  int64_t microbatch = 0;
  PlanResult result;       ///< the plan, its per-source allocation, and the loads it serves
  PlanMetrics metrics;     ///< measure_plan on the record's exact loads
  double planner_s = 0.0;  ///< host wall time of Balancer::plan (not deterministic; report on request only)
  /// True when replicas stay resident per layer (weight_sync is the diff to the layer's previous plan).
  bool persistent = false;
  /// weight_sync of this step before the expert FFN; empty when nothing moves (no replicas, or a resident
  /// placement that did not change).
  std::optional<TransferPlan> weight_sync;
  /// Training with shared slots: the same copies run again before the backward expert dgrad (the slots were
  /// refilled by later layers meanwhile).
  bool weight_restore = false;
  /// grad_reduce of the replicas' gradients into their masters (instance 0) after the backward expert wgrad;
  /// empty when this step reduces nothing.
  std::optional<GradReducePlan> grad_reduce;
};

class StepDriver {
 public:
  /// Builds the balancer. Throws InputError for an unknown name, bad options or a shape it refuses.
  explicit StepDriver(const StepDriverConfig& config);
  ~StepDriver();
  StepDriver(StepDriver&&) noexcept;
  StepDriver& operator=(StepDriver&&) noexcept;

  /// Plans one record and derives its transfers. Records must come in trace order. Throws
  /// VerificationError when legality checking is on and the plan breaks a rule of ALGORITHMS.md §2.8.
  const StepRecord& step(const LoadMatrix& loads, int layer, int64_t microbatch);

  /// The last step's weight_sync planned under another mode (plan's direct/relay columns); the step's own
  /// weight_sync when it is a resident-set diff (mode does not apply) or when it moves nothing.
  TransferPlan weight_sync_in_mode(WeightSyncMode mode) const;

  const std::string& name() const { return name_; }
  bool persistent() const { return persistent_; }
  const StepDriverConfig& config() const { return config_; }
  /// The replicas resident for `layer` after its last step (masters only before any): persistent balancers.
  const Plan& resident(int layer) const;

 private:
  StepDriverConfig config_;
  std::string name_;
  std::unique_ptr<Balancer> balancer_;
  bool persistent_ = false;
  std::vector<Plan> resident_;  // per layer, grown on demand
  Plan masters_only_;
  StepRecord last_;
};

}  // namespace rackep
