// UltraEP legacy planner (docs/ALGORITHMS.md §2.7) and the `ultraep-legacy` balancer; test vector TV-H.
#include <gtest/gtest.h>

#include <cmath>

#include "core/allocation.hpp"
#include "core/balancer.hpp"
#include "core/error.hpp"
#include "core/legacy.hpp"
#include "tests/core/baseline_sanity.hpp"

namespace rackep {
namespace {

const ClusterShape kTvA{4, 2, 1, 4};  // N = G = 4, M = 2, R = 1, S = 3
const std::vector<int64_t> kTvAW{3000, 1000, 800, 400, 600, 200, 500, 300};

std::vector<int32_t> row(const Plan& p, int l) {
  return std::vector<int32_t>(p.l2p.begin() + static_cast<ptrdiff_t>(l) * p.shape.num_ranks,
                              p.l2p.begin() + static_cast<ptrdiff_t>(l + 1) * p.shape.num_ranks);
}

// TV-A's loads with e0 split over sources [1200, 600, 300, 900] (each a multiple of 4, so round-robin over
// e0's 4 instances is exact) and every other expert routed from its master rank.
LoadMatrix tv_a_loads() {
  LoadMatrix m(4, 8);
  const int e0[4] = {1200, 600, 300, 900};
  for (int s = 0; s < 4; ++s) m.at(s, 0) = e0[s];
  for (int l = 1; l < 8; ++l) m.at(l / 2, l) = static_cast<int32_t>(kTvAW[l]);
  return m;
}

TEST(Legacy, TvH_Bt1) {
  // Replication: e0 -> 2, e0 -> 3, e0 -> 4 (tie e0/e1 at 1000 -> lower id), e1 -> 2. Replicas: e0 x3 (750),
  // e1 (500). Estimates [1250, 1200, 800, 800]: e0 copies -> r2, r3, r1; e1 has no eligible rank -> dropped.
  LegacyStats stats;
  const Plan p = legacy_plan(kTvA, kTvAW, 1.0, &stats);
  EXPECT_EQ(row(p, 0), (std::vector<int32_t>{0, 8, 11, 5}));
  EXPECT_EQ(p.lcnt, (std::vector<int32_t>{4, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(p.p2l, (std::vector<int32_t>{0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 0}));
  EXPECT_EQ(stats.replicas_requested, 4);
  EXPECT_EQ(stats.replicas_dropped, 1);
  EXPECT_FALSE(p.has_quota);
  EXPECT_TRUE(p.masters_fixed);
  for (int64_t q : p.quota) EXPECT_EQ(q, 0);
  EXPECT_TRUE(testing::plan_is_sane(p));

  // Round-robin: 750 per e0 instance -> ranks [750+1000, 750+800+400, 750+600+200, 750+500+300].
  const LoadMatrix loads = tv_a_loads();
  const Allocation a = allocate_round_robin(p, loads);
  EXPECT_TRUE(testing::allocation_conserves(p, a, loads));
  const std::vector<int64_t> after = rank_loads_after(p, a);
  EXPECT_EQ(after, (std::vector<int64_t>{1750, 1950, 1550, 1550}));
  EXPECT_NEAR(imbalance(after), 1950.0 / 1700.0, 1e-12);
  EXPECT_NEAR(imbalance(after), 1.147, 5e-4);
}

TEST(Legacy, TvH_Bt12) {
  // avg per slot 6800/8 = 850, stop once the best per-copy load <= 1020: e0 gets 3 copies (1000 each), then
  // e0/e1 tie at 1000 <= 1020 -> stop. Copies -> r2, r3. Loads [2000, 1200, 1800, 1800] -> 1.176.
  LegacyStats stats;
  const Plan p = legacy_plan(kTvA, kTvAW, 1.2, &stats);
  EXPECT_EQ(row(p, 0), (std::vector<int32_t>{0, 8, 11, -1}));
  EXPECT_EQ(p.lcnt, (std::vector<int32_t>{3, 1, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(stats.replicas_dropped, 0);
  EXPECT_TRUE(testing::plan_is_sane(p));
  LoadMatrix loads(4, 8);  // everything from source 0: round-robin gives exactly W/C per instance (3000/3)
  for (int l = 0; l < 8; ++l) loads.at(0, l) = static_cast<int32_t>(kTvAW[l]);
  const Allocation a = allocate_round_robin(p, loads);
  const std::vector<int64_t> after = rank_loads_after(p, a);
  EXPECT_EQ(after, (std::vector<int64_t>{2000, 1200, 1800, 1800}));
  EXPECT_NEAR(imbalance(after), 2000.0 / 1700.0, 1e-12);
}

TEST(Legacy, PerDomainAndCapped) {
  // Two domains of 2 ranks (N = 4, G = 2, M = 2, R = 2): an expert gets at most G-1 = 1 replica, only inside
  // its domain, and unused slots stay empty.
  const ClusterShape shape{4, 2, 2, 2};
  const std::vector<int64_t> w{5000, 10, 10, 10, 10, 10, 4000, 10};
  const Plan p = legacy_plan(shape, w, 1.0);
  EXPECT_TRUE(testing::plan_is_sane(p));
  for (int l = 0; l < 8; ++l) {
    EXPECT_LE(p.lcnt[l], 2);
    for (int j = 0; j < p.lcnt[l]; ++j)
      EXPECT_EQ(shape.domain_of_rank(p.host(l, j)), shape.domain_of_rank(l / 2));
  }
  EXPECT_EQ(p.lcnt[0], 2);
  EXPECT_EQ(p.host(0, 1), 1);
  EXPECT_EQ(p.lcnt[6], 2);
  EXPECT_EQ(p.host(6, 1), 2);
  // Domain 0 has G*R = 4 slots: e0 (5000) takes the first, then e1, e2, e3 one each (all at the cap of 1);
  // each replica goes to the expert's domain peer, which has 2 slots, so all 4 fit. Same in domain 1.
  EXPECT_EQ(p.total_replicas(), 8);
}

TEST(Legacy, NoRedundancyOrSingleRankDomains) {
  EXPECT_EQ(legacy_plan(ClusterShape{4, 2, 0, 4}, kTvAW, 1.0).total_replicas(), 0);
  EXPECT_EQ(legacy_plan(ClusterShape{4, 2, 2, 1}, kTvAW, 1.0).total_replicas(), 0);
  const Plan zero = legacy_plan(kTvA, std::vector<int64_t>(8, 0), 1.0);
  EXPECT_TRUE(testing::plan_is_sane(zero));
}

TEST(Legacy, BalancerRegisteredAndSane) {
  BalancerOptions opt;
  auto b = make_balancer("ultraep-legacy", kTvA, opt);
  EXPECT_EQ(b->name(), "ultraep-legacy");
  EXPECT_FALSE(b->persistent_replicas());
  const LoadMatrix loads = tv_a_loads();
  const PlanResult r = b->plan(loads, {0, 0});
  EXPECT_EQ(row(r.plan, 0), (std::vector<int32_t>{0, 8, 11, 5}));
  EXPECT_EQ(r.routed, loads);
  EXPECT_EQ(rank_loads_after(r.plan, r.alloc), (std::vector<int64_t>{1750, 1950, 1550, 1550}));
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const ClusterShape shape{8, 3, 2, 4};
    auto bal = make_legacy_balancer(shape, opt);
    const LoadMatrix m = testing::skewed_loads(8, 24, seed, 300);
    const PlanResult res = bal->plan(m, {0, static_cast<int64_t>(seed)});
    EXPECT_TRUE(testing::plan_is_sane(res.plan)) << "seed " << seed;
    EXPECT_TRUE(testing::allocation_conserves(res.plan, res.alloc, m)) << "seed " << seed;
    EXPECT_LE(res.plan.used_redundant_slots(), 8 * 2);
  }
}

TEST(Legacy, BadThresholdNamesTheOption) {
  BalancerOptions opt;
  opt.ultraep.balance_threshold = -1.0;
  try {
    make_balancer("ultraep-legacy", kTvA, opt);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "balance_threshold");
  }
  EXPECT_THROW(legacy_plan(kTvA, kTvAW, std::nan("")), InputError);
}

}  // namespace
}  // namespace rackep
