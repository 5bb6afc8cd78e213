// Transfer plans (core/transfer.hpp), part 2: persistent-placement diffs, grad_reduce pulls, costs and input
// errors. Part 1 is transfer_test.cpp.
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
// Persistent placements
// ---------------------------------------------------------------------------------------------------------

const ClusterShape kPersist{4, 2, 1, 2};  // two domains: ranks {0, 1} and {2, 3}; S = 3

TEST(PersistentSync, UnchangedPlanMovesNothing) {
  const Plan prev = plan_from_p2l(kPersist, {0, 1, 2, 2, 3, 0, 4, 5, 6, 6, 7, -1});
  const TransferPlan tp = plan_persistent_weight_sync(prev, prev, kSmall);
  EXPECT_EQ(tp.kind, TransferKind::kPersistent);
  EXPECT_EQ(tp.num_copies(), 0);
  EXPECT_EQ(tp.total_bytes(), 0);
  EXPECT_EQ(tp.max_egress_bytes(), 0);
  EXPECT_EQ(tp.busiest_egress_rank(), -1);
}

TEST(PersistentSync, NewInstancesComeFromOldHolders) {
  const Plan prev = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1});
  // New: e2 on rank 0 (old holder rank 1, same domain), e0 on rank 1 (from rank 0) and on rank 2 (only rank 0
  // ever held it: cross-domain).
  const Plan next = plan_from_p2l(kPersist, {0, 1, 2, 2, 3, 0, 4, 5, 0, 6, 7, -1});
  const TransferPlan tp = plan_persistent_weight_sync(prev, next, kSmall);
  ASSERT_EQ(tp.num_copies(), 3);
  const int64_t bw = kSmall.weight_bytes();
  EXPECT_EQ(tp.copies[0].expert, 2);
  EXPECT_EQ(tp.copies[0].src_rank, 1);
  EXPECT_EQ(tp.copies[0].src_physical, 3);
  EXPECT_EQ(tp.copies[0].dst_physical, 2);
  EXPECT_EQ(tp.copies[1].expert, 0);
  EXPECT_EQ(tp.copies[1].src_rank, 0);
  EXPECT_EQ(tp.copies[1].dst_physical, 5);
  EXPECT_EQ(tp.copies[2].src_rank, 0);
  EXPECT_EQ(tp.copies[2].dst_rank, 2);
  EXPECT_EQ(tp.egress_bytes, (std::vector<int64_t>{2 * bw, bw, 0, 0}));
  EXPECT_EQ(tp.ingress_bytes, (std::vector<int64_t>{bw, bw, bw, 0}));
  EXPECT_EQ(tp.cross_domain_bytes(), bw);
  EXPECT_EQ(tp.relay_levels, 0);
}

TEST(PersistentSync, SenderPreferenceDomainThenTallyThenRank) {
  // e0 held by ranks 0 and 3 before. New holders: rank 1 (domain 0) and rank 2 (domain 1).
  const Plan prev = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, 0});
  const Plan next = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 0});
  TransferPlan tp = plan_persistent_weight_sync(prev, next, kSmall);
  ASSERT_EQ(tp.num_copies(), 2);
  EXPECT_EQ(tp.copies[0].src_rank, 0);  // rank 1 <- rank 0 (same domain)
  EXPECT_EQ(tp.copies[1].src_rank, 3);  // rank 2 <- rank 3 (same domain beats the lower rank 0)
  EXPECT_EQ(tp.cross_domain_bytes(), 0);

  // One domain of 4: holders 0 and 2 (tally 0 each) -> rank 1 gets it from rank 0 (lowest); rank 3 then from
  // rank 2 (smaller tally).
  const ClusterShape one{4, 2, 1, 4};
  const Plan prev1 = plan_from_p2l(one, {0, 1, -1, 2, 3, -1, 4, 5, 0, 6, 7, -1});
  const Plan next1 = plan_from_p2l(one, {0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 0});
  tp = plan_persistent_weight_sync(prev1, next1, kSmall);
  ASSERT_EQ(tp.num_copies(), 2);
  EXPECT_EQ(tp.copies[0].dst_rank, 1);
  EXPECT_EQ(tp.copies[0].src_rank, 0);
  EXPECT_EQ(tp.copies[1].dst_rank, 3);
  EXPECT_EQ(tp.copies[1].src_rank, 2);
}

