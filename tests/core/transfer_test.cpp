// Transfer plans (core/transfer.hpp), part 1: docs/ALGORITHMS.md §3 test vectors TV-I and TV-J, byte
// conservation and the CPU reference copy engine. Part 2 (transfer_sync_test.cpp): persistent placements,
// grad_reduce, input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/transfer.hpp"
#include "tests/core/transfer_test_util.hpp"

namespace rackep {
namespace {

using namespace rackep::test;

// ---------------------------------------------------------------------------------------------------------
// TV-J: data-plane sizes
// ---------------------------------------------------------------------------------------------------------

TEST(ExpertBytes, TvJQwen3Expert) {
  const ExpertBytes eb{4096, 1536};
  EXPECT_NO_THROW(eb.validate("test"));
  EXPECT_EQ(eb.fc1_elements(), 12582912);
  EXPECT_EQ(eb.fc2_elements(), 6291456);
  EXPECT_EQ(eb.weight_bytes(), 37748736);  // 36 MiB
  EXPECT_EQ(eb.weight_bytes(), 36 * 1024 * 1024);
  EXPECT_EQ(eb.weight_tiles(), 1152);  // 32 KiB tiles
  EXPECT_EQ(eb.weight_chunks(), 144);  // 256 KiB chunks: 96 (fc1) + 48 (fc2)
  EXPECT_EQ(eb.shard_chunks(0), 96);
  EXPECT_EQ(eb.max_chunks_per_shard(), 96);
  EXPECT_EQ(eb.grad_bytes(), 72 * 1024 * 1024);
  EXPECT_EQ(eb.grad_bytes(), 2 * eb.weight_bytes());
  EXPECT_EQ(eb.grad_tiles(), 1152);  // 64 KiB grad tiles
  EXPECT_EQ(eb.slot_bytes_training(), 108 * 1024 * 1024);
  EXPECT_EQ(eb.slot_bytes_inference(), 36 * 1024 * 1024);
  EXPECT_EQ(eb.shard_offset_bytes(1), eb.shard_bytes(0));
}

TEST(ExpertBytes, ShortTailsRoundUp) {
  EXPECT_EQ(kSmall.shard_bytes(0), 278528);
  EXPECT_EQ(kSmall.shard_tiles(0), 9);  // 8.5 tiles
  EXPECT_EQ(kSmall.shard_tiles(1), 5);  // 4.25 tiles
  EXPECT_EQ(kSmall.shard_chunks(0), 2);
  EXPECT_EQ(kSmall.shard_chunks(1), 1);
  EXPECT_EQ(kSmall.weight_chunks(), 3);
}

TEST(ExpertBytes, TvJDirectSixReplicasTakes317Microseconds) {
  // One domain of 8 ranks (Python rule: direct), master e0 on rank 0 with 6 replicas: 6 x 36 MiB = 226.5 MB
  // egress; 8 us + 226,492,416 B / 733 GB/s = 316.99 us, the README's 0.317 ms.
  const ClusterShape s{8, 1, 1, 8};
  Plan p = Plan::masters_only(s, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6});
  const TransferPlan tp = plan_weight_sync(p, ExpertBytes{4096, 1536}, WeightSyncOptions{});
  EXPECT_EQ(tp.mode, WeightSyncMode::kDirect);
  EXPECT_EQ(tp.egress_bytes[0], 226492416);
  EXPECT_EQ(tp.max_egress_bytes(), 226492416);
  EXPECT_EQ(tp.busiest_egress_rank(), 0);
  EXPECT_NEAR(weight_sync_time_s(tp, WeightSyncCostParams{}), 0.317e-3, 5e-7);
}

// ---------------------------------------------------------------------------------------------------------
// TV-I: relay planning
// ---------------------------------------------------------------------------------------------------------

TEST(WeightSyncRelay, TvITable) {
  struct Row {
    int n, k, children;
    bool adaptive;
  };
  // n -> (k, children per relay, adaptive?)
  const std::vector<Row> rows = {{1, 0, 0, false}, {2, 1, 1, false}, {3, 1, 2, false}, {4, 2, 1, true},
                                 {5, 2, 2, true},  {8, 2, 3, true},  {9, 3, 2, true},  {16, 4, 3, true}};
  WeightSyncOptions adaptive;
  WeightSyncOptions force;
  force.mode = WeightSyncMode::kForceRelay;
  WeightSyncOptions direct;
  direct.mode = WeightSyncMode::kDirect;
  for (const Row& row : rows) {
    SCOPED_TRACE("n = " + std::to_string(row.n));
    EXPECT_EQ(relay_count(row.n, adaptive), row.k);
    EXPECT_EQ(use_relay(row.n, adaptive), row.adaptive);
    EXPECT_EQ(use_relay(row.n, force), row.n >= 2);
    EXPECT_FALSE(use_relay(row.n, direct));
    if (row.n < 2) continue;
    // Build the tree for real (fresh tallies) under force_relay: the busiest relay forwards `children`.
    const ClusterShape s{32, 1, 1, 32};
    Plan p = Plan::masters_only(s, {});
    for (int r = 1; r <= row.n; ++r) add_replica(p, 0, r);
    const TransferPlan tp = plan_weight_sync(p, kSmall, force);
    ASSERT_EQ(tp.relay_trees.size(), 1u);
    ASSERT_EQ(static_cast<int>(tp.relay_trees[0].relays.size()), row.k);
    size_t most = 0;
    for (const RelayNode& node : tp.relay_trees[0].relays) most = std::max(most, node.child_ranks.size());
    EXPECT_EQ(static_cast<int>(most), row.children);
    EXPECT_EQ(tp.egress_bytes[0], row.k * kSmall.weight_bytes());
  }
  // k by n: 2-3 -> 1, 4-8 -> 2, 9-15 -> 3, 16-24 -> 4; capped by max_relays.
  for (int n = 2; n <= 24; ++n) EXPECT_EQ(relay_count(n, adaptive), n < 4 ? 1 : n < 9 ? 2 : n < 16 ? 3 : 4);
  WeightSyncOptions capped;
  capped.max_relays = 3;
  EXPECT_EQ(relay_count(24, capped), 3);
  // With the defaults adaptive relays exactly when n >= 4.
  for (int n = 0; n <= 64; ++n) EXPECT_EQ(use_relay(n, adaptive), n >= 4) << n;
}

TEST(WeightSyncRelay, TvIFirstMasterNineReplicas) {
  Plan p = Plan::masters_only(kTvIShape, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const TransferPlan tp = plan_weight_sync(p, kSmall, WeightSyncOptions{});
  EXPECT_EQ(tp.mode, WeightSyncMode::kAdaptive);
  ASSERT_EQ(tp.relay_trees.size(), 1u);
  const RelayTree& t = tp.relay_trees[0];
  EXPECT_EQ(t.master_rank, 0);
  ASSERT_EQ(t.relays.size(), 3u);
  EXPECT_EQ(t.relays[0].rank, 1);
  EXPECT_EQ(t.relays[1].rank, 2);
  EXPECT_EQ(t.relays[2].rank, 3);
  EXPECT_EQ(ranks_of(t.relays[0].child_ranks), (std::vector<int>{4, 7}));
  EXPECT_EQ(ranks_of(t.relays[1].child_ranks), (std::vector<int>{5, 8}));
  EXPECT_EQ(ranks_of(t.relays[2].child_ranks), (std::vector<int>{6, 9}));
  EXPECT_EQ(t.relays[0].instance, 1);
  EXPECT_EQ(tp.relay_levels, 1);
  const int64_t bw = kSmall.weight_bytes();
  EXPECT_EQ(tp.egress_bytes[0], 3 * bw);
  for (int r = 1; r <= 3; ++r) EXPECT_EQ(tp.egress_bytes[r], 2 * bw);
  EXPECT_EQ(tp.num_copies(), 9);
}

TEST(WeightSyncRelay, TvISecondMasterSeesTheTally) {
  const TransferPlan tp = plan_weight_sync(tv_i_two_masters(), kSmall, WeightSyncOptions{});
  ASSERT_EQ(tp.relay_trees.size(), 2u);
  const RelayTree& t = tp.relay_trees[1];
  EXPECT_EQ(t.expert, 10);
  EXPECT_EQ(t.master_rank, 10);
  ASSERT_EQ(t.relays.size(), 2u);   // n = 7, k = 2
  EXPECT_EQ(t.relays[0].rank, 11);  // tally 0 beats ranks 1, 2 at 2 units
  EXPECT_EQ(t.relays[1].rank, 12);
  EXPECT_EQ(ranks_of(t.relays[0].child_ranks), (std::vector<int>{13, 15, 2}));
  EXPECT_EQ(ranks_of(t.relays[1].child_ranks), (std::vector<int>{14, 1}));
  const int64_t bw = kSmall.weight_bytes();
  // Tallies (== egress): rank 0 = 3, ranks 1-3 = 2, rank 10 = 2, rank 11 = 3, rank 12 = 2, everyone else 0.
  const std::vector<int64_t> expected = {3, 2, 2, 2, 0, 0, 0, 0, 0, 0, 2, 3, 2, 0, 0, 0};
  for (int r = 0; r < 16; ++r) EXPECT_EQ(tp.egress_bytes[r], expected[r] * bw) << "rank " << r;
  // Ranks 1 and 2 receive one replica of each expert; every other replica host receives one.
  EXPECT_EQ(tp.ingress_bytes[1], 2 * bw);
  EXPECT_EQ(tp.ingress_bytes[2], 2 * bw);
  EXPECT_EQ(tp.ingress_bytes[0], 0);
  EXPECT_EQ(tp.ingress_bytes[10], 0);
  EXPECT_EQ(tp.ingress_bytes[13], bw);
  EXPECT_EQ(tp.max_egress_bytes(), 3 * bw);
  EXPECT_EQ(tp.busiest_egress_rank(), 0);  // ties with rank 11: lowest rank
  EXPECT_EQ(tp.busiest_ingress_rank(), 1);
}

TEST(WeightSyncRelay, TvIDirectThenRelay) {
  const TransferPlan tp = plan_weight_sync(tv_i_direct_then_relay(), kSmall, WeightSyncOptions{});
  ASSERT_EQ(tp.relay_trees.size(), 1u);  // n = 3 stays direct under adaptive
  const RelayTree& t = tp.relay_trees[0];
  EXPECT_EQ(t.master_rank, 1);
  ASSERT_EQ(t.relays.size(), 2u);
  EXPECT_EQ(t.relays[0].rank, 7);
  EXPECT_EQ(t.relays[1].rank, 8);
  EXPECT_EQ(ranks_of(t.relays[0].child_ranks), (std::vector<int>{9, 11}));
  EXPECT_EQ(ranks_of(t.relays[1].child_ranks), (std::vector<int>{10, 12}));
  const int64_t bw = kSmall.weight_bytes();
  EXPECT_EQ(tp.egress_bytes[0], 3 * bw);
  EXPECT_EQ(tp.egress_bytes[1], 2 * bw);
  // Copy order: e0 direct (l2p order), then e1 stage 1 (relays 7, 8), then stage 2 relay by relay.
  std::vector<std::pair<int, int>> order;
  for (const TransferCopy& c : tp.copies) order.emplace_back(c.src_rank, c.dst_rank);
  const std::vector<std::pair<int, int>> expected = {{0, 4}, {0, 5},  {0, 6},  {1, 7}, {1, 8},
                                                     {7, 9}, {7, 11}, {8, 10}, {8, 12}};
  EXPECT_EQ(order, expected);
  EXPECT_EQ(tp.copies[3].stage, 1);
  EXPECT_EQ(tp.copies[5].stage, 2);
  EXPECT_EQ(tp.copies[5].src_physical, t.relays[0].physical);
}

TEST(WeightSyncRelay, ForceRelayRelaysTwoReplicas) {
  Plan p = Plan::masters_only(kTvIShape, {});
  add_replicas(p, 0, {4, 5, 6});
  WeightSyncOptions o;
  o.mode = WeightSyncMode::kForceRelay;
  const TransferPlan tp = plan_weight_sync(p, kSmall, o);
  ASSERT_EQ(tp.relay_trees.size(), 1u);
  EXPECT_EQ(tp.relay_trees[0].relays.size(), 1u);
  EXPECT_EQ(ranks_of(tp.relay_trees[0].relays[0].child_ranks), (std::vector<int>{5, 6}));
}

TEST(WeightSyncRelay, DomainGates) {
  WeightSyncOptions o;  // adaptive, Python rule on
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 2, 16}, o), WeightSyncMode::kAdaptive);
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 2, 8}, o), WeightSyncMode::kDirect);   // G <= 8
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 0, 16}, o), WeightSyncMode::kDirect);  // R == 0
  o.direct_max_domain_size = 0;  // runtime rule only
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 2, 8}, o), WeightSyncMode::kAdaptive);
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 2, 2}, o), WeightSyncMode::kDirect);  // G <= 2
  o.mode = WeightSyncMode::kDirect;
  EXPECT_EQ(effective_weight_sync_mode(ClusterShape{16, 1, 2, 16}, o), WeightSyncMode::kDirect);

  // The same 6-replica master in an 8-rank domain: direct by default, relayed with the Python rule off.
  const ClusterShape s{8, 1, 1, 8};
  Plan p = Plan::masters_only(s, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(plan_weight_sync(p, kSmall, WeightSyncOptions{}).relay_trees.empty());
  WeightSyncOptions runtime_only;
  runtime_only.direct_max_domain_size = 0;
  EXPECT_EQ(plan_weight_sync(p, kSmall, runtime_only).relay_trees.size(), 1u);
}

