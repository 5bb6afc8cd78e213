// weight_sync task lists (docs/ALGORITHMS.md §3.2, §3.3) built from a fixed-master TransferPlan, and the CPU
// reference executor of the tile-streamed copy engine.
#include <algorithm>
#include <cstring>

#include "core/error.hpp"
#include "core/transfer.hpp"

namespace rackep {

int StageTasks::task_of_tile(int64_t tile) const {
  RACKEP_CHECK(tile >= 0 && tile < total_tiles(), "tile index out of range");
  // First offset > tile, minus one: the task whose range [offset[t], offset[t+1]) holds the tile. Empty tasks
  // (zero tiles) share their offset with the next task and are skipped by upper_bound.
  const auto it = std::upper_bound(tile_offsets.begin(), tile_offsets.end(), tile);
  return static_cast<int>(it - tile_offsets.begin()) - 1;
}

int32_t WeightSyncTaskList::flag_slot(int32_t physical, int shard, int chunk) const {
  const int replica_offset = shape.slot_of_physical(physical) - shape.num_masters;
  RACKEP_CHECK(replica_offset >= 0, "ready flags exist only for redundant slots");
  return (replica_offset * ExpertBytes::kNumShards + shard) * max_chunks_per_shard + chunk;
}

namespace {

/// Appends one task; `dsts` are destination slots, `signals` ready signals (stage-1 relay tasks only).
void push_task(StageTasks& st, const ExpertBytes& eb, int32_t expert, int shard, int chunk,
               int32_t src_physical, const std::vector<int32_t>& dsts,
               const std::vector<ReadySignal>& signals, int32_t wait_flag) {
  WeightSyncTask t;
  t.expert = expert;
  t.shard = shard;
  t.chunk = chunk;
  t.src_physical = src_physical;
  const int64_t shard_bytes = eb.shard_bytes(shard);
  if (chunk < 0) {
    t.offset_bytes = 0;
    t.num_bytes = shard_bytes;
  } else {
    t.offset_bytes = int64_t{chunk} * ExpertBytes::kChunkBytes;
    t.num_bytes = std::min(ExpertBytes::kChunkBytes, shard_bytes - t.offset_bytes);
  }
  t.dst_begin = static_cast<int32_t>(st.dst_physical.size());
  t.num_dst = static_cast<int32_t>(dsts.size());
  st.dst_physical.insert(st.dst_physical.end(), dsts.begin(), dsts.end());
  t.signal_begin = static_cast<int32_t>(st.ready_signals.size());
  t.num_signals = static_cast<int32_t>(signals.size());
  st.ready_signals.insert(st.ready_signals.end(), signals.begin(), signals.end());
  t.wait_flag = wait_flag;
  t.num_tiles = ceil_div_bytes(t.num_bytes, ExpertBytes::kTileBytes);
  st.tasks.push_back(t);
  st.tile_offsets.push_back(st.tile_offsets.back() + t.num_tiles);
}

}  // namespace

WeightSyncTaskList build_weight_sync_tasks(const TransferPlan& plan) {
  const ClusterShape& shape = plan.shape;
  const ExpertBytes& eb = plan.expert;
  WeightSyncTaskList list;
  list.shape = shape;
  list.expert = eb;
  list.max_chunks_per_shard = eb.max_chunks_per_shard();
  list.flags_per_rank = shape.num_redundant * ExpertBytes::kNumShards * list.max_chunks_per_shard;
  list.ranks.resize(static_cast<size_t>(shape.num_ranks));

  if (plan.kind == TransferKind::kPersistent) {
    // Resident-set diff: every copy is one direct task per shard on its sender, in copy order.
    for (const TransferCopy& c : plan.copies)
      for (int shard = 0; shard < ExpertBytes::kNumShards; ++shard)
        push_task(list.ranks[c.src_rank].stage1, eb, c.expert, shard, /*chunk=*/-1, c.src_physical,
                  {c.dst_physical}, {}, /*wait_flag=*/-1);
    return list;
  }
  std::vector<int> tree_of_expert(static_cast<size_t>(shape.num_experts()), -1);
  for (size_t i = 0; i < plan.relay_trees.size(); ++i)
    tree_of_expert[plan.relay_trees[i].expert] = static_cast<int>(i);

  // Copies of one master are contiguous (TransferPlan ordering contract): walk them group by group.
  size_t i = 0;
  while (i < plan.copies.size()) {
    const int32_t expert = plan.copies[i].expert;
    size_t end = i;
    while (end < plan.copies.size() && plan.copies[end].expert == expert) ++end;
    const int tree_index = tree_of_expert[expert];
    if (tree_index < 0) {
      // Direct: one task per shard on the master, destinations = every replica in l2p order.
      const int32_t master_phys = plan.copies[i].src_physical;
      std::vector<int32_t> dsts;
      for (size_t c = i; c < end; ++c) {
        RACKEP_CHECK(plan.copies[c].stage == 1 && plan.copies[c].src_physical == master_phys,
                     "direct master with a relay copy");
        dsts.push_back(plan.copies[c].dst_physical);
      }
      StageTasks& st = list.ranks[shape.rank_of_physical(master_phys)].stage1;
      for (int shard = 0; shard < ExpertBytes::kNumShards; ++shard)
        push_task(st, eb, expert, shard, /*chunk=*/-1, master_phys, dsts, {}, /*wait_flag=*/-1);
    } else {
      const RelayTree& tree = plan.relay_trees[tree_index];
      std::vector<int32_t> relay_dsts;
      for (const RelayNode& node : tree.relays) relay_dsts.push_back(node.physical);
      StageTasks& st1 = list.ranks[tree.master_rank].stage1;
      for (int shard = 0; shard < ExpertBytes::kNumShards; ++shard) {
        for (int chunk = 0; chunk < eb.shard_chunks(shard); ++chunk) {
          std::vector<ReadySignal> signals;
          for (const RelayNode& node : tree.relays)
            signals.push_back(ReadySignal{node.rank, list.flag_slot(node.physical, shard, chunk)});
          push_task(st1, eb, expert, shard, chunk, tree.master_physical, relay_dsts, signals, -1);
        }
      }
      for (const RelayNode& node : tree.relays) {
        if (node.child_physicals.empty()) continue;
        StageTasks& st2 = list.ranks[node.rank].stage2;
        for (int shard = 0; shard < ExpertBytes::kNumShards; ++shard)
          for (int chunk = 0; chunk < eb.shard_chunks(shard); ++chunk)
            push_task(st2, eb, expert, shard, chunk, node.physical, node.child_physicals, {},
                      list.flag_slot(node.physical, shard, chunk));
      }
    }
    i = end;
  }
  return list;
}

// ---------------------------------------------------------------------------------------------------------
// CPU reference executor
// ---------------------------------------------------------------------------------------------------------

namespace {

struct StageCursor {
  const StageTasks* stage = nullptr;
  int64_t next_tile = 0;
  bool done() const { return next_tile >= stage->total_tiles(); }
};

void check_buffers(const WeightSyncTaskList& list, const std::vector<std::vector<uint8_t>>& slot_buffers) {
  const std::string source = "weight_sync cpu";
  if (static_cast<int64_t>(slot_buffers.size()) != list.shape.num_physical())
    throw InputError(source, "slot_buffers",
                     "need one buffer per physical slot (" + std::to_string(list.shape.num_physical()) +
                         "), got " + std::to_string(slot_buffers.size()));
  const int64_t bw = list.expert.weight_bytes();
  auto check = [&](int32_t p) {
    if (static_cast<int64_t>(slot_buffers[p].size()) != bw)
      throw InputError(source, "slot_buffers",
                       "slot " + std::to_string(p) + " has " + std::to_string(slot_buffers[p].size()) +
                           " bytes, expected B_w = " + std::to_string(bw));
  };
  for (const RankWeightSyncTasks& rt : list.ranks)
    for (const StageTasks* st : {&rt.stage1, &rt.stage2}) {
      for (const WeightSyncTask& t : st->tasks) check(t.src_physical);
      for (int32_t p : st->dst_physical) check(p);
    }
}

}  // namespace

CpuCopyStats execute_weight_sync_cpu(const WeightSyncTaskList& list,
                                     std::vector<std::vector<uint8_t>>& slot_buffers) {
  check_buffers(list, slot_buffers);
  const int n = list.shape.num_ranks;
  const ExpertBytes& eb = list.expert;
  constexpr int64_t kEpoch = 1;  // fresh flags per call; the GPU bumps the epoch instead of resetting
  std::vector<std::vector<int64_t>> flags(static_cast<size_t>(n),
                                          std::vector<int64_t>(static_cast<size_t>(list.flags_per_rank), 0));
  std::vector<std::vector<int64_t>> remaining(static_cast<size_t>(n));
  std::vector<StageCursor> stage1(static_cast<size_t>(n)), stage2(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    stage1[r].stage = &list.ranks[r].stage1;
    stage2[r].stage = &list.ranks[r].stage2;
    for (const WeightSyncTask& t : list.ranks[r].stage1.tasks) remaining[r].push_back(t.num_tiles);
  }
  CpuCopyStats stats;

  // Copies tile `local` of task t (from src slot to every destination). Returns the bytes of the tile.
  auto copy_tile = [&](const StageTasks& st, const WeightSyncTask& t, int64_t local) {
    const int64_t begin = local * ExpertBytes::kTileBytes;
    const int64_t len = std::min(ExpertBytes::kTileBytes, t.num_bytes - begin);
    const int64_t at = eb.shard_offset_bytes(t.shard) + t.offset_bytes + begin;
    const uint8_t* src = slot_buffers[t.src_physical].data() + at;
    for (int32_t d = 0; d < t.num_dst; ++d) {
      const int32_t dst = st.dst_physical[t.dst_begin + d];
      RACKEP_CHECK(dst != t.src_physical, "copy task writes its own source");
      std::memcpy(slot_buffers[dst].data() + at, src, static_cast<size_t>(len));
      stats.bytes_written += len;
    }
    ++stats.tiles;
  };

  // Stage 2 of every rank first runs as far as its ready flags allow (the most adversarial schedule:
  // forwarding never waits for anything but its flag), then every rank's stage 1 copies one tile. Repeat
  // until done.
  for (;;) {
    bool pending = false;
    bool progress = false;
    for (int r = 0; r < n; ++r) {
      StageCursor& c = stage2[r];
      while (!c.done()) {
        const int ti = c.stage->task_of_tile(c.next_tile);
        const WeightSyncTask& t = c.stage->tasks[ti];
        RACKEP_CHECK(t.wait_flag >= 0 && t.wait_flag < list.flags_per_rank,
                     "stage-2 task without a ready flag");
        if (flags[r][t.wait_flag] < kEpoch) break;  // spin: the relay's chunk has not fully arrived yet
        copy_tile(*c.stage, t, c.next_tile - c.stage->tile_offsets[ti]);
        ++c.next_tile;
        progress = true;
      }
      pending = pending || !c.done();
    }
    for (int r = 0; r < n; ++r) {
      StageCursor& c = stage1[r];
      if (c.done()) continue;
      pending = true;
      const int ti = c.stage->task_of_tile(c.next_tile);
      const WeightSyncTask& t = c.stage->tasks[ti];
      copy_tile(*c.stage, t, c.next_tile - c.stage->tile_offsets[ti]);
      ++c.next_tile;
      progress = true;
      if (--remaining[r][ti] == 0) {
        for (int32_t s = 0; s < t.num_signals; ++s) {
          const ReadySignal& sig = c.stage->ready_signals[t.signal_begin + s];
          RACKEP_CHECK(sig.flag_slot >= 0 && sig.flag_slot < list.flags_per_rank, "ready flag out of range");
          flags[sig.rank][sig.flag_slot] = kEpoch;
          ++stats.signals;
        }
      }
    }
    if (!pending) break;
    RACKEP_CHECK(progress, "weight_sync deadlock: a stage-2 task waits on a ready flag that is never raised");
  }
  return stats;
}

}  // namespace rackep
