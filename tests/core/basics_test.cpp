// ClusterShape, LoadMatrix and Plan basics.
#include <gtest/gtest.h>

#include "core/allocation.hpp"
#include "core/cluster_shape.hpp"
#include "core/error.hpp"
#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {
namespace {

TEST(ClusterShape, IdsFollowTheSpec) {
  const ClusterShape s{4, 2, 1, 4};
  EXPECT_EQ(s.num_experts(), 8);
  EXPECT_EQ(s.slots_per_rank(), 3);
  EXPECT_EQ(s.master_physical(5), 2 * 3 + 1);
  EXPECT_EQ(s.rank_of_physical(11), 3);
}

TEST(ClusterShape, RejectsImpossibleShapes) {
  EXPECT_THROW((ClusterShape{6, 2, 1, 4}.validate("test")), InputError);
  EXPECT_THROW((ClusterShape{4, 0, 1, 4}.validate("test")), InputError);
  EXPECT_THROW((ClusterShape{4, 2, -1, 4}.validate("test")), InputError);
  EXPECT_THROW(ClusterShape::from_experts(3, 8, 1, 3, "test"), InputError);
  try {
    ClusterShape{6, 2, 1, 4}.validate("cluster shape");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "domain");
    EXPECT_NE(std::string(e.what()).find("multiple"), std::string::npos);
  }
}

TEST(LoadMatrix, TotalsAndImbalance) {
  LoadMatrix m(2, 4, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(m.expert_totals(), (std::vector<int64_t>{6, 8, 10, 12}));
  EXPECT_EQ(m.source_totals(), (std::vector<int64_t>{10, 26}));
  EXPECT_EQ(m.rank_loads(ClusterShape{2, 2, 0, 2}), (std::vector<int64_t>{14, 22}));
  EXPECT_DOUBLE_EQ(imbalance({14, 22}), 22.0 / 18.0);
  EXPECT_DOUBLE_EQ(imbalance({0, 0}), 1.0);
  m.at(1, 2) = -1;
  EXPECT_THROW(m.validate("t.json"), InputError);
}

TEST(Plan, MastersOnly) {
  const ClusterShape s{4, 2, 1, 4};
  const Plan p = Plan::masters_only(s, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(p.p2l, (std::vector<int32_t>{0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1}));
  EXPECT_EQ(p.total_replicas(), 0);
  EXPECT_EQ(p.used_redundant_slots(), 0);
  EXPECT_EQ(p.quota_of(7, 0), 8);
}

}  // namespace
}  // namespace rackep
