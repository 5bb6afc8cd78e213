// File: kernels/reroute.hpp
// Reroute on the GPU (docs/ALGORITHMS.md §2.6, dense deterministic path): rewrites one source rank's top-k
// logical expert ids into physical ids. The k-th token (in token order) of expert l goes to instance
// #{i : k' >= P_i} of l (quota plans, k' = interleave permutation of k, P = this source's rank_quota_prefix),
// or to instance k mod C (quota-less plans). Identical to core's reroute_tokens. Three kernels: per-tile
// counts (a warp per 128-token tile), an exclusive scan over tiles per expert (which also checks the counts
// against the allocation and picks the interleave stride), and the assignment (warp-wide
// __match_any_sync ranks equal ids inside each 32-entry chunk, in order).
// Usage:
//   RerouteArgs a{num_tokens, top_k, num_experts, num_ranks, has_quota, interleave, d_ids, d_prefix, d_l2p,
//   d_lcnt,
//                 d_out, d_error};
//   void* ws; cudaMalloc(&ws, workspace_bytes(a)); launch_reroute(a, ws, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/plan.hpp"

namespace rackep::kernels {

struct RerouteArgs {
  int64_t num_tokens = 0;
  int top_k = 0;
  int num_experts = 0;  ///< L
  int num_ranks = 0;    ///< N: row width of l2p and prefix
  bool has_quota = true;
  bool interleave = true;
  const int32_t* topk_ids = nullptr;  ///< device [num_tokens * top_k] logical ids
  const int32_t* prefix =
      nullptr;  ///< device [L * N] this source's inclusive rank_quota_prefix (row l: lcnt[l] used)
  const int32_t* l2p = nullptr;   ///< device [L * N]
  const int32_t* lcnt = nullptr;  ///< device [L]
  int32_t* physical = nullptr;    ///< device [num_tokens * top_k] output
  /// device int: set to 1 when an id is outside [0, L) (its output is -1), 2 when the routed count of an
  /// expert differs from prefix[l][lcnt-1]. The caller zeroes it; it is never cleared by the kernels.
  int32_t* error = nullptr;
};

std::string validate(const RerouteArgs& args);
/// Tile counts and prefixes plus one stride per expert.
size_t workspace_bytes(const RerouteArgs& args);
/// Asynchronous. Throws InputError when validate() fails, CudaError on a CUDA failure.
void launch_reroute(const RerouteArgs& args, void* workspace, cudaStream_t stream);

/// Synchronous convenience used by tests and run-layer: uploads, reroutes, downloads; throws InputError when
/// the kernel flags an error. `prefix` is [L * N] like RerouteArgs::prefix.
std::vector<int32_t> reroute_on_gpu(const Plan& plan, const std::vector<int32_t>& prefix,
                                    const std::vector<int32_t>& topk_ids, int top_k, bool interleave,
                                    cudaStream_t stream);

}  // namespace rackep::kernels
