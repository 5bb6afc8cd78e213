// File: core/reroute.hpp
// Reroute (docs/ALGORITHMS.md §2.6): logical -> physical routing of one source rank's tokens. CPU reference
// of the GPU reroute kernel.
//   - quota plans: the k-th token (in token order) of expert l goes to instance #{i : k' >= P_i}, where P is
//   the
//     source's rank_quota_prefix and k' the interleave permutation of k;
//   - quota-less plans (legacy, eplb): instance k mod C (round-robin).
// Usage:
//   std::vector<int32_t> phys = rackep::reroute_tokens(plan, alloc, source, topk_ids, top_k, true);
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.hpp"

namespace rackep {

/// Interleave stride s for Q tokens (§2.6): floor(Q/2)+1 moved to the first value coprime with Q.
int64_t interleave_stride(int64_t q);

/// Instance index of the ordinal-k token of `expert` given the source's inclusive prefix P[0..c-1] (P[c-1] =
/// Q).
int reroute_instance(int expert, int64_t k, const int32_t* prefix, int c, bool interleave);

/// Rewrites one source rank's top-k logical ids (num_tokens x top_k, token-major) into physical ids.
/// Uses the quota prefix of `alloc` for quota plans and round-robin otherwise. Throws InputError("topk_ids",
/// ...) on an expert id outside [0, L) or when a token count does not match the allocation.
std::vector<int32_t> reroute_tokens(const Plan& plan, const Allocation& alloc, int source,
                                    const std::vector<int32_t>& topk_ids, int top_k, bool interleave);

}  // namespace rackep
