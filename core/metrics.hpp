// File: core/metrics.hpp
// Per-plan metrics of docs/ALGORITHMS.md §2.8: imbalance before and after, the NVLink-domain lower bound,
// replicas, redundant slots used and remote tokens. Usage:
//   rackep::PlanMetrics m = rackep::measure_plan(loads, result);
#pragma once

#include <cstdint>
#include <vector>

#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {

struct PlanMetrics {
  double imbalance_before = 1.0;    ///< max/mean of per-rank loads with masters only, on the exact loads
  double imbalance_after = 1.0;     ///< max/mean of per-rank loads the allocation produces
  double domain_lower_bound = 1.0;  ///< LB = max over domains of mean rank load / global mean (§1)
  int max_instances = 1;            ///< largest instance count of one expert
  int64_t total_replicas = 0;       ///< instances beyond one per expert
  int64_t used_redundant_slots = 0;
  int64_t remote_tokens = 0;  ///< tokens served on a rank other than their source
  int64_t max_rank_load = 0;  ///< tokens on the busiest rank after balancing
};

/// Domain lower bound of `rank_loads` for NVLink domains of `domain_size` consecutive ranks.
double domain_lower_bound(const std::vector<int64_t>& rank_loads, int domain_size);

/// Metrics of `result` for the exact `loads` of the record.
PlanMetrics measure_plan(const LoadMatrix& loads, const PlanResult& result);

}  // namespace rackep
