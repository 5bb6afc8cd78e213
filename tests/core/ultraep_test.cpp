// UltraEP planner, per-source allocation and reroute against the hand-worked vectors TV-A..TV-G of
// docs/ALGORITHMS.md §8 (one NVLink domain unless stated, bt = 1, eps = 0.01, q_min = 1024, locality and
// interleave on).
#include <gtest/gtest.h>

#include "core/allocation.hpp"
#include "core/error.hpp"
#include "core/legality.hpp"
#include "core/metrics.hpp"
#include "core/reroute.hpp"
#include "core/ultraep.hpp"

namespace rackep {
namespace {

using I32 = std::vector<int32_t>;
using I64 = std::vector<int64_t>;

I32 row_l2p(const Plan& p, int l) {
  return I32(p.l2p.begin() + l * p.shape.num_ranks, p.l2p.begin() + l * p.shape.num_ranks + p.lcnt[l]);
}
I64 row_quota(const Plan& p, int l) {
  return I64(p.quota.begin() + l * p.shape.num_ranks, p.quota.begin() + l * p.shape.num_ranks + p.lcnt[l]);
}
// Per-rank load implied by the quotas (the planner's own view, §2.4.2).
I64 quota_rank_loads(const Plan& p) {
  I64 loads(p.shape.num_ranks, 0);
  for (int l = 0; l < p.num_experts(); ++l)
    for (int j = 0; j < p.lcnt[l]; ++j) loads[p.host(l, j)] += p.quota_of(l, j);
  return loads;
}

const ClusterShape kTvShape{4, 2, 1, 4};
const I64 kTvA{3000, 1000, 800, 400, 600, 200, 500, 300};

TEST(UltraEp, TvA_OneHotExpertFastPath) {
  UltraEpPlanner planner(kTvShape, {});
  const Plan& p = planner.plan(kTvA);
  EXPECT_EQ(planner.domain_stats()[0].threshold, 1717);
  EXPECT_TRUE(planner.domain_stats()[0].fast_path);
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 8, 11, 5}));
  EXPECT_EQ(row_quota(p, 0), (I64{717, 917, 917, 449}));
  EXPECT_EQ(p.lcnt, (I32{4, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(p.p2l, (I32{0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 0}));
  EXPECT_EQ(quota_rank_loads(p), (I64{1717, 1649, 1717, 1717}));
  EXPECT_NEAR(imbalance(quota_rank_loads(p)), 1.010, 5e-4);
  EXPECT_TRUE(check_plan(p).empty());
}

// The loads of TV-A with e0 split over sources as [1200, 600, 300, 900]; other experts sit on their master.
LoadMatrix tv_a_loads() {
  LoadMatrix m(4, 8);
  const int32_t e0[4] = {1200, 600, 300, 900};
  for (int s = 0; s < 4; ++s) m.at(s, 0) = e0[s];
  for (int l = 1; l < 8; ++l) m.at(l / 2, l) = static_cast<int32_t>(kTvA[l]);
  return m;
}

I32 alloc_row(const Allocation& a, int s, int l, int c) {
  I32 out;
  for (int j = 0; j < c; ++j) out.push_back(a.at(s, l, j));
  return out;
}

TEST(UltraEp, TvA_PerSourceSplitLocalityOn) {
  const LoadMatrix loads = tv_a_loads();
  const Plan p = ultraep_plan(kTvShape, loads.expert_totals(), {});
  const Allocation a = allocate_by_quota(p, loads, true);
  EXPECT_EQ(alloc_row(a, 0, 0, 4), (I32{717, 470, 13, 0}));
  EXPECT_EQ(alloc_row(a, 1, 0, 4), (I32{0, 147, 4, 449}));
  EXPECT_EQ(alloc_row(a, 2, 0, 4), (I32{0, 300, 0, 0}));
  EXPECT_EQ(alloc_row(a, 3, 0, 4), (I32{0, 0, 900, 0}));
  PlanResult r{p, a, loads};
  EXPECT_TRUE(check_plan(p, &loads, &a).empty());
  // Remote tokens of e0: 470 + 13 + 147 + 4 = 634; the other experts are served where they were routed.
  EXPECT_EQ(measure_plan(loads, r).remote_tokens, 634);
  I32 prefix(4);
  rank_quota_prefix(a, 0, 0, 4, prefix.data());
  EXPECT_EQ(prefix, (I32{717, 1187, 1200, 1200}));
}

TEST(UltraEp, TvA_PerSourceSplitLocalityOff) {
  const LoadMatrix loads = tv_a_loads();
  const Plan p = ultraep_plan(kTvShape, loads.expert_totals(), {});
  const Allocation a = allocate_by_quota(p, loads, false);
  EXPECT_EQ(alloc_row(a, 0, 0, 4), (I32{287, 367, 367, 179}));
  EXPECT_EQ(alloc_row(a, 1, 0, 4), (I32{144, 183, 183, 90}));
  EXPECT_EQ(alloc_row(a, 2, 0, 4), (I32{72, 92, 91, 45}));
  EXPECT_EQ(alloc_row(a, 3, 0, 4), (I32{215, 275, 275, 135}));
  int64_t remote0 = 0;
  for (int s = 0; s < 4; ++s)
    for (int j = 0; j < 4; ++j)
      if (p.host(0, j) != s) remote0 += a.at(s, 0, j);
  EXPECT_EQ(remote0, 2256);
}

TEST(UltraEp, TvA_Variants) {
  UltraEpOptions eps0;
  eps0.eps = 0.0;
  Plan p = ultraep_plan(kTvShape, kTvA, eps0);
  EXPECT_EQ(row_quota(p, 0), (I64{700, 900, 900, 500}));
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 8, 11, 5}));
  UltraEpOptions eps5;
  eps5.eps = 0.05;
  p = ultraep_plan(kTvShape, kTvA, eps5);
  EXPECT_EQ(row_quota(p, 0), (I64{3000 - 985 - 985 - 245, 985, 985, 245}));
  EXPECT_EQ(p.domain_threshold[0], 1785);
  UltraEpOptions bt;
  bt.balance_threshold = 1.1;
  p = ultraep_plan(kTvShape, kTvA, bt);
  EXPECT_EQ(p.domain_threshold[0], 1889);
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 8, 11}));
  EXPECT_EQ(row_quota(p, 0), (I64{889, 1089, 1022}));
}