TEST(PersistentSync, MovedMastersAndDuplicates) {
  // EPLB swaps e1 and e2 between ranks 0 and 1: two copies, one each way.
  const Plan prev = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1});
  const Plan swapped = plan_from_p2l(kPersist, {0, 2, -1, 1, 3, -1, 4, 5, -1, 6, 7, -1});
  TransferPlan tp = plan_persistent_weight_sync(prev, swapped, kSmall);
  ASSERT_EQ(tp.num_copies(), 2);
  EXPECT_EQ(tp.copies[0].expert, 2);
  EXPECT_EQ(tp.copies[0].src_rank, 1);
  EXPECT_EQ(tp.copies[1].expert, 1);
  EXPECT_EQ(tp.copies[1].src_rank, 0);
  EXPECT_EQ(tp.egress_bytes[0], tp.ingress_bytes[0]);

  // Two new instances of e0 on rank 1 (EPLB duplicates): the weights cross the link once.
  const ClusterShape dup{4, 2, 2, 2};
  const Plan prev_d = plan_from_p2l(dup, {0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1, -1});
  const Plan next_d = plan_from_p2l(dup, {0, 1, 1, -1, 2, 3, 0, 0, 4, 5, -1, -1, 6, 7, -1, -1});
  tp = plan_persistent_weight_sync(prev_d, next_d, kSmall);
  ASSERT_EQ(tp.num_copies(), 1);  // e1's duplicate on rank 0 is resident; e0 reaches rank 1 once
  EXPECT_EQ(tp.copies[0].dst_physical, 6);
}

TEST(PersistentSync, RejectsMismatchedShapes) {
  const Plan a = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1});
  const Plan b = plan_from_p2l(ClusterShape{4, 2, 1, 4}, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1});
  EXPECT_THROW(plan_persistent_weight_sync(a, b, kSmall), InputError);
}

TEST(PersistentSync, TaskListsCopyEveryDiffOnItsSender) {
  // e0 gains an instance on rank 1 and e5 one on rank 3: the CPU executor of the task lists lands the
  // sender's bytes in exactly those two slots.
  const Plan prev = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1});
  const Plan next = plan_from_p2l(kPersist, {0, 1, -1, 2, 3, 0, 4, 5, -1, 6, 7, 5});
  const TransferPlan tp = plan_persistent_weight_sync(prev, next, kSmall);
  ASSERT_EQ(tp.num_copies(), 2);
  const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
  std::vector<std::vector<uint8_t>> slots(static_cast<size_t>(kPersist.num_physical()));
  for (int p = 0; p < kPersist.num_physical(); ++p)
    slots[p].assign(static_cast<size_t>(kSmall.weight_bytes()), static_cast<uint8_t>(prev.p2l[p] + 1));
  execute_weight_sync_cpu(tasks, slots);
  for (int p = 0; p < kPersist.num_physical(); ++p)
    EXPECT_EQ(slots[p][0], static_cast<uint8_t>(next.p2l[p] + 1)) << "slot " << p;
  EXPECT_EQ(tasks.ranks[tp.copies[0].src_rank].stage1.tasks.size(), 2u);  // one per shard
}

// ---------------------------------------------------------------------------------------------------------
// grad_reduce
// ---------------------------------------------------------------------------------------------------------

TEST(GradReduce, FixedMasterPulls) {
  const ExpertBytes eb{4096, 1536};
  const GradReducePlan g = plan_grad_reduce(tv_i_two_masters(), eb);
  const int64_t bg = eb.grad_bytes();
  ASSERT_EQ(g.pulls.size(), 16u);  // 9 + 7 replicas
  EXPECT_EQ(g.pulls[0].expert, 0);
  EXPECT_EQ(g.pulls[0].instance, 1);
  EXPECT_EQ(g.pulls[0].replica_rank, 1);
  EXPECT_EQ(g.pulls[9].expert, 10);
  EXPECT_EQ(g.pulls[9].puller_rank, 10);
  EXPECT_EQ(g.pulls[15].replica_rank, 2);  // l2p order: [11, 12, 13, 14, 15, 1, 2]
  EXPECT_EQ(g.pulled_bytes[0], 9 * bg);
  EXPECT_EQ(g.written_bytes[0], 9 * bg);
  EXPECT_EQ(g.pulled_bytes[10], 7 * bg);
  EXPECT_EQ(g.pulled_bytes[1], 0);
  EXPECT_EQ(g.served_bytes[1], 2 * bg);  // holds a replica of each expert
  EXPECT_EQ(g.zeroed_bytes[1], 2 * bg);
  EXPECT_EQ(g.num_tasks[0], 18);  // one fc1 + one fc2 task per replica
  EXPECT_EQ(g.grad_tiles[0], 9 * 1152);
  EXPECT_EQ(g.total_pulled_bytes(), 16 * bg);
  EXPECT_EQ(g.max_pulled_bytes(), 9 * bg);
}

