// File: core/eplb.hpp
// DeepSeek EPLB (docs/ALGORITHMS.md §4, deepseek-ai/EPLB d52c72d `eplb.py`) as pure functions over one
// layer's expert weights, and the `eplb` balancer as run in production (periodic, from a sliding window of
// history).
//   - balanced_packing / replicate_experts / rebalance_experts[_hierarchical] mirror eplb.py one layer at
//     a time. Ties: sorts are stable (lower index first), argmax/argmin pick the lowest index (§4, §9.5).
//   - The balancer maps EPLB onto our shape: num_gpus = N, physical experts P = N*S, so EPLB's physical id
//     gpu*(P/N)+i is our rank*S+slot. Nodes = NVLink domains and one expert group per domain unless
//     EplbOptions says otherwise. EPLB moves masters too (Plan::masters_fixed = false) and copies of one
//     expert may share a GPU (legal in EPLB). Tokens are split round-robin over an expert's copies, the
//     deterministic expected-value equivalent of the frameworks' random replica choice (§6).
// Usage:
//   rackep::EplbPlacement p = rackep::rebalance_experts(w, /*P=*/16, /*groups=*/4, /*nodes=*/2, /*gpus=*/8);
//   auto b = rackep::make_eplb_balancer(shape, options);   // or make_balancer("eplb", ...)
//   rackep::PlanResult r = b->plan(loads, {layer, microbatch});
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "core/balancer.hpp"
#include "core/cluster_shape.hpp"
#include "core/plan.hpp"

namespace rackep {

/// Result of balanced_packing: for every item, its pack and its position inside the pack (arrival order).
struct EplbPacking {
  std::vector<int32_t> pack;          ///< [n] pack index of each item
  std::vector<int32_t> rank_in_pack;  ///< [n] position of the item inside its pack
};

/// Packs n weighted items into `num_packs` packs of `capacity` items each (0: n / num_packs, which must then
/// be exact, as in eplb.py). When capacity == 1 and n == num_packs, item i goes to pack i. Otherwise items
/// are taken by weight descending (ties: lower index) and each goes to the lightest pack that still has room
/// (ties: lower pack). A capacity above n / num_packs leaves trailing positions of some packs empty (used
/// only when replicate_experts is capped). Throws InputError("eplb options", ...) on impossible sizes.
EplbPacking balanced_packing(const std::vector<double>& weight, int num_packs, int capacity = 0);

/// Result of replicate_experts. Physical copies 0..L-1 are the experts themselves; later ones are the
/// redundant copies in creation order.
struct EplbReplication {
  std::vector<int32_t> phy2log;  ///< [copies] logical expert of each copy
  std::vector<int32_t> rank;     ///< [copies] replica rank of each copy (count of that expert before it)
  std::vector<int32_t> logcnt;   ///< [L] copies per expert
};

/// Gives `num_physical - L` extra copies one at a time to the expert with the largest weight / count (ties:
/// lower id). `max_copies` > 0 caps the copies of any expert (not in eplb.py; used by the balancer, whose l2p
/// rows hold at most N instances); copying stops early when every expert is at the cap. 0 = no cap (eplb.py).
EplbReplication replicate_experts(const std::vector<double>& weight, int num_physical, int max_copies = 0);

/// One layer's EPLB placement.
struct EplbPlacement {
  std::vector<int32_t> phy2log;  ///< [P] logical expert on each physical slot; -1 only for slots left empty
                                 ///< by a max_copies cap
  std::vector<int32_t> phyrank;  ///< [P] replica rank of each physical slot; -1 where phy2log is -1
  std::vector<int32_t> logcnt;   ///< [L] copies per logical expert
  int max_count = 0;             ///< X = max logcnt (row width of log2phy)
  std::vector<int32_t> log2phy;  ///< [L*X] row l: physical id of replica rank j in column j; -1 padding

