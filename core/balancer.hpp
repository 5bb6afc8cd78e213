// File: core/balancer.hpp
// The one interface every expert balancer implements, its options, and the by-name registry.
// A balancer is called once per (layer, microbatch) in trace order with that record's exact loads.
// History-based balancers (eplb, lplb) may only use loads of *earlier* calls: they plan first, then record
// the loads. Usage:
//   auto b = rackep::make_balancer("ultraep", shape, rackep::BalancerOptions{});
//   rackep::PlanResult r = b->plan(loads, {/*layer=*/3, /*microbatch=*/0});
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {

/// Tunables of the UltraEP quota planner (docs/ALGORITHMS.md §2.3), Python-manager defaults.
struct UltraEpOptions {
  double balance_threshold = 1.0;         ///< bt
  double eps = 0.01;                      ///< QUOTA_ORACLE_EPS
  int64_t min_tokens_per_replica = 1024;  ///< q_min, static floor of the fallback path
  bool allow_zero_master_quota = false;
  bool locality_aware = true;  ///< per-source split prefers local instances (§2.5)
  bool interleave = true;      ///< reroute interleave (§2.6)
};

enum class EplbPolicy { kAuto, kHierarchical, kGlobal };

/// DeepSeek EPLB as run in production: re-planned every `period` microbatches of a layer from the summed
/// loads of the last `window` microbatches of that layer (docs/ALGORITHMS.md §4). Deployments re-plan every
/// thousands of steps (vLLM: window 1000, interval 3000); the defaults are the setting most favourable to
/// EPLB (re-plan every microbatch from the last 4), so comparisons against it are conservative.
struct EplbOptions {
  int window = 4;                         ///< microbatches of history per layer
  int period = 1;                         ///< re-plan every K microbatches of a layer
  EplbPolicy policy = EplbPolicy::kAuto;  ///< auto: hierarchical when groups % nodes == 0 and nodes > 1
  int num_groups = 0;                     ///< expert groups (0: one group per NVLink domain)
  int num_nodes = 0;                      ///< nodes (0: one per NVLink domain)
};

/// DeepSeek LPLB (docs/ALGORITHMS.md §5).
struct LplbOptions {
  int group_size = 8;  ///< g: ranks per redundancy group (clamped to the NVLink domain)
  int directions = 0;  ///< d: redundancy directions per rank (0: min(2, R))
  int window = 4;      ///< history used to choose which experts are replicated
  int period = 1;      ///< re-select replicated experts every K microbatches of a layer
};

struct BalancerOptions {
  UltraEpOptions ultraep;
  EplbOptions eplb;
  LplbOptions lplb;
};

struct StepContext {
  int layer = 0;
  int64_t microbatch = 0;
};

class Balancer {
 public:
  virtual ~Balancer() = default;
  virtual std::string name() const = 0;
  /// Plan one (layer, microbatch). `loads` must match the shape given at construction.
  virtual PlanResult plan(const LoadMatrix& loads, const StepContext& ctx) = 0;
  /// True when replica weights stay resident between plans of one layer (eplb, lplb), so weight_sync moves
  /// only what changed; false when the replica slots are shared by all layers and refilled every plan
  /// (ultraep).
  virtual bool persistent_replicas() const { return false; }
};

using BalancerFactory = std::function<std::unique_ptr<Balancer>(const ClusterShape&, const BalancerOptions&)>;

/// Registers a balancer under `name` (replaces an existing one). The built-in ones are always registered.
void register_balancer(const std::string& name, BalancerFactory factory);
/// Throws InputError("--balancers", name, ...) listing the known names when `name` is unknown.
std::unique_ptr<Balancer> make_balancer(const std::string& name, const ClusterShape& shape,
                                        const BalancerOptions& options);
std::vector<std::string> balancer_names();

}  // namespace rackep
