#include "kernels/data_plane.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <map>
#include <string>
#include <tuple>

#include "core/error.hpp"
#include "core/ref_grad_reduce.hpp"
#include "kernels/check.hpp"

namespace rackep::kernels {
namespace {

template <typename T>
void ensure_capacity(T*& ptr, size_t& cap, size_t needed) {
  if (needed <= cap) return;
  cudaFree(ptr);
  ptr = nullptr;
  cap = 0;
  RACKEP_CUDA_CHECK(cudaMalloc(&ptr, sizeof(T) * std::max<size_t>(needed, 1)));
  cap = needed;
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Resolves the addresses of one task of rank `rank` into a CopyTask and appends its destinations and signals.
void resolve(const WeightSyncTaskList& list, const WeightSyncBuffers& buf, const StageTasks& st,
             const WeightSyncTask& t, int rank, int64_t tile_begin, std::vector<CopyTask>& tasks,
             std::vector<uint8_t*>& dsts, std::vector<uint32_t*>& signals, std::vector<int32_t>& remaining,
             int64_t& bytes_written) {
  auto slot = [&](int32_t p) {
    if (p < 0 || static_cast<size_t>(p) >= buf.slot_weights.size() || buf.slot_weights[p] == nullptr)
      throw InputError("weight_sync", "slot_weights", "no buffer for physical slot " + std::to_string(p));
    return buf.slot_weights[p];
  };
  auto flags = [&](int32_t r, int32_t slot_index) {
    if (r < 0 || static_cast<size_t>(r) >= buf.rank_flags.size() || buf.rank_flags[r] == nullptr)
      throw InputError("weight_sync", "rank_flags", "no ready flags for rank " + std::to_string(r));
    if (slot_index < 0 || slot_index >= list.flags_per_rank)
      throw InputError("weight_sync", "flags", "flag slot " + std::to_string(slot_index) + " out of range");
    return buf.rank_flags[r] + slot_index;
  };
  if (t.num_bytes % 16 != 0)
    throw InputError("weight_sync", "tasks", "task size is not a multiple of 16 bytes");
  const int64_t at = list.expert.shard_offset_bytes(t.shard) + t.offset_bytes;
  CopyTask c;
  c.src = slot(t.src_physical) + at;
  c.num_bytes = t.num_bytes;
  c.tile_begin = tile_begin;
  c.dst_begin = static_cast<int32_t>(dsts.size());
  c.num_dst = t.num_dst;
  c.signal_begin = static_cast<int32_t>(signals.size());
  c.num_signals = t.num_signals;
  c.wait_flag = t.wait_flag >= 0 ? flags(rank, t.wait_flag) : nullptr;
  if (!aligned16(c.src)) throw InputError("weight_sync", "slot_weights", "source is not 16-byte aligned");
  for (int32_t d = 0; d < t.num_dst; ++d) {
    uint8_t* p = slot(st.dst_physical[t.dst_begin + d]) + at;
    if (!aligned16(p)) throw InputError("weight_sync", "slot_weights", "destination is not 16-byte aligned");
    dsts.push_back(p);
  }
  for (int32_t s = 0; s < t.num_signals; ++s) {
    const ReadySignal& sig = st.ready_signals[t.signal_begin + s];
    signals.push_back(flags(sig.rank, sig.flag_slot));
  }
  tasks.push_back(c);
  remaining.push_back(static_cast<int32_t>(t.num_tiles));
  bytes_written += t.num_bytes * t.num_dst;
}

}  // namespace

WeightSyncEngine::WeightSyncEngine(int num_sms) : num_sms_(std::max(num_sms, 1)) {
  RACKEP_CUDA_CHECK(cudaMalloc(&d_ticket_, sizeof(unsigned long long)));
}

WeightSyncEngine::~WeightSyncEngine() {
  cudaFree(d_tasks_);
  cudaFree(d_dsts_);
  cudaFree(d_signals_);
  cudaFree(d_remaining_);
  cudaFree(d_remaining_init_);
  cudaFree(d_ticket_);
}

void WeightSyncEngine::upload(const std::vector<CopyTask>& tasks, const std::vector<uint8_t*>& dsts,
                              const std::vector<uint32_t*>& signals, const std::vector<int32_t>& remaining,
                              int grid, cudaStream_t stream) {
  size_t cap_remaining = cap_tasks_;
  size_t cap_remaining_init = cap_tasks_;
  ensure_capacity(d_remaining_, cap_remaining, tasks.size());
  ensure_capacity(d_remaining_init_, cap_remaining_init, tasks.size());
  ensure_capacity(d_tasks_, cap_tasks_, tasks.size());  // the three arrays share cap_tasks_
  ensure_capacity(d_dsts_, cap_dsts_, dsts.size());
  ensure_capacity(d_signals_, cap_signals_, signals.size());
  if (!tasks.empty()) {
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_tasks_, tasks.data(), sizeof(CopyTask) * tasks.size(),
                                      cudaMemcpyHostToDevice, stream));
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_remaining_init_, remaining.data(), sizeof(int32_t) * remaining.size(),
                                      cudaMemcpyHostToDevice, stream));
  }
  if (!dsts.empty())
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_dsts_, dsts.data(), sizeof(uint8_t*) * dsts.size(),
                                      cudaMemcpyHostToDevice, stream));
  if (!signals.empty())
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_signals_, signals.data(), sizeof(uint32_t*) * signals.size(),
                                      cudaMemcpyHostToDevice, stream));
  // Pageable sources: make the copies complete before the host vectors go away.
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  num_tasks_ = static_cast<int32_t>(tasks.size());
  total_tiles_ = 0;
  bytes_read_ = 0;
  for (size_t i = 0; i < tasks.size(); ++i) {
    total_tiles_ += remaining[i];
    bytes_read_ += tasks[i].num_bytes;
  }
  grid_ = static_cast<int>(std::min<int64_t>(grid, std::max<int64_t>(total_tiles_, 1)));
}