TEST(UltraEp, TvB_TwoHotExpertsOnOneRank) {
  const Plan p = ultraep_plan(kTvShape, {2000, 2000, 100, 100, 100, 100, 100, 100}, {});
  EXPECT_EQ(p.domain_threshold[0], 1162);
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 5, 8}));
  EXPECT_EQ(row_quota(p, 0), (I64{76, 962, 962}));
  EXPECT_EQ(row_l2p(p, 1), (I32{1, 11}));
  EXPECT_EQ(row_quota(p, 1), (I64{1086, 914}));
  EXPECT_EQ(p.p2l, (I32{0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 1}));
  EXPECT_EQ(quota_rank_loads(p), (I64{1162, 1162, 1162, 1114}));
}

TEST(UltraEp, TvC_SlotStarvationNoReplication) {
  UltraEpPlanner planner(kTvShape, {});
  const Plan& p = planner.plan({1000, 1000, 1000, 1000, 1000, 1000, 0, 0});
  const UltraEpDomainStats& st = planner.domain_stats()[0];
  EXPECT_EQ(st.threshold, 2000);
  EXPECT_FALSE(st.fast_path);
  // 3 fast tries, the capacity precheck, probe rounds of 4 + 4 + 4 + 3 and the final accept.
  EXPECT_EQ(st.oracle_calls, 3 + 1 + 15 + 1);
  EXPECT_EQ(p.total_replicas(), 0);
  EXPECT_EQ(p.p2l, (I32{0, 1, -1, 2, 3, -1, 4, 5, -1, 6, 7, -1}));
  EXPECT_NEAR(imbalance(quota_rank_loads(p)), 2000.0 / 1500.0, 1e-12);
}

TEST(UltraEp, TvD_StaticFloorFallback) {
  UltraEpPlanner planner(kTvShape, {});
  const Plan& p = planner.plan({1000, 0, 1000, 1000, 4000, 3000, 3000, 6000});
  EXPECT_EQ(planner.domain_stats()[0].threshold, 5000);
  EXPECT_EQ(row_l2p(p, 7), (I32{10, 2}));
  EXPECT_EQ(row_quota(p, 7), (I64{2000, 4000}));
  EXPECT_EQ(row_l2p(p, 4), (I32{6, 5}));
  EXPECT_EQ(row_quota(p, 4), (I64{2000, 2000}));
  EXPECT_EQ(p.p2l, (I32{0, 1, 7, 2, 3, 4, 4, 5, -1, 6, 7, -1}));
  EXPECT_EQ(quota_rank_loads(p), (I64{5000, 4000, 5000, 5000}));
}

TEST(UltraEp, TvE_TwoNvlinkDomains) {
  const ClusterShape shape{4, 2, 1, 2};
  const I64 w{1500, 500, 200, 200, 600, 600, 400, 400};
  const Plan p = ultraep_plan(shape, w, {});
  EXPECT_EQ(p.domain_threshold, (I64{1212, 1010}));
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 5}));
  EXPECT_EQ(row_quota(p, 0), (I64{712, 788}));
  EXPECT_EQ(row_l2p(p, 4), (I32{6, 11}));
  EXPECT_EQ(row_quota(p, 4), (I64{410, 190}));
  EXPECT_EQ(quota_rank_loads(p), (I64{1212, 1188, 1010, 990}));
  EXPECT_NEAR(domain_lower_bound({2000, 400, 1200, 800}, 2), 1200.0 / 1100.0, 1e-12);
  EXPECT_TRUE(check_plan(p).empty());

  LoadMatrix loads(4, 8);
  const int32_t e0[4] = {500, 100, 600, 300};
  for (int s = 0; s < 4; ++s) loads.at(s, 0) = e0[s];
  for (int l = 1; l < 8; ++l) loads.at(l / 2, l) = static_cast<int32_t>(w[l]);
  const Allocation a = allocate_by_quota(p, loads, true);
  EXPECT_EQ(alloc_row(a, 0, 0, 2), (I32{500, 0}));
  EXPECT_EQ(alloc_row(a, 1, 0, 2), (I32{0, 100}));
  EXPECT_EQ(alloc_row(a, 2, 0, 2), (I32{141, 459}));
  EXPECT_EQ(alloc_row(a, 3, 0, 2), (I32{71, 229}));
}

