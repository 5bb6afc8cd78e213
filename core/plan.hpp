// File: core/plan.hpp
// Plan: where every logical expert has instances for one (layer, microbatch) and how many tokens each
// instance is meant to serve (docs/ALGORITHMS.md §2.1). Allocation: the per-source split of tokens over
// instances (§2.5), i.e. the dispatch traffic matrix. PlanResult bundles both with the loads that were
// actually routed. Usage:
//   rackep::Plan p = rackep::Plan::masters_only(shape, w);
//   int host = p.host(l, j);           // rank hosting instance j of expert l
//   int64_t q = p.quota_of(l, j);
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/load_matrix.hpp"

namespace rackep {

struct Plan {
  ClusterShape shape;
  std::vector<int32_t> p2l;    ///< [N*S] logical id hosted by each physical slot; -1 = empty slot.
  std::vector<int32_t> l2p;    ///< [L*N] row l: physical id of instance j in column j; -1 padding.
  std::vector<int32_t> lcnt;   ///< [L] instances of each expert (>= 1).
  std::vector<int64_t> quota;  ///< [L*N] tokens assigned to instance j of l; all 0 for quota-less balancers.
  bool has_quota = false;      ///< true when quotas drive the per-source split (ultraep, ideal, none).
  bool masters_fixed = true;  ///< instance 0 of every l is its master slot (false for eplb, which moves all).
  std::vector<int64_t> domain_threshold;  ///< [D] threshold T found per NVLink domain (ultraep), else empty.

  int num_experts() const { return static_cast<int>(lcnt.size()); }
  int32_t physical(int expert, int instance) const {
    return l2p[static_cast<size_t>(expert) * shape.num_ranks + instance];
  }
  int host(int expert, int instance) const { return shape.rank_of_physical(physical(expert, instance)); }
  int64_t quota_of(int expert, int instance) const {
    return quota[static_cast<size_t>(expert) * shape.num_ranks + instance];
  }
  /// Replicas (instances beyond the first) over all experts.
  int64_t total_replicas() const;
  int max_instances() const;
  /// Filled redundant slots (slot index >= M) over all ranks.
  int64_t used_redundant_slots() const;

  /// Every expert on its master only, quota = W (the `none` balancer). `w` may be empty (quotas 0).
  static Plan masters_only(const ClusterShape& shape, const std::vector<int64_t>& w);
};

/// Tokens sent from each source rank to each instance of each expert. Instance g of the flat numbering is
/// instance (g - offset[l]) of expert l.
struct Allocation {
  int num_ranks = 0;
  std::vector<int32_t> offset;  ///< [L+1] prefix sum of lcnt.
  std::vector<int32_t> tokens;  ///< [N * num_instances()] row = source rank.

  int num_instances() const { return offset.empty() ? 0 : offset.back(); }
  int32_t at(int source, int expert, int instance) const {
    return tokens[static_cast<size_t>(source) * num_instances() + offset[expert] + instance];
  }
  int32_t& at(int source, int expert, int instance) {
    return tokens[static_cast<size_t>(source) * num_instances() + offset[expert] + instance];
  }
  /// Zero allocation shaped for `plan`.
  static Allocation shaped_for(const Plan& plan);
};

/// What a balancer returns for one (layer, microbatch).
struct PlanResult {
  Plan plan;
  Allocation alloc;
  /// The loads the plan serves. Equal to the exact loads for every balancer except `ideal`, which models
  /// force-balanced routing (each source's tokens spread uniformly over all experts).
  LoadMatrix routed;
};

/// Tokens each rank receives under (plan, alloc): the allocation scattered onto the instances' host ranks.
std::vector<int64_t> rank_loads_after(const Plan& plan, const Allocation& alloc);

/// Tokens whose source rank differs from the rank that serves them.
int64_t remote_tokens(const Plan& plan, const Allocation& alloc);

}  // namespace rackep
