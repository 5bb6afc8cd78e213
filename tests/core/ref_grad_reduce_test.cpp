// Ordered grad_reduce reference (core/ref_grad_reduce.hpp): sums in l2p order, bit for bit, and zeroes
// replicas.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.hpp"
#include "core/ref_grad_reduce.hpp"
#include "core/transfer.hpp"
#include "core/ultraep.hpp"

namespace {

// TV-A (docs/ALGORITHMS.md §8): N = G = 4, M = 2, R = 1; expert 0 gets l2p[0] = [0, 8, 11, 5].
rackep::Plan tv_a_plan() {
  const rackep::ClusterShape shape{4, 2, 1, 4};
  return rackep::ultraep_plan(shape, {3000, 1000, 800, 400, 600, 200, 500, 300}, rackep::UltraEpOptions{});
}

TEST(RefGradReduce, GroupsFollowL2pOrder) {
  const rackep::Plan plan = tv_a_plan();
  const rackep::GradReducePlan gp = rackep::plan_grad_reduce(plan, rackep::ExpertBytes{4, 2, 2});
  const auto groups = rackep::grad_reduce_groups(gp);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0].expert, 0);
  EXPECT_EQ(groups[0].master_physical, 0);
  EXPECT_EQ(groups[0].replica_physicals, (std::vector<int32_t>{8, 11, 5}));
}

// fp32 addition is not associative: with m = 1e8, r8 = -1e8, r11 = 1, r5 = 0.5 the l2p order gives
// ((1e8 - 1e8) + 1) + 0.5 = 1.5, while e.g. the reverse order gives ((1e8 + 0.5) + 1) - 1e8 = 0 (the ulp of
// 1e8 is 8).
TEST(RefGradReduce, OrderedSumIsBitExactAndZeroesReplicas) {
  const rackep::Plan plan = tv_a_plan();
  const rackep::ExpertBytes eb{4, 2, 2};  // fc1 16 + fc2 8 = 24 fp32 gradient elements
  const rackep::GradReducePlan gp = rackep::plan_grad_reduce(plan, eb);
  const size_t floats = static_cast<size_t>(eb.grad_bytes() / 4);
  ASSERT_EQ(floats, 24u);
  std::vector<std::vector<float>> grads(static_cast<size_t>(plan.shape.num_physical()));
  grads[0].assign(floats, 1e8f);
  grads[8].assign(floats, -1e8f);
  grads[11].assign(floats, 1.0f);
  grads[5].assign(floats, 0.5f);
  grads[0][23] = 2.0f;  // the last fc2 element: ((2 - 1e8) + 1) + 0.5 = -1e8 after rounding
  rackep::grad_reduce_reference(gp, grads);
  for (size_t i = 0; i + 1 < floats; ++i) EXPECT_EQ(grads[0][i], 1.5f) << i;
  EXPECT_EQ(grads[0][23], -1e8f);
  for (int p : {8, 11, 5})
    for (float v : grads[p]) EXPECT_EQ(v, 0.0f);
}

TEST(RefGradReduce, RejectsMissingBuffers) {
  const rackep::Plan plan = tv_a_plan();
  const rackep::GradReducePlan gp = rackep::plan_grad_reduce(plan, rackep::ExpertBytes{4, 2, 2});
  std::vector<std::vector<float>> grads(static_cast<size_t>(plan.shape.num_physical()));
  grads[0].assign(24, 0.0f);
  EXPECT_THROW(rackep::grad_reduce_reference(gp, grads), rackep::InputError);
}

}  // namespace