void WeightSyncEngine::prepare_all_ranks(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers,
                                         cudaStream_t stream) {
  prepare_ranks(list, buffers, 0, list.shape.num_ranks, stream);
}

void WeightSyncEngine::prepare_ranks(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers,
                                     int first_rank, int num_ranks, cudaStream_t stream) {
  if (first_rank < 0 || num_ranks < 0 || first_rank + num_ranks > list.shape.num_ranks)
    throw InputError("weight_sync", "ranks", "rank block out of range");
  struct Entry {
    int chunk_key, stage, rank, index;
  };
  std::vector<Entry> order;
  const int n = list.shape.num_ranks;
  for (int r = 0; r < n; ++r) {
    for (int s = 1; s <= 2; ++s) {
      const StageTasks& st = s == 1 ? list.ranks[r].stage1 : list.ranks[r].stage2;
      for (size_t i = 0; i < st.tasks.size(); ++i) {
        const int chunk = st.tasks[i].chunk;
        order.push_back({chunk < 0 ? INT_MAX : chunk, s, r, static_cast<int>(i)});
      }
    }
  }
  std::stable_sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.chunk_key, a.stage, a.rank, a.index) < std::tie(b.chunk_key, b.stage, b.rank, b.index);
  });
  std::vector<CopyTask> tasks;
  std::vector<uint8_t*> dsts;
  std::vector<uint32_t*> signals;
  std::vector<int32_t> remaining;
  std::map<std::pair<int, int>, size_t> producer;  // (rank, flag slot) -> position of the signalling task
  bytes_written_ = 0;
  int64_t tile = 0;
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const Entry& e = order[pos];
    const StageTasks& st = e.stage == 1 ? list.ranks[e.rank].stage1 : list.ranks[e.rank].stage2;
    const WeightSyncTask& t = st.tasks[e.index];
    for (int32_t s = 0; s < t.num_signals; ++s) {
      const ReadySignal& sig = st.ready_signals[t.signal_begin + s];
      producer[{sig.rank, sig.flag_slot}] = pos;
    }
    if (t.wait_flag >= 0 && producer.find({e.rank, t.wait_flag}) == producer.end())
      throw InputError(
          "weight_sync", "tasks",
          "a stage-2 task of rank " + std::to_string(e.rank) + " precedes the chunk it forwards");
    if (e.rank < first_rank || e.rank >= first_rank + num_ranks) continue;
    resolve(list, buffers, st, t, e.rank, tile, tasks, dsts, signals, remaining, bytes_written_);
    tile += t.num_tiles;
  }
  upload(tasks, dsts, signals, remaining, 4 * num_sms_, stream);
}

void WeightSyncEngine::prepare_rank_stage(const WeightSyncTaskList& list, const WeightSyncBuffers& buffers,
                                          int rank, int stage, cudaStream_t stream) {
  if (rank < 0 || rank >= list.shape.num_ranks || (stage != 1 && stage != 2))
    throw InputError("weight_sync", "rank/stage", "rank out of range or stage not 1/2");
  const StageTasks& st = stage == 1 ? list.ranks[rank].stage1 : list.ranks[rank].stage2;
  std::vector<CopyTask> tasks;
  std::vector<uint8_t*> dsts;
  std::vector<uint32_t*> signals;
  std::vector<int32_t> remaining;
  bytes_written_ = 0;
  for (size_t i = 0; i < st.tasks.size(); ++i)
    resolve(list, buffers, st, st.tasks[i], rank, st.tile_offsets[i], tasks, dsts, signals, remaining,
            bytes_written_);
  upload(tasks, dsts, signals, remaining, (stage == 1 ? 2 : 1) * num_sms_, stream);
}

