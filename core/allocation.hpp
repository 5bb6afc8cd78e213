// File: core/allocation.hpp
// Per-source-rank token allocation over the instances of a plan (docs/ALGORITHMS.md §2.5 and §2.7).
//   - quota plans (ultraep, ideal, none): locality-aware split (default) or plain proportional split;
//   - quota-less plans (ultraep-legacy, eplb): round-robin, instance j of C gets floor(n/C) + (j < n mod C).
// Every source's allocations for an expert sum to exactly its tokens for that expert.
// Usage:
//   rackep::Allocation a = rackep::allocate_by_quota(plan, loads, /*locality_aware=*/true);
//   int64_t prefix = rackep::rank_quota_prefix(plan, loads, a, s, l, j);
#pragma once

#include <cstdint>
#include <vector>

#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {

/// §2.5 for every source rank. Requires plan.has_quota and sum_j quota[l][j] == W[l].
Allocation allocate_by_quota(const Plan& plan, const LoadMatrix& loads, bool locality_aware);

/// §2.5 for one source rank and one expert: writes lcnt[l] counts to `out` (instance order of l2p).
void allocate_source_expert(const Plan& plan, const LoadMatrix& loads, int source, int expert,
                            bool locality_aware, int32_t* out);

/// Round-robin per source (the k-th token of l on a rank goes to instance k mod C).
Allocation allocate_round_robin(const Plan& plan, const LoadMatrix& loads);

/// rank_quota_prefix of §2.1 for source `source`: inclusive prefix over instances of its allocation of
/// `expert`, written to `out` (lcnt[expert] values).
void rank_quota_prefix(const Allocation& alloc, int source, int expert, int num_instances, int32_t* out);

}  // namespace rackep
