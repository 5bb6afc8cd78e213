// Host side of the GPU planner (kernels/planner.hpp): device buffers and the synchronous plan() wrapper.
#include <cuda_runtime.h>

#include <string>

#include "core/error.hpp"
#include "kernels/check.hpp"
#include "kernels/planner.hpp"

namespace rackep::kernels {

GpuPlanner::GpuPlanner(const ClusterShape& shape, const UltraEpOptions& options) {
  shape.validate("cluster shape");
  args_.shape = shape;
  args_.options = options;
  const size_t l = static_cast<size_t>(shape.num_experts());
  const size_t n = static_cast<size_t>(shape.num_ranks);
  RACKEP_CUDA_CHECK(cudaMalloc(&d_w_, sizeof(int64_t) * l));
  RACKEP_CUDA_CHECK(cudaMalloc(&args_.p2l, sizeof(int32_t) * static_cast<size_t>(shape.num_physical())));
  RACKEP_CUDA_CHECK(cudaMalloc(&args_.l2p, sizeof(int32_t) * l * n));
  RACKEP_CUDA_CHECK(cudaMalloc(&args_.lcnt, sizeof(int32_t) * l));
  RACKEP_CUDA_CHECK(cudaMalloc(&args_.quota, sizeof(int64_t) * l * n));
  RACKEP_CUDA_CHECK(cudaMalloc(&args_.threshold, sizeof(int64_t) * static_cast<size_t>(shape.num_domains())));
  args_.w = d_w_;
  plan_ = Plan::masters_only(shape, {});
  plan_.has_quota = true;
}

GpuPlanner::~GpuPlanner() {
  // Destructors must not throw: errors while freeing are ignored (the context may already be gone).
  cudaFree(d_w_);
  cudaFree(args_.p2l);
  cudaFree(args_.l2p);
  cudaFree(args_.lcnt);
  cudaFree(args_.quota);
  cudaFree(args_.threshold);
}

void GpuPlanner::launch(const int64_t* d_w, cudaStream_t stream) {
  PlannerArgs a = args_;
  a.w = d_w;
  launch_planner(a, stream);
}

const Plan& GpuPlanner::plan(const std::vector<int64_t>& w, cudaStream_t stream) {
  const ClusterShape& s = args_.shape;
  if (static_cast<int>(w.size()) != s.num_experts())
    throw InputError("gpu planner", "w", "needs " + std::to_string(s.num_experts()) + " expert loads");
  RACKEP_CUDA_CHECK(
      cudaMemcpyAsync(d_w_, w.data(), sizeof(int64_t) * w.size(), cudaMemcpyHostToDevice, stream));
  launch_planner(args_, stream);
  plan_.domain_threshold.resize(static_cast<size_t>(s.num_domains()));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(plan_.p2l.data(), args_.p2l, sizeof(int32_t) * plan_.p2l.size(),
                                    cudaMemcpyDeviceToHost, stream));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(plan_.l2p.data(), args_.l2p, sizeof(int32_t) * plan_.l2p.size(),
                                    cudaMemcpyDeviceToHost, stream));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(plan_.lcnt.data(), args_.lcnt, sizeof(int32_t) * plan_.lcnt.size(),
                                    cudaMemcpyDeviceToHost, stream));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(plan_.quota.data(), args_.quota, sizeof(int64_t) * plan_.quota.size(),
                                    cudaMemcpyDeviceToHost, stream));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(plan_.domain_threshold.data(), args_.threshold,
                                    sizeof(int64_t) * plan_.domain_threshold.size(), cudaMemcpyDeviceToHost,
                                    stream));
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return plan_;
}

}  // namespace rackep::kernels