TEST(GradReduce, PersistentInstanceZeroPulls) {
  // After a swap e1 lives on rank 1 (instance 0) with a replica on rank 2: rank 1 pulls it.
  const Plan p = plan_from_p2l(kPersist, {0, 2, -1, 1, 3, -1, 4, 5, 1, 6, 7, -1});
  const GradReducePlan g = plan_grad_reduce(p, kSmall);
  ASSERT_EQ(g.pulls.size(), 1u);
  EXPECT_EQ(g.pulls[0].expert, 1);
  EXPECT_EQ(g.pulls[0].puller_rank, 1);
  EXPECT_EQ(g.pulls[0].master_physical, 3);
  EXPECT_EQ(g.pulls[0].replica_physical, 8);
  EXPECT_EQ(g.pulled_bytes[1], kSmall.grad_bytes());
  EXPECT_EQ(g.served_bytes[2], kSmall.grad_bytes());
}

TEST(GradReduce, TvJCostSixReplicas) {
  // 6 replicas x 72 MiB = 452,984,832 B over 42 SMs x 4.45e9 B/s = 2.4236 ms (README: 2.425 ms).
  const ClusterShape s{8, 1, 1, 8};
  Plan p = Plan::masters_only(s, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6});
  const GradReducePlan g = plan_grad_reduce(p, ExpertBytes{4096, 1536});
  EXPECT_EQ(g.max_pulled_bytes(), 452984832);
  EXPECT_NEAR(grad_reduce_time_s(g, GradReduceCostParams{}), 2.425e-3, 5e-6);
  GradReduceCostParams half;
  half.num_sms = 21;
  half.bytes_per_sm_s = 1e9;
  EXPECT_DOUBLE_EQ(grad_reduce_time_s(int64_t{21000000000}, half), 1.0);
}

// ---------------------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------------------

TEST(TransferInput, RejectsBadSizesOptionsAndPlans) {
  EXPECT_THROW((ExpertBytes{0, 1536}.validate("t")), InputError);
  EXPECT_THROW((ExpertBytes{4096, -1}.validate("t")), InputError);
  EXPECT_THROW((ExpertBytes{4096, 1536, 3}.validate("t")), InputError);
  try {
    ExpertBytes{1, 4, 2}.validate("model");  // fc1 = 16 B, fc2 = 8 B
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "fc2");
  }
  EXPECT_THROW(parse_weight_sync_mode("relay", "cfg"), InputError);
  EXPECT_EQ(parse_weight_sync_mode("force_relay", "cfg"), WeightSyncMode::kForceRelay);
  WeightSyncOptions bad;
  bad.max_relays = -1;
  EXPECT_THROW(plan_weight_sync(tv_i_two_masters(), kSmall, bad), InputError);
  WeightSyncCostParams cp;
  cp.egress_bytes_per_s = 0;
  EXPECT_THROW(weight_sync_time_s(TransferPlan{}, cp), InputError);
  GradReduceCostParams gp;
  gp.num_sms = 0;
  EXPECT_THROW(grad_reduce_time_s(int64_t{1}, gp), InputError);

  // Persistent plan handed to the fixed-master planner.
  const Plan moved = plan_from_p2l(kPersist, {0, 2, -1, 1, 3, -1, 4, 5, -1, 6, 7, -1});
  EXPECT_THROW(plan_weight_sync(moved, kSmall, WeightSyncOptions{}), InputError);
  // Replica outside its master's NVLink domain.
  Plan cross = Plan::masters_only(kPersist, {});
  add_replica(cross, 0, 2);
  EXPECT_THROW(plan_weight_sync(cross, kSmall, WeightSyncOptions{}), InputError);
  EXPECT_THROW(plan_grad_reduce(cross, kSmall), InputError);
  // lcnt disagreeing with l2p / p2l.
  Plan broken = Plan::masters_only(kPersist, {});
  add_replica(broken, 0, 1);
  broken.lcnt[0] = 1;
  EXPECT_THROW(plan_weight_sync(broken, kSmall, WeightSyncOptions{}), InputError);
  Plan short_p2l = Plan::masters_only(kPersist, {});
  short_p2l.p2l.pop_back();
  EXPECT_THROW(plan_grad_reduce(short_p2l, kSmall), InputError);
}

}  // namespace
}  // namespace rackep
