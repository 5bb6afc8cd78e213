// File: kernels/planner.hpp
// The UltraEP quota planner on the GPU (docs/ALGORITHMS.md §2.4): one 128-thread block per NVLink domain.
// Warps run the greedy oracle with one lane per group of ranks (warp-wide arg-max picks the largest-slack
// target); the three fast-path thresholds run on three warps at once and each fallback round probes four
// thresholds, one per warp. The plan (p2l, l2p, lcnt, quota, per-domain threshold) is bit-identical to core's
// UltraEpPlanner. Kernel API in CUTLASS shape: fill PlannerArgs, check validate(), then launch_planner() on a
// stream. Usage:
//   rackep::kernels::PlannerArgs a{shape, options, d_w, d_p2l, d_l2p, d_lcnt, d_quota, d_threshold};
//   if (auto why = validate(a); !why.empty()) throw ...;
//   launch_planner(a, stream);
//   rackep::kernels::GpuPlanner gp(shape, options);  const rackep::Plan& p = gp.plan(w, stream);  //
//   synchronous
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/plan.hpp"

namespace rackep::kernels {

struct PlannerArgs {
  ClusterShape shape;
  UltraEpOptions options;
  const int64_t* w = nullptr;    ///< device [L]: global load of every logical expert
  int32_t* p2l = nullptr;        ///< device [N*S]
  int32_t* l2p = nullptr;        ///< device [L*N]
  int32_t* lcnt = nullptr;       ///< device [L]
  int64_t* quota = nullptr;      ///< device [L*N]
  int64_t* threshold = nullptr;  ///< device [D]: the accepted T per domain
};

/// Empty when the arguments can run; otherwise the reason (bad shape or options, null pointer, domain larger
/// than 96 ranks, shared memory beyond the current device's opt-in limit).
std::string validate(const PlannerArgs& args);

/// The planner needs no global workspace (all state lives in shared memory).
inline size_t workspace_bytes(const PlannerArgs&) {
  return 0;
}

/// Dynamic shared memory of one block for `shape`.
size_t planner_smem_bytes(const ClusterShape& shape);

/// Launches the planner on `stream` (asynchronous). Throws InputError when validate() fails, CudaError on a
/// CUDA failure.
void launch_planner(const PlannerArgs& args, cudaStream_t stream);

/// Owns device buffers and runs the planner synchronously from a host W, returning a core Plan.
class GpuPlanner {
 public:
  GpuPlanner(const ClusterShape& shape, const UltraEpOptions& options);
  ~GpuPlanner();
  GpuPlanner(const GpuPlanner&) = delete;
  GpuPlanner& operator=(const GpuPlanner&) = delete;

  /// Uploads W, launches, downloads the plan (synchronises `stream`). Valid until the next call.
  const Plan& plan(const std::vector<int64_t>& w, cudaStream_t stream);
  /// Launch only, on device-resident W (for timing); outputs stay on the device.
  void launch(const int64_t* d_w, cudaStream_t stream);
  const PlannerArgs& device_args() const { return args_; }

 private:
  PlannerArgs args_;
  int64_t* d_w_ = nullptr;
  Plan plan_;
};

}  // namespace rackep::kernels
