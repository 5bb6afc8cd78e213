// The StepDriver (core/step_driver.hpp): the one place that decides what a balancing step moves. Shared
// replica slots (ultraep) refill and restore every plan and reduce every microbatch; resident replicas (eplb)
// move only what changed since the layer's previous plan and reduce on the step's last microbatch. The
// transfer plans are exactly core/transfer.hpp's for the same plans.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/step_driver.hpp"

namespace rackep {
namespace {

const ClusterShape kShape{8, 2, 2, 8};  // one NVLink domain of 8 ranks, 16 experts, R = 2
const ExpertBytes kExpert{256, 272, 2};

LoadMatrix skewed(int seed) {
  LoadMatrix m(8, 16);
  for (int s = 0; s < 8; ++s)
    for (int l = 0; l < 16; ++l) m.at(s, l) = (l == seed % 16 ? 400 : 10) + (s * 7 + l * 3 + seed) % 13;
  return m;
}

StepDriverConfig config(const std::string& balancer, int64_t mbs) {
  StepDriverConfig c;
  c.shape = kShape;
  c.balancer = balancer;
  c.expert = kExpert;
  c.microbatches_per_step = mbs;
  c.check_legality = true;
  return c;
}

TEST(StepDriver, SharedSlotsRefillRestoreAndReduceEveryMicrobatch) {
  StepDriver d(config("ultraep", 2));
  EXPECT_FALSE(d.persistent());
  for (int64_t mb = 0; mb < 2; ++mb) {
    const StepRecord& s = d.step(skewed(3), 0, mb);
    ASSERT_GT(s.metrics.total_replicas, 0);
    ASSERT_TRUE(s.weight_sync.has_value());
    EXPECT_EQ(s.weight_sync->kind, TransferKind::kFixedMaster);
    const TransferPlan expect = plan_weight_sync(s.result.plan, kExpert, WeightSyncOptions{});
    EXPECT_EQ(s.weight_sync->total_bytes(), expect.total_bytes());
    EXPECT_EQ(s.weight_sync->num_copies(), s.metrics.total_replicas);
    EXPECT_TRUE(s.weight_restore);
    ASSERT_TRUE(s.grad_reduce.has_value()) << "microbatch " << mb;
    EXPECT_EQ(static_cast<int64_t>(s.grad_reduce->pulls.size()), s.metrics.total_replicas);
  }
}

TEST(StepDriver, ResidentReplicasMoveOnlyTheDiffAndReduceOncePerStep) {
  StepDriver d(config("eplb", 3));
  EXPECT_TRUE(d.persistent());
  // eplb plans from history: masters only on the first microbatch, then replicas from the past loads.
  const StepRecord& first = d.step(skewed(3), 0, 0);
  EXPECT_FALSE(first.weight_sync.has_value());
  EXPECT_FALSE(first.grad_reduce.has_value());
  const StepRecord& second = d.step(skewed(3), 0, 1);
  ASSERT_GT(second.metrics.total_replicas, 0);
  ASSERT_TRUE(second.weight_sync.has_value());
  EXPECT_EQ(second.weight_sync->kind, TransferKind::kPersistent);
  EXPECT_EQ(
      second.weight_sync->total_bytes(),
      plan_persistent_weight_sync(Plan::masters_only(kShape, {}), second.result.plan, kExpert).total_bytes());
  EXPECT_FALSE(second.weight_restore);
  EXPECT_FALSE(second.grad_reduce.has_value()) << "resident replicas reduce on the step's last microbatch";
  const Plan kept = d.resident(0).lcnt.empty() ? Plan{} : d.resident(0);
  EXPECT_EQ(kept.l2p, second.result.plan.l2p);
  const StepRecord& third = d.step(skewed(3), 0, 2);
  if (third.result.plan.l2p == kept.l2p) {
    EXPECT_FALSE(third.weight_sync.has_value()) << "unchanged: nothing moves";
  }
  EXPECT_TRUE(third.grad_reduce.has_value());
  // Another layer starts from masters only.
  EXPECT_EQ(d.resident(5).l2p, Plan::masters_only(kShape, {}).l2p);
}

TEST(StepDriver, PrefillHasNoRestoreNorReduce) {
  StepDriverConfig c = config("ultraep", 1);
  c.training = false;
  StepDriver d(c);
  const StepRecord& s = d.step(skewed(5), 1, 0);
  EXPECT_TRUE(s.weight_sync.has_value());
  EXPECT_FALSE(s.weight_restore);
  EXPECT_FALSE(s.grad_reduce.has_value());
}

TEST(StepDriver, OtherModesAndRefusals) {
  StepDriverConfig c = config("ultraep", 1);
  c.weight_sync.mode = WeightSyncMode::kForceRelay;
  c.weight_sync.direct_max_domain_size = 0;
  StepDriver d(c);
  const StepRecord& s = d.step(skewed(7), 0, 0);
  ASSERT_TRUE(s.weight_sync.has_value());
  const TransferPlan direct = d.weight_sync_in_mode(WeightSyncMode::kDirect);
  EXPECT_EQ(s.weight_sync->mode, WeightSyncMode::kForceRelay);
  EXPECT_EQ(direct.mode, WeightSyncMode::kDirect);
  EXPECT_EQ(direct.relay_levels, 0);
  EXPECT_EQ(direct.total_bytes(), s.weight_sync->total_bytes());  // every replica receives B_w once
  EXPECT_EQ(direct.num_copies(), s.metrics.total_replicas);
  // lplb needs R <= experts per rank and groups larger than 2: a shape it refuses is an InputError.
  StepDriverConfig bad = config("lplb", 1);
  bad.shape = ClusterShape{8, 1, 2, 8};
  EXPECT_THROW(StepDriver{bad}, InputError);
  EXPECT_THROW(StepDriver{config("no-such-balancer", 1)}, InputError);
}

}  // namespace
}  // namespace rackep