TEST(WeightSyncRelay, DirectVersusRelayMasterEgress) {
  Plan p = Plan::masters_only(kTvIShape, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  WeightSyncOptions direct;
  direct.mode = WeightSyncMode::kDirect;
  const TransferPlan d = plan_weight_sync(p, kSmall, direct);
  const TransferPlan a = plan_weight_sync(p, kSmall, WeightSyncOptions{});
  const int64_t bw = kSmall.weight_bytes();
  EXPECT_EQ(d.egress_bytes[0], 9 * bw);  // master sends n copies
  EXPECT_EQ(a.egress_bytes[0], 3 * bw);  // master sends k copies
  EXPECT_EQ(d.max_egress_bytes(), 9 * bw);
  EXPECT_EQ(a.max_egress_bytes(), 3 * bw);
  EXPECT_EQ(d.total_bytes(), a.total_bytes());  // every replica still receives B_w once
  EXPECT_EQ(d.relay_levels, 0);
  EXPECT_EQ(a.relay_levels, 1);
  // Relay model: 3 units of egress + one chunk time; direct: 9 units, no chunk time.
  WeightSyncCostParams cp;
  cp.launch_s = 1e-6;
  cp.egress_bytes_per_s = 1e9;
  cp.ingress_bytes_per_s = 2e9;
  EXPECT_DOUBLE_EQ(weight_sync_time_s(d, cp), 1e-6 + 9.0 * bw / 1e9);
  EXPECT_DOUBLE_EQ(weight_sync_time_s(a, cp), 1e-6 + 3.0 * bw / 1e9 + 262144.0 / 1e9);
}

// ---------------------------------------------------------------------------------------------------------
// Conservation on a larger deterministic plan
// ---------------------------------------------------------------------------------------------------------

/// N = 32 in two domains of 16, M = 2, R = 3: expert e gets (e * 7) % 11 replicas (capped by slots), placed
/// on the next ranks of its domain that still have a free slot. Deterministic.
Plan busy_plan() {
  const ClusterShape s{32, 2, 3, 16};
  Plan p = Plan::masters_only(s, {});
  std::vector<int> used(32, 0);
  for (int e = 0; e < s.num_experts(); ++e) {
    const int master = s.master_rank(e);
    const int base = s.domain_of_rank(master) * s.domain_size;
    int want = (e * 7) % 11;
    for (int step = 1; step < s.domain_size && want > 0; ++step) {
      const int r = base + (master - base + step * 3) % s.domain_size;
      if (r == master || used[r] >= s.num_redundant) continue;
      bool already = false;
      for (int j = 0; j < p.lcnt[e]; ++j) already |= p.host(e, j) == r;
      if (already) continue;
      add_replica(p, e, r);
      ++used[r];
      --want;
    }
  }
  return p;
}

TEST(WeightSyncPlan, EgressIngressConservation) {
  const Plan p = busy_plan();
  ASSERT_GT(p.total_replicas(), 40);
  for (WeightSyncMode mode :
       {WeightSyncMode::kDirect, WeightSyncMode::kAdaptive, WeightSyncMode::kForceRelay}) {
    SCOPED_TRACE(to_string(mode));
    WeightSyncOptions o;
    o.mode = mode;
    const TransferPlan tp = plan_weight_sync(p, kSmall, o);
    int64_t egress = 0, ingress = 0;
    for (int64_t b : tp.egress_bytes) egress += b;
    for (int64_t b : tp.ingress_bytes) ingress += b;
    EXPECT_EQ(egress, tp.total_bytes());
    EXPECT_EQ(ingress, tp.total_bytes());
    EXPECT_EQ(tp.num_copies(), p.total_replicas());
    EXPECT_EQ(tp.total_bytes(), tp.num_copies() * kSmall.weight_bytes());
    EXPECT_EQ(tp.cross_domain_bytes(), 0);
    // Every replica slot receives exactly once; stage-2 sources are slots filled in stage 1 of the same
    // expert.
    std::multiset<int32_t> received;
    std::set<std::pair<int32_t, int32_t>> stage1_dst;
    for (const TransferCopy& c : tp.copies) {
      received.insert(c.dst_physical);
      if (c.stage == 1) {
        EXPECT_EQ(c.src_physical, p.shape.master_physical(c.expert));
        stage1_dst.insert({c.expert, c.dst_physical});
      } else {
        EXPECT_EQ(c.stage, 2);
        EXPECT_TRUE(stage1_dst.count({c.expert, c.src_physical})) << "relay not filled before forwarding";
      }
    }
    for (int l = 0; l < p.num_experts(); ++l)
      for (int j = 1; j < p.lcnt[l]; ++j) EXPECT_EQ(received.count(p.physical(l, j)), 1u);
    EXPECT_EQ(tp.relay_trees.empty(), mode == WeightSyncMode::kDirect);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Task lists and the CPU reference executor
// ---------------------------------------------------------------------------------------------------------

/// Master weights: every byte names its expert and position, so a wrong source is visible.
uint8_t pattern(int expert, int64_t i) {
  return static_cast<uint8_t>((expert * 131 + i * 7 + (i >> 9)) & 0xff);
}

void check_executor(const Plan& p, const WeightSyncOptions& o) {
  const TransferPlan tp = plan_weight_sync(p, kSmall, o);
  const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
  const ClusterShape& s = p.shape;
  const int64_t bw = kSmall.weight_bytes();

  // Structure: prefix sums, binary search, and every stage-2 task waits on a flag that a stage-1 task raises
  // after writing exactly that relay chunk.
  std::set<std::tuple<int, int32_t, int32_t, int, int>> raised;  // (rank, flag, relay slot, shard, chunk)
  int64_t stage1_tasks = 0, stage2_tasks = 0;
  for (int r = 0; r < s.num_ranks; ++r) {
    for (const StageTasks* st : {&tasks.ranks[r].stage1, &tasks.ranks[r].stage2}) {
      ASSERT_EQ(st->tile_offsets.size(), st->tasks.size() + 1);
      for (size_t t = 0; t < st->tasks.size(); ++t) {
        const WeightSyncTask& task = st->tasks[t];
        EXPECT_EQ(st->tile_offsets[t + 1] - st->tile_offsets[t], task.num_tiles);
        EXPECT_EQ(task.num_tiles, ceil_div_bytes(task.num_bytes, ExpertBytes::kTileBytes));
        EXPECT_EQ(st->task_of_tile(st->tile_offsets[t]), static_cast<int>(t));
        EXPECT_EQ(st->task_of_tile(st->tile_offsets[t + 1] - 1), static_cast<int>(t));
        EXPECT_EQ(s.rank_of_physical(task.src_physical), r);
      }
    }
    for (const WeightSyncTask& t : tasks.ranks[r].stage1.tasks) {
      ++stage1_tasks;
      for (int i = 0; i < t.num_signals; ++i) {
        const ReadySignal& sig = tasks.ranks[r].stage1.ready_signals[t.signal_begin + i];
        const int32_t relay = tasks.ranks[r].stage1.dst_physical[t.dst_begin + i];
        EXPECT_EQ(sig.rank, s.rank_of_physical(relay));
        raised.insert({sig.rank, sig.flag_slot, relay, t.shard, t.chunk});
      }
    }
  }
  for (int r = 0; r < s.num_ranks; ++r) {
    for (const WeightSyncTask& t : tasks.ranks[r].stage2.tasks) {
      ++stage2_tasks;
      EXPECT_GE(t.chunk, 0);
      EXPECT_TRUE(raised.count({r, t.wait_flag, t.src_physical, t.shard, t.chunk}))
          << "stage-2 task of expert " << t.expert << " waits on a flag no stage-1 task raises for its chunk";
    }
  }
  // Task counts: direct master -> 2 tasks; relay master -> one per chunk; each relay -> one per chunk.
  int64_t expect1 = 0, expect2 = 0;
  for (int l = 0; l < p.num_experts(); ++l) {
    if (p.lcnt[l] < 2) continue;
    bool relayed = false;
    for (const RelayTree& t : tp.relay_trees)
      if (t.expert == l) {
        relayed = true;
        expect1 += kSmall.weight_chunks();
        for (const RelayNode& node : t.relays)
          if (!node.child_physicals.empty()) expect2 += kSmall.weight_chunks();
      }
    if (!relayed) expect1 += 2;
  }
  EXPECT_EQ(stage1_tasks, expect1);
  EXPECT_EQ(stage2_tasks, expect2);

  // Execute: masters hold patterns, replica slots hold garbage; afterwards every replica equals its master.
  std::vector<std::vector<uint8_t>> slots(static_cast<size_t>(s.num_physical()));
  for (int phys = 0; phys < s.num_physical(); ++phys) {
    const int l = p.p2l[phys];
    if (l < 0) continue;
    slots[phys].assign(static_cast<size_t>(bw), 0xEE);
    if (s.slot_of_physical(phys) < s.num_masters)
      for (int64_t i = 0; i < bw; ++i) slots[phys][i] = pattern(l, i);
  }
  const CpuCopyStats stats = execute_weight_sync_cpu(tasks, slots);
  EXPECT_EQ(stats.bytes_written, tp.total_bytes());
  int64_t signals = 0;
  for (const RelayTree& t : tp.relay_trees)
    signals += static_cast<int64_t>(t.relays.size()) * kSmall.weight_chunks();
  EXPECT_EQ(stats.signals, signals);
  for (int l = 0; l < p.num_experts(); ++l)
    for (int j = 1; j < p.lcnt[l]; ++j)
      EXPECT_TRUE(slots[p.physical(l, j)] == slots[s.master_physical(l)])
          << "replica " << j << " of expert " << l << " differs from its master";
}

TEST(WeightSyncTasks, CpuExecutorTvIRelay) {
  check_executor(tv_i_two_masters(), WeightSyncOptions{});
}

TEST(WeightSyncTasks, CpuExecutorDirectThenRelay) {
  check_executor(tv_i_direct_then_relay(), WeightSyncOptions{});
}

TEST(WeightSyncTasks, CpuExecutorAllModesOnBusyPlan) {
  for (WeightSyncMode mode :
       {WeightSyncMode::kDirect, WeightSyncMode::kAdaptive, WeightSyncMode::kForceRelay}) {
    SCOPED_TRACE(to_string(mode));
    WeightSyncOptions o;
    o.mode = mode;
    check_executor(busy_plan(), o);
  }
}

TEST(WeightSyncTasks, DirectTaskShape) {
  const TransferPlan tp =
      plan_weight_sync(tv_i_direct_then_relay(), ExpertBytes{4096, 1536}, WeightSyncOptions{});
  const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
  // Rank 0: e0 direct -> one task per shard, the whole shard, 3 destinations in l2p order.
  const StageTasks& st = tasks.ranks[0].stage1;
  ASSERT_EQ(st.tasks.size(), 2u);
  EXPECT_EQ(st.tasks[0].chunk, -1);
  EXPECT_EQ(st.tasks[0].num_bytes, 12582912 * 2);
  EXPECT_EQ(st.tasks[1].num_bytes, 6291456 * 2);
  EXPECT_EQ(st.tasks[0].num_dst, 3);
  EXPECT_EQ(st.total_tiles(), 1152);
  EXPECT_EQ(st.dst_physical, (std::vector<int32_t>{13, 16, 19, 13, 16, 19}));  // per shard, l2p order
  // Rank 1: e1 relayed -> 144 chunk tasks (96 fc1 + 48 fc2), 1152 tiles, 2 signals each.
  const StageTasks& relay = tasks.ranks[1].stage1;
  EXPECT_EQ(relay.tasks.size(), 144u);
  EXPECT_EQ(relay.total_tiles(), 1152);
  EXPECT_EQ(relay.tasks[96].shard, 1);
  EXPECT_EQ(relay.tasks[96].offset_bytes, 0);
  EXPECT_EQ(relay.tasks[95].offset_bytes, 95 * 262144);
  EXPECT_EQ(relay.ready_signals.size(), 288u);
  EXPECT_EQ(tasks.flags_per_rank, 2 * 2 * 96);
  // Relay on rank 7 forwards to ranks 9 and 11, chunk by chunk.
  EXPECT_EQ(tasks.ranks[7].stage2.tasks.size(), 144u);
  EXPECT_EQ(tasks.ranks[7].stage2.tasks[0].num_dst, 2);
  EXPECT_EQ(tasks.ranks[9].stage2.tasks.size(), 0u);
}

TEST(WeightSyncTasks, ExecutorRejectsWrongBuffers) {
  const TransferPlan tp = plan_weight_sync(tv_i_direct_then_relay(), kSmall, WeightSyncOptions{});
  const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
  std::vector<std::vector<uint8_t>> too_few(3);
  EXPECT_THROW(execute_weight_sync_cpu(tasks, too_few), InputError);
  std::vector<std::vector<uint8_t>> empty(static_cast<size_t>(kTvIShape.num_physical()));
  EXPECT_THROW(execute_weight_sync_cpu(tasks, empty), InputError);
}

}  // namespace
}  // namespace rackep