TEST(UltraEp, TvF_DynamicFloorMovesToSecondExpert) {
  const ClusterShape shape{4, 2, 2, 4};
  const Plan p = ultraep_plan(shape, {400, 400, 0, 0, 0, 0, 0, 0}, {});
  EXPECT_EQ(p.domain_threshold[0], 202);
  EXPECT_EQ(row_l2p(p, 0), (I32{0, 6}));
  EXPECT_EQ(row_quota(p, 0), (I64{198, 202}));
  EXPECT_EQ(row_l2p(p, 1), (I32{1, 10, 14}));
  EXPECT_EQ(row_quota(p, 1), (I64{4, 202, 194}));
  EXPECT_EQ(p.p2l, (I32{0, 1, -1, -1, 2, 3, 0, -1, 4, 5, 1, -1, 6, 7, 1, -1}));
  EXPECT_EQ(quota_rank_loads(p), (I64{202, 202, 202, 194}));
}

TEST(Reroute, TvG_InterleavePermutation) {
  const I32 prefix{4, 7, 10};
  I32 with, without;
  for (int k = 0; k < 10; ++k) {
    with.push_back(reroute_instance(3, k, prefix.data(), 3, true));
    without.push_back(reroute_instance(3, k, prefix.data(), 3, false));
  }
  EXPECT_EQ(with, (I32{0, 0, 2, 1, 0, 2, 1, 0, 2, 1}));
  EXPECT_EQ(without, (I32{0, 0, 0, 0, 1, 1, 1, 2, 2, 2}));
  const std::vector<std::pair<int, int>> strides{{2, 1}, {3, 2}, {4, 3},  {5, 3},  {6, 5}, {7, 4},
                                                 {8, 5}, {9, 5}, {10, 7}, {11, 6}, {12, 7}};
  for (const auto& [q, s] : strides) EXPECT_EQ(interleave_stride(q), s) << "Q = " << q;
}

TEST(Reroute, TokensFollowTheAllocationExactly) {
  const LoadMatrix loads = tv_a_loads();
  const Plan p = ultraep_plan(kTvShape, loads.expert_totals(), {});
  const Allocation a = allocate_by_quota(p, loads, true);
  for (int s = 0; s < 4; ++s) {
    // Token t of source s picks expert (t mod 8) until every expert's count is used up (top-1 rows).
    std::vector<int32_t> ids;
    for (int l = 0; l < 8; ++l)
      for (int i = 0; i < loads.at(s, l); ++i) ids.push_back(l);
    const std::vector<int32_t> phys = reroute_tokens(p, a, s, ids, 1, true);
    std::vector<int64_t> per_phys(kTvShape.num_physical(), 0);
    for (size_t i = 0; i < phys.size(); ++i) {
      ASSERT_EQ(p.p2l[phys[i]], ids[i]) << "token rerouted to another expert";
      per_phys[phys[i]] += 1;
    }
    for (int l = 0; l < 8; ++l)
      for (int j = 0; j < p.lcnt[l]; ++j) EXPECT_EQ(per_phys[p.physical(l, j)], a.at(s, l, j));
  }
  EXPECT_THROW(reroute_tokens(p, a, 0, {9}, 1, true), InputError);
}

TEST(UltraEp, EdgeCases) {
  // R = 0 or G = 1: masters only.
  EXPECT_EQ(ultraep_plan({4, 2, 0, 4}, kTvA, {}).total_replicas(), 0);
  EXPECT_EQ(ultraep_plan({4, 2, 1, 1}, kTvA, {}).total_replicas(), 0);
  // All loads zero: masters only, quotas 0.
  const Plan z = ultraep_plan(kTvShape, I64(8, 0), {});
  EXPECT_EQ(z.total_replicas(), 0);
  EXPECT_EQ(z.domain_threshold[0], 0);
  // A single expert hotter than all spare capacity gets at most G-1 replicas.
  const Plan hot = ultraep_plan({4, 2, 3, 4}, {100000, 0, 0, 0, 0, 0, 0, 0}, {});
  EXPECT_EQ(hot.lcnt[0], 4);
  EXPECT_TRUE(check_plan(hot).empty());
  EXPECT_THROW(UltraEpPlanner(ClusterShape{4, 2, 1, 3}, {}), InputError);
}

}  // namespace
}  // namespace rackep
