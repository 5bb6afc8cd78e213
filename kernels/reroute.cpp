// Host side of the GPU reroute (kernels/reroute.hpp): the synchronous reroute_on_gpu() wrapper.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/check.hpp"
#include "kernels/reroute.hpp"

namespace rackep::kernels {

std::vector<int32_t> reroute_on_gpu(const Plan& plan, const std::vector<int32_t>& prefix,
                                    const std::vector<int32_t>& topk_ids, int top_k, bool interleave,
                                    cudaStream_t stream) {
  RerouteArgs a;
  a.top_k = top_k;
  a.num_tokens = top_k > 0 ? static_cast<int64_t>(topk_ids.size()) / top_k : 0;
  a.num_experts = plan.num_experts();
  a.num_ranks = plan.shape.num_ranks;
  a.has_quota = plan.has_quota;
  a.interleave = interleave;
  if (prefix.size() != plan.l2p.size()) throw InputError("gpu reroute", "prefix", "must be L x N like l2p");
  if (top_k <= 0 || topk_ids.size() % static_cast<size_t>(top_k) != 0)
    throw InputError("topk_ids", "top_k", "token ids are not a whole number of top-k rows");
  int32_t *d_ids = nullptr, *d_prefix = nullptr, *d_l2p = nullptr, *d_lcnt = nullptr, *d_out = nullptr,
          *d_err = nullptr;
  void* ws = nullptr;
  std::vector<int32_t> out(topk_ids.size());
  int32_t err = 0;
  auto release = [&] {
    cudaFree(d_ids);
    cudaFree(d_prefix);
    cudaFree(d_l2p);
    cudaFree(d_lcnt);
    cudaFree(d_out);
    cudaFree(d_err);
    cudaFree(ws);
  };
  try {
    const size_t entries = std::max<size_t>(topk_ids.size(), 1);
    RACKEP_CUDA_CHECK(cudaMalloc(&d_ids, sizeof(int32_t) * entries));
    RACKEP_CUDA_CHECK(cudaMalloc(&d_out, sizeof(int32_t) * entries));
    RACKEP_CUDA_CHECK(cudaMalloc(&d_prefix, sizeof(int32_t) * prefix.size()));
    RACKEP_CUDA_CHECK(cudaMalloc(&d_l2p, sizeof(int32_t) * plan.l2p.size()));
    RACKEP_CUDA_CHECK(cudaMalloc(&d_lcnt, sizeof(int32_t) * plan.lcnt.size()));
    RACKEP_CUDA_CHECK(cudaMalloc(&d_err, sizeof(int32_t)));
    a.topk_ids = d_ids;
    a.prefix = d_prefix;
    a.l2p = d_l2p;
    a.lcnt = d_lcnt;
    a.physical = d_out;
    a.error = d_err;
    RACKEP_CUDA_CHECK(cudaMalloc(&ws, workspace_bytes(a)));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_ids, topk_ids.data(), sizeof(int32_t) * topk_ids.size(),
                                      cudaMemcpyHostToDevice, stream));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_prefix, prefix.data(), sizeof(int32_t) * prefix.size(),
                                      cudaMemcpyHostToDevice, stream));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_l2p, plan.l2p.data(), sizeof(int32_t) * plan.l2p.size(),
                                      cudaMemcpyHostToDevice, stream));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_lcnt, plan.lcnt.data(), sizeof(int32_t) * plan.lcnt.size(),
                                      cudaMemcpyHostToDevice, stream));
    RACKEP_CUDA_CHECK(cudaMemsetAsync(d_err, 0, sizeof(int32_t), stream));
    launch_reroute(a, ws, stream);
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(out.data(), d_out, sizeof(int32_t) * topk_ids.size(),
                                      cudaMemcpyDeviceToHost, stream));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(&err, d_err, sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    release();
    throw;
  }
  release();
  if (err == 1) throw InputError("topk_ids", "expert", "an expert id lies outside [0, L)");
  if (err == 2) throw InputError("topk_ids", "counts", "routed counts differ from the source's allocation");
  return out;
}

}  // namespace rackep::kernels
