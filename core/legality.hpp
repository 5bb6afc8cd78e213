// File: core/legality.hpp
// Legality checks of docs/ALGORITHMS.md §2.8 for any plan, plus the conservation rules of an allocation and
// of a reroute. The one checker: the StepDriver runs check_plan on every plan in debug builds, in the test
// suite (RACKEP_CHECK_PLANS=1) and with --check-plans; tests/core/legality_test.cpp breaks every rule once.
// Returns a list of human-readable violations (empty = legal), so tests can show every problem at once.
// Usage:
//   std::vector<std::string> bad = rackep::check_plan(result.plan, &result.routed, &result.alloc);
//   EXPECT_TRUE(bad.empty()) << bad.front();
#pragma once

#include <string>
#include <vector>

#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {

/// Checks, for every plan: array shapes; lcnt == non-negative entries of each l2p row; p2l and l2p agree;
/// used redundant slots <= N*R. For plans with masters_fixed (UltraEP family), additionally §2.8 1-5:
/// instance 0 is the master, every instance lies in the master's NVLink domain, at most one instance of an
/// expert per rank, replicas only in redundant slots, master slots hold their masters. With quotas: sum of
/// quotas == W. With `routed` and `alloc`: every source's allocation of every expert sums to exactly its
/// routed tokens (§2.8.7).
std::vector<std::string> check_plan(const Plan& plan, const LoadMatrix* routed = nullptr,
                                    const Allocation* alloc = nullptr);

/// §2.8.8 for one source rank's rerouted tokens: `topk_ids` (num_tokens x top_k logical ids, token-major)
/// and `physical` (the same shape, from reroute): every token row keeps exactly its top-k entries, each entry
/// is a valid physical slot hosting that entry's expert, and no two entries of a row share a slot.
std::vector<std::string> check_reroute(const Plan& plan, const std::vector<int32_t>& topk_ids,
                                       const std::vector<int32_t>& physical, int top_k);

}  // namespace rackep