  int32_t physical(int expert, int replica) const {
    return log2phy[static_cast<size_t>(expert) * max_count + replica];
  }
};

/// eplb.py rebalance_experts_hierarchical for one layer: (1) balanced_packing of expert groups (L/num_groups
/// consecutive experts) onto nodes, (2) replicate_experts inside every node to P/num_nodes copies, (3)
/// balanced_packing of each node's copies (weight = load / count) onto its GPUs, P/num_gpus per GPU; physical
/// id = gpu*(P/num_gpus) + position. Requires L % num_groups == 0, num_groups % num_nodes == 0, num_gpus %
/// num_nodes == 0, P % num_gpus == 0, P >= L; throws InputError("eplb options", ...) otherwise. `max_copies`
/// as in replicate_experts.
EplbPlacement rebalance_experts_hierarchical(const std::vector<double>& weight, int num_physical,
                                             int num_groups, int num_nodes, int num_gpus, int max_copies = 0);

/// eplb.py rebalance_experts for one layer: the hierarchical policy when num_groups % num_nodes == 0, else
/// the global policy (the hierarchical function with one group and one node).
EplbPlacement rebalance_experts(const std::vector<double>& weight, int num_physical, int num_groups,
                                int num_nodes, int num_gpus, int max_copies = 0);

/// The EplbOptions resolved against a shape.
struct EplbLayout {
  bool hierarchical = false;
  int num_groups = 1;  ///< expert groups passed to the hierarchical policy (1 for global)
  int num_nodes = 1;   ///< nodes passed to the hierarchical policy (1 for global)
  int window = 1;
  int period = 1;
};

/// Resolves options: nodes = num_nodes or one per NVLink domain; groups = num_groups or one per domain;
/// policy auto = hierarchical when groups % nodes == 0 and nodes > 1, else global. Throws InputError("eplb
/// options", <option>, ...) naming the option: window/period < 1, num_groups/num_nodes < 0, num_nodes not
/// dividing N, num_groups not dividing L, or policy hierarchical with groups % nodes != 0.
EplbLayout resolve_eplb_layout(const ClusterShape& shape, const EplbOptions& options);

/// EPLB plan from (historical) expert weights, size L: rebalance_experts onto N GPUs with P = N*S, each
/// expert capped at N copies (the l2p row width). has_quota = false, masters_fixed = false, quotas 0.
Plan eplb_plan(const ClusterShape& shape, const EplbLayout& layout, const std::vector<double>& weight);

/// Per-layer sliding window of expert loads W, shared by the history-based balancers (eplb, lplb).
/// A layer's calls are counted in trace order; call k is "due" for a re-plan when k % period == 0 and at
/// least one earlier call was recorded, and the re-plan uses the summed W of the last `window` recorded calls
/// only.
class LoadWindow {
 public:
  LoadWindow(int window, int period);
  /// True when the call about to be made for `layer` must re-plan (see class comment).
  bool due(int layer) const;
  /// Number of calls recorded so far for `layer`.
  int64_t calls(int layer) const;
  /// Sum of the recorded W of `layer` over the window, as doubles (size L; empty when nothing is recorded).
  std::vector<double> window_sum(int layer) const;
  /// Records the W of the call just served for `layer` (drops the oldest once the window is full).
  void record(int layer, const std::vector<int64_t>& w);

 private:
  struct Layer {
    int64_t calls = 0;
    std::deque<std::vector<int64_t>> loads;
    std::vector<int64_t> sum;
  };
  int window_;
  int period_;
  std::map<int, Layer> layers_;
};

/// The `eplb` balancer: per layer, plan k uses eplb_plan over the window's summed W, re-planned every
/// `period` calls of that layer (at calls period, 2*period, ...) and kept in between; before any history
/// (calls 0..period-1) every rank holds only its own masters and the redundant slots stay empty. The plan for
/// a call never depends on that call's loads or later ones. Allocation: allocate_round_robin.
/// persistent_replicas(). Throws InputError from resolve_eplb_layout.
std::unique_ptr<Balancer> make_eplb_balancer(const ClusterShape& shape, const BalancerOptions& options);

}  // namespace rackep
