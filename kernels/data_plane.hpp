// File: kernels/data_plane.hpp
// Engines that run core's data-plane transfer plans on GPUs (docs/ALGORITHMS.md §3):
//   WeightSyncEngine executes a WeightSyncTaskList (core/transfer.hpp: direct and relay tasks with tile
//   prefix
//     sums, ready flags) with the persistent tile-streamed copy kernel; copies are bit-exact, as in
//     execute_weight_sync_cpu.
//   GradReduceEngine executes a GradReducePlan with the deterministic ordered-sum kernel; results equal
//     grad_reduce_reference (core/ref_grad_reduce.hpp) bit for bit.
// Buffers are device pointers valid on the launching device: the same GPU (emulated ranks), a peer GPU with
// peer access enabled, or a CUDA IPC mapping (one process per GPU). Usage:
//   WeightSyncEngine ws(num_sms);
//   ws.prepare_all_ranks(build_weight_sync_tasks(plan_weight_sync(plan, eb, opts)), buffers);
//   ws.run(/*epoch=*/++calls, stream);
//   GradReduceEngine gr;  gr.prepare(plan_grad_reduce(plan, eb), grads);  gr.run(42, stream);
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "core/transfer.hpp"
#include "kernels/copy_kernels.hpp"

namespace rackep::kernels {

/// Per physical slot: its B_w-byte weight buffer (fc1 then fc2); per rank: its flags_per_rank ready flags
/// (uint32, zeroed once at allocation; epochs only grow, so they are never reset).
struct WeightSyncBuffers {
  std::vector<uint8_t*> slot_weights;
  std::vector<uint32_t*> rank_flags;
};

class WeightSyncEngine {
 public:
  /// `num_sms` sizes the persistent grids (all ranks: 4 x SMs; stage 1: 2 x SMs; stage 2: SMs, as in §3.3).
  explicit WeightSyncEngine(int num_sms);
  ~WeightSyncEngine();
  WeightSyncEngine(const WeightSyncEngine&) = delete;
  WeightSyncEngine& operator=(const WeightSyncEngine&) = delete;

  /// Every rank's stage 1 and stage 2 in one launch (emulated ranks on one GPU). Tasks are ordered by
  /// (chunk, stage) with whole-shard direct tasks last, so a stage-2 tile always has a later ticket than the
  /// stage-1 tiles it waits for: no deadlock on any grid, and forwarding of chunk c starts while later chunks
  /// are still being sent. Throws InputError when a stage-2 task would precede its producer, when a buffer is
  /// missing or misaligned (16 B), or when sizes are not multiples of 16.
  void prepare_all_ranks(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers,
                         cudaStream_t stream);
  /// Stage 1 and stage 2 of ranks [first_rank, first_rank + num_ranks) in one launch, in the same (chunk,
  /// stage) order (one GPU hosting a block of ranks, the others' blocks launched concurrently on their own
  /// GPUs: a stage-2 tile may wait on a flag raised by another GPU's stage 1, which never waits, so no GPU
  /// can deadlock). Flags are written and read with system scope; buffers of other GPUs must be reachable
  /// (peer access or CUDA IPC). Throws InputError as prepare_all_ranks, or when a stage-2 task has no
  /// producer anywhere in the list.
  void prepare_ranks(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers, int first_rank,
                     int num_ranks, cudaStream_t stream);
  /// One rank's stage (1 or 2) in task-list order, for one device or process per rank: launch stage 1 and
  /// stage 2 on two streams of that rank's device (stage 2 spins on flags raised by other ranks' stage 1).
  void prepare_rank_stage(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers, int rank,
                          int stage, cudaStream_t stream);
  /// Resets the ticket and per-task counters and launches. Every rank of one call must use the same epoch,
  /// larger than any epoch used before with these flags.
  void run(uint32_t epoch, cudaStream_t stream);

  int64_t total_tiles() const { return total_tiles_; }
  /// Bytes stored into destination slots by one run.
  int64_t bytes_written() const { return bytes_written_; }
  /// Bytes read from source slots by one run (each tile is read once for all its destinations).
  int64_t bytes_read() const { return bytes_read_; }
  int grid() const { return grid_; }

 private:
  void upload(const std::vector<CopyTask>& tasks, const std::vector<uint8_t*>& dsts,
              const std::vector<uint32_t*>& signals, const std::vector<int32_t>& remaining, int grid,
              cudaStream_t stream);
  int num_sms_;
  int grid_ = 0;
  int64_t total_tiles_ = 0;
  int64_t bytes_written_ = 0;
  int64_t bytes_read_ = 0;
  int32_t num_tasks_ = 0;
  CopyTask* d_tasks_ = nullptr;
  uint8_t** d_dsts_ = nullptr;
  uint32_t** d_signals_ = nullptr;
  int32_t* d_remaining_ = nullptr;
  int32_t* d_remaining_init_ = nullptr;
  unsigned long long* d_ticket_ = nullptr;
  size_t cap_tasks_ = 0, cap_dsts_ = 0, cap_signals_ = 0;
};

/// Per physical slot: its fp32 gradient buffer (grad_bytes: fc1 then fc2).
struct GradReduceBuffers {
  std::vector<float*> slot_grads;
};

class GradReduceEngine {
 public:
  GradReduceEngine();
  ~GradReduceEngine();
  GradReduceEngine(const GradReduceEngine&) = delete;
  GradReduceEngine& operator=(const GradReduceEngine&) = delete;

  /// Tasks for every (master, shard) of `plan` whose puller is `rank` (-1: all ranks, emulated on one GPU).
  /// Throws InputError on a missing or misaligned buffer.
  void prepare(const GradReducePlan& plan, const GradReduceBuffers& buffers, int rank, cudaStream_t stream);
  /// Tasks whose puller is in [first_rank, first_rank + num_ranks) (one GPU hosting a block of ranks; the
  /// replicas may live on peer GPUs or behind CUDA IPC mappings).
  void prepare_ranks(const GradReducePlan& plan, const GradReduceBuffers& buffers, int first_rank,
                     int num_ranks, cudaStream_t stream);
  /// Launches with `num_blocks` persistent blocks (the grad_reduce SM budget, default 42 in UltraEP).
  void run(int num_blocks, cudaStream_t stream);

  int64_t total_tiles() const { return total_tiles_; }
  /// Gradient bytes read from replicas by one run (zeros written back: the same amount).
  int64_t pulled_bytes() const { return pulled_bytes_; }

 private:
  int32_t num_tasks_ = 0;
  int64_t total_tiles_ = 0;
  int64_t pulled_bytes_ = 0;
  ReduceTask* d_tasks_ = nullptr;
  float** d_replicas_ = nullptr;
  size_t cap_tasks_ = 0, cap_replicas_ = 0;
};

}  // namespace rackep::kernels
