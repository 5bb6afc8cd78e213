// File: kernels/copy_kernels.hpp
// Launch interface of the two data-plane copy kernels (device code in kernels/copy_kernels.cu). Callers
// normally use the engines in kernels/weight_sync.hpp and kernels/grad_reduce.hpp, which build these
// arguments from core's transfer plans; the raw interface is what the engines, the benchmarks and the tests
// share.
//   weight_sync: persistent blocks take 32 KiB tiles from a global ticket counter, binary-search the owning
//   task
//     (tile prefix sums, docs/ALGORITHMS.md §3.3) and copy the tile to every destination with 16-byte
//     vectors. A task with a wait flag spins until flag >= epoch; a task with ready signals raises them (flag
//     = epoch) when its last tile is done, so relays forward a 256 KiB chunk as soon as it has arrived.
//   grad_reduce: every 64 KiB tile of a (master, shard) group becomes ((g_master + g_1) + g_2) + ... and the
//   replica
//     tiles are zeroed (§3.6, deterministic variant).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace rackep::kernels {

/// A weight_sync task with every address resolved (device pointers).
struct CopyTask {
  const uint8_t* src = nullptr;
  int64_t num_bytes = 0;   ///< multiple of 16
  int64_t tile_begin = 0;  ///< first global tile (ticket) of the task
  int32_t dst_begin = 0;   ///< into CopyArgs::dsts (each already offset to this task's range)
  int32_t num_dst = 0;
  int32_t signal_begin = 0;  ///< into CopyArgs::signals
  int32_t num_signals = 0;
  uint32_t* wait_flag = nullptr;  ///< spin until *wait_flag >= epoch before each tile; null = no wait
};

struct CopyArgs {
  const CopyTask* tasks = nullptr;  ///< device [num_tasks], ordered by tile_begin
  int32_t num_tasks = 0;
  int64_t total_tiles = 0;
  uint8_t* const* dsts = nullptr;        ///< device
  uint32_t* const* signals = nullptr;    ///< device: flags to raise
  int32_t* remaining = nullptr;          ///< device [num_tasks]: tiles left per task (set before each run)
  unsigned long long* ticket = nullptr;  ///< device: zeroed before each run
  uint32_t epoch = 1;
  int grid = 0;  ///< persistent blocks
};

constexpr int64_t kCopyTileBytes = 32 * 1024;
constexpr int kCopyThreads = 256;

/// Asynchronous launch of the weight_sync copy kernel. Throws CudaError on a launch failure.
void launch_copy_kernel(const CopyArgs& args, cudaStream_t stream);

/// One (master, shard) reduction: master and replicas hold num_floats floats (multiple of 4, 16-byte
/// aligned).
struct ReduceTask {
  float* master = nullptr;
  int64_t num_floats = 0;
  int64_t tile_begin = 0;
  int32_t replica_begin = 0;  ///< into ReduceArgs::replicas, summation order
  int32_t num_replicas = 0;
};

struct ReduceArgs {
  const ReduceTask* tasks = nullptr;  ///< device, ordered by tile_begin
  int32_t num_tasks = 0;
  int64_t total_tiles = 0;
  float* const* replicas = nullptr;  ///< device
  int grid = 0;                      ///< blocks (the "grad_reduce SMs")
};

constexpr int64_t kReduceTileFloats = 16 * 1024;

/// Asynchronous launch of the grad_reduce kernel. Throws CudaError on a launch failure.
void launch_reduce_kernel(const ReduceArgs& args, cudaStream_t stream);

/// An empty kernel (one block of 32 threads): the launch-overhead probe of `rackep calibrate`.
void launch_noop_kernel(cudaStream_t stream);

}  // namespace rackep::kernels
