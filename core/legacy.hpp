// File: core/legacy.hpp
// UltraEP legacy mode (docs/ALGORITHMS.md §2.7, `legacy_placement=True`): an EPLB-like host-side planner
// constrained to fixed masters. Per NVLink domain, redundant slots go one at a time to the expert with the
// largest per-copy load (at most G-1 replicas per expert; with bt > 1 it stops once the best per-copy load
// is <= avg*bt), then replicas are placed, heaviest first, on the rank with the smallest estimated load that
// has a free slot and does not host the expert yet; replicas without such a rank are dropped.
// No quotas: tokens are split round-robin over the instances.
// Usage:
//   rackep::LegacyStats stats;
//   rackep::Plan plan = rackep::legacy_plan(shape, loads.expert_totals(), /*bt=*/1.0, &stats);
//   rackep::Allocation alloc = rackep::allocate_round_robin(plan, loads);
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/balancer.hpp"
#include "core/cluster_shape.hpp"
#include "core/plan.hpp"

namespace rackep {

/// What the legacy planner did, summed over domains.
struct LegacyStats {
  int64_t replicas_requested = 0;  ///< replicas granted by the replication loop (before placement)
  int64_t replicas_dropped = 0;    ///< replicas that found no eligible rank and were dropped
};

/// §2.7 over global loads `w` (size L). Rank estimates use the per-copy loads of the counts *before* any
/// drop. Replicas fill redundant slots M, M+1, ... of their rank in placement order. Returns a plan with
/// has_quota = false, masters_fixed = true and all quotas 0. Throws InputError("ultraep options",
/// "balance_threshold", ...) when the threshold is negative or not finite; `stats` may be null.
Plan legacy_plan(const ClusterShape& shape, const std::vector<int64_t>& w, double balance_threshold,
                 LegacyStats* stats = nullptr);

/// The `ultraep-legacy` balancer: legacy_plan over the exact loads' W with options.ultraep.balance_threshold,
/// allocation = allocate_round_robin (the k-th token of l on a source rank goes to instance k mod C).
std::unique_ptr<Balancer> make_legacy_balancer(const ClusterShape& shape, const BalancerOptions& options);

}  // namespace rackep