void WeightSyncEngine::run(uint32_t epoch, cudaStream_t stream) {
  if (total_tiles_ == 0) return;
  RACKEP_CUDA_CHECK(cudaMemsetAsync(d_ticket_, 0, sizeof(unsigned long long), stream));
  RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_remaining_, d_remaining_init_, sizeof(int32_t) * num_tasks_,
                                    cudaMemcpyDeviceToDevice, stream));
  CopyArgs a;
  a.tasks = d_tasks_;
  a.num_tasks = num_tasks_;
  a.total_tiles = total_tiles_;
  a.dsts = d_dsts_;
  a.signals = d_signals_;
  a.remaining = d_remaining_;
  a.ticket = d_ticket_;
  a.epoch = epoch;
  a.grid = grid_;
  launch_copy_kernel(a, stream);
}

GradReduceEngine::GradReduceEngine() = default;

GradReduceEngine::~GradReduceEngine() {
  cudaFree(d_tasks_);
  cudaFree(d_replicas_);
}

void GradReduceEngine::prepare(const GradReducePlan& plan, const GradReduceBuffers& buffers, int rank,
                               cudaStream_t stream) {
  if (rank < 0)
    prepare_ranks(plan, buffers, 0, plan.shape.num_ranks, stream);
  else
    prepare_ranks(plan, buffers, rank, 1, stream);
}

void GradReduceEngine::prepare_ranks(const GradReducePlan& plan, const GradReduceBuffers& buffers,
                                     int first_rank, int num_ranks, cudaStream_t stream) {
  auto grad = [&](int32_t p) {
    if (p < 0 || static_cast<size_t>(p) >= buffers.slot_grads.size() || buffers.slot_grads[p] == nullptr)
      throw InputError("grad_reduce", "slot_grads", "no buffer for physical slot " + std::to_string(p));
    if (!aligned16(buffers.slot_grads[p]))
      throw InputError("grad_reduce", "slot_grads", "slot " + std::to_string(p) + " is not 16-byte aligned");
    return buffers.slot_grads[p];
  };
  std::vector<ReduceTask> tasks;
  std::vector<float*> replicas;
  total_tiles_ = 0;
  pulled_bytes_ = 0;
  const int s_slots = plan.shape.slots_per_rank();
  for (const GradReduceGroup& g : grad_reduce_groups(plan)) {
    const int puller = g.master_physical / s_slots;
    if (puller < first_rank || puller >= first_rank + num_ranks) continue;
    for (int shard = 0; shard < ExpertBytes::kNumShards; ++shard) {
      const int64_t offset = shard == 0 ? 0 : plan.expert.shard_elements(0);
      const int64_t floats = plan.expert.shard_elements(shard);
      if (floats % 4 != 0)
        throw InputError("grad_reduce", "expert", "shard size is not a multiple of 4 floats");
      ReduceTask t;
      t.master = grad(g.master_physical) + offset;
      t.num_floats = floats;
      t.tile_begin = total_tiles_;
      t.replica_begin = static_cast<int32_t>(replicas.size());
      t.num_replicas = static_cast<int32_t>(g.replica_physicals.size());
      for (int32_t p : g.replica_physicals) replicas.push_back(grad(p) + offset);
      tasks.push_back(t);
      total_tiles_ += (floats + kReduceTileFloats - 1) / kReduceTileFloats;
      pulled_bytes_ += floats * 4 * t.num_replicas;
    }
  }
  ensure_capacity(d_tasks_, cap_tasks_, tasks.size());
  ensure_capacity(d_replicas_, cap_replicas_, replicas.size());
  if (!tasks.empty())
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_tasks_, tasks.data(), sizeof(ReduceTask) * tasks.size(),
                                      cudaMemcpyHostToDevice, stream));
  if (!replicas.empty())
    RACKEP_CUDA_CHECK(cudaMemcpyAsync(d_replicas_, replicas.data(), sizeof(float*) * replicas.size(),
                                      cudaMemcpyHostToDevice, stream));
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  num_tasks_ = static_cast<int32_t>(tasks.size());
}

void GradReduceEngine::run(int num_blocks, cudaStream_t stream) {
  ReduceArgs a;
  a.tasks = d_tasks_;
  a.num_tasks = num_tasks_;
  a.total_tiles = total_tiles_;
  a.replicas = d_replicas_;
  a.grid = static_cast<int>(std::min<int64_t>(std::max(num_blocks, 1), std::max<int64_t>(total_tiles_, 1)));
  launch_reduce_kernel(a, stream);
}

}  // namespace rackep::kernels
