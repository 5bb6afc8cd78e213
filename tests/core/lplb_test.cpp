// DeepSeek LPLB (docs/ALGORITHMS.md §5): topologies, the per-group LP (test vector TV-N), the token mapping
// and the `lplb` balancer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/allocation.hpp"
#include "core/balancer.hpp"
#include "core/error.hpp"
#include "lplb/lplb.hpp"
#include "tests/core/baseline_sanity.hpp"

namespace rackep {
namespace {

std::vector<int32_t> direction(const RedundancyTopology& t, int k) {
  std::vector<int32_t> out;
  for (int i = 0; i < t.group_size; ++i) out.push_back(t.source(i, k));
  return out;
}

TEST(LplbTopology, PresetsMatchLplb) {
  const RedundancyTopology cube = redundancy_topology(8, 2);
  EXPECT_EQ(cube.name, "Cube8P2E");
  EXPECT_EQ(direction(cube, 0), (std::vector<int32_t>{3, 0, 1, 2, 7, 4, 5, 6}));
  EXPECT_EQ(direction(cube, 1), (std::vector<int32_t>{6, 7, 4, 5, 0, 1, 2, 3}));
  const RedundancyTopology ring = redundancy_topology(8, 1);
  EXPECT_EQ(ring.name, "Ring8P");
  EXPECT_EQ(direction(ring, 0), (std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 0}));
  const RedundancyTopology hyper = redundancy_topology(16, 2);
  EXPECT_EQ(hyper.name, "Hypercube16P2E");
  EXPECT_EQ(direction(hyper, 0),
            (std::vector<int32_t>{3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14}));
  EXPECT_EQ(direction(hyper, 1),
            (std::vector<int32_t>{12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  for (const auto& t : {cube, ring, hyper}) EXPECT_NO_THROW(t.validate());
  // Ring shifts: shift_k = 1 + floor(k (g-1) / d); (8, 1) reproduces Ring8P.
  EXPECT_EQ(ring_shift_topology(8, 1).r2o, ring.r2o);
  EXPECT_EQ(direction(ring_shift_topology(2, 1), 0), (std::vector<int32_t>{1, 0}));
  const RedundancyTopology rs = ring_shift_topology(4, 2);  // shifts 1 and 2
  EXPECT_EQ(direction(rs, 0), (std::vector<int32_t>{1, 2, 3, 0}));
  EXPECT_EQ(direction(rs, 1), (std::vector<int32_t>{2, 3, 0, 1}));
  for (int g = 2; g <= 12; ++g)
    for (int d = 1; d < g; ++d) EXPECT_NO_THROW(ring_shift_topology(g, d).validate()) << g << "," << d;
  EXPECT_THROW(ring_shift_topology(2, 2), InputError);
  RedundancyTopology bad = ring;
  bad.r2o[0] = 0;  // rank 0 copying itself
  EXPECT_THROW(bad.validate(), InputError);
}

TEST(LplbLp, TvN_HandExample) {
  // g = 2, d = 1, r2o = [[1], [0]]. L0 = 40 + 60 x0 + 10 (1 - x1), L1 = 30 + 10 x1 + 60 (1 - x0).
  // Total 140 over 2 ranks -> makespan >= 70, attained with x0 = (20 + 10 x1) / 60.
  const RedundancyTopology t = ring_shift_topology(2, 1);
  const LplbLpSolution s = solve_lplb_lp(t, {40, 30}, {60, 10});
  ASSERT_TRUE(s.solved);
  EXPECT_LE(s.makespan, 70.0 * (1 + 1e-9));
  EXPECT_GE(s.makespan, 70.0 * (1 - 1e-9));
  EXPECT_NEAR(s.keep[0], (20.0 + 10.0 * s.keep[1]) / 60.0, 1e-9);
  EXPECT_DOUBLE_EQ(lplb_makespan(t, {40, 30}, {60, 10}, {1.0, 1.0}), 100.0);  // masters only
}

TEST(LplbLp, NeverWorseThanKeepingEverythingAndAboveTheMean) {
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>((state >> 33) % 1000);
  };
  for (const RedundancyTopology& t :
       {cube8p2e(), ring8p(), hypercube16p2e(), ring_shift_topology(4, 2), ring_shift_topology(6, 3)}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> fixed(static_cast<size_t>(t.group_size)),
          rep(static_cast<size_t>(t.group_size) * t.directions);
      for (double& f : fixed) f = next();
      for (double& w : rep) w = next() * (trial % 3 == 0 ? 5 : 1);
      const LplbLpSolution s = solve_lplb_lp(t, fixed, rep);
      ASSERT_TRUE(s.solved) << t.name << " trial " << trial;
      const double keep_all = lplb_makespan(t, fixed, rep, std::vector<double>(rep.size(), 1.0));
      const double total =
          std::accumulate(fixed.begin(), fixed.end(), 0.0) + std::accumulate(rep.begin(), rep.end(), 0.0);
      EXPECT_LE(s.makespan, keep_all * (1 + 1e-9)) << t.name;
      EXPECT_GE(s.makespan, total / t.group_size * (1 - 1e-9)) << t.name;
      // Not worse than LPLB's 50/50 fallback either (the LP optimum is below any feasible point).
      EXPECT_LE(s.makespan, lplb_makespan(t, fixed, rep, std::vector<double>(rep.size(), 0.5)) * (1 + 1e-9));
      for (double x : s.keep) {
        EXPECT_GE(x, 0.0);
        EXPECT_LE(x, 1.0);
      }
    }
  }
}

TEST(LplbLp, FailureFallsBackToHalfAndHalf) {
  // With no simplex iteration allowed GLPK stops with GLP_EITLIM (the starting basis is infeasible).
  const RedundancyTopology t = cube8p2e();
  const std::vector<double> fixed{5, 1, 1, 1, 9, 1, 1, 1};
  const std::vector<double> rep{9, 1, 1, 1, 1, 1, 1, 1, 9, 9, 1, 1, 1, 1, 1, 1};
  const LplbLpSolution s = solve_lplb_lp(t, fixed, rep, /*max_iterations=*/0);
  EXPECT_FALSE(s.solved);
  EXPECT_EQ(s.keep, std::vector<double>(16, 0.5));
  EXPECT_TRUE(solve_lplb_lp(t, fixed, rep).solved);
  const LplbLpSolution zero = solve_lplb_lp(t, std::vector<double>(8, 0.0), std::vector<double>(16, 0.0));
  EXPECT_TRUE(zero.solved);
  EXPECT_EQ(zero.keep, std::vector<double>(16, 1.0));
  EXPECT_THROW(solve_lplb_lp(t, {1, 2}, rep), InputError);
}

TEST(LplbMapping, CountsMatchTheKernelPermutation) {
  // Brute force of the map kernel: token c goes to the original iff (499 c + 41) mod n < E, E = int(keep n).
  for (int64_t n = 0; n <= 1500; ++n)
    for (double keep : {0.0, 0.1, 0.25, 0.5, 0.73, 0.999, 1.0}) {
      const int64_t e = static_cast<int64_t>(keep * static_cast<double>(n));
      int64_t brute = 0;
      for (int64_t c = 0; c < n; ++c) brute += (499 * c + 41) % n < e ? 1 : 0;
      ASSERT_EQ(lplb_tokens_to_original(n, keep), brute) << "n " << n << " keep " << keep;
    }
  EXPECT_EQ(lplb_tokens_to_original(10, 0.5), 5);
  // gcd(499, 499) = 499: every token lands on c' = 41 < 249, so all 499 stay on the original
  // (a quirk of the kernel's permutation).
  EXPECT_EQ(lplb_tokens_to_original(499, 0.5), 499);
  // n = 998: c' takes only the values 41 and 540, 499 times each.
  EXPECT_EQ(lplb_tokens_to_original(998, 0.5), 499);  // E = 499: only c' = 41 is below
  EXPECT_EQ(lplb_tokens_to_original(998, 0.6), 998);  // E = 598: both
  EXPECT_EQ(lplb_tokens_to_original(998, 0.04), 0);   // E = 39: neither
}

// TV-N through the balancer: N = G = 2, M = 2, R = 1 -> g = 2, d = 1, r2o = [[1], [0]].
TEST(LplbBalancer, TvN_FullRun) {
  const ClusterShape shape{2, 2, 1, 2};
  BalancerOptions opt;
  opt.lplb.window = 1;
  opt.lplb.period = 1;
  auto base = make_balancer("lplb", shape, opt);
  auto* b = dynamic_cast<LplbBalancer*>(base.get());
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->persistent_replicas());
  EXPECT_EQ(b->layout().topology.r2o, (std::vector<int32_t>{1, 0}));

  // Call 0 (no history): masters only, every token stays on its master.
  const LoadMatrix hist(2, 4, {60, 40, 10, 0, 0, 0, 0, 30});  // history W = [60, 40, 10, 30]
  const PlanResult r0 = b->plan(hist, {0, 0});
  EXPECT_EQ(r0.plan.p2l, Plan::masters_only(shape, {}).p2l);
  EXPECT_EQ(r0.plan.total_replicas(), 0);
  EXPECT_TRUE(testing::allocation_conserves(r0.plan, r0.alloc, hist));
  EXPECT_EQ(b->lp_solved(), 0);

  // Call 1: EPLB reorder of the history: e0 (60) -> GPU 0, e1 (40) -> GPU 1, e3 (30) -> GPU 1,
  // e2 (10) -> GPU 0. Sorted per rank: r0 = [e0, e2], r1 = [e1, e3]; the top expert of each rank is
  // replicated on the other rank. Current W = [60, 10, 40, 30]: f0 = 40 (e2), w0 = 60 (e0),
  // f1 = 30 (e3), w1 = 10 (e1): exactly TV-N.
  const LoadMatrix now(2, 4, {30, 5, 40, 0, 30, 5, 0, 30});
  const PlanResult r1 = b->plan(now, {0, 1});
  EXPECT_EQ(r1.plan.p2l, (std::vector<int32_t>{0, 2, 1, 1, 3, 0}));
  EXPECT_EQ(r1.plan.lcnt, (std::vector<int32_t>{2, 2, 1, 1}));
  EXPECT_FALSE(r1.plan.masters_fixed);
  EXPECT_FALSE(r1.plan.has_quota);
  EXPECT_TRUE(testing::plan_is_sane(r1.plan));
  EXPECT_TRUE(testing::allocation_conserves(r1.plan, r1.alloc, now));
  EXPECT_EQ(b->lp_solved(), 1);
  EXPECT_EQ(b->lp_fallbacks(), 0);
  EXPECT_LE(b->last_split().lp_makespan[0], 70.0 * (1 + 1e-9));
  EXPECT_DOUBLE_EQ(b->last_split().keep_all_makespan[0], 100.0);
  // Actual token counts: each (source, replicated expert) rounds by less than one token.
  const std::vector<int64_t> after = rank_loads_after(r1.plan, r1.alloc);
  EXPECT_EQ(after[0] + after[1], 140);
  EXPECT_LE(std::max(after[0], after[1]), 70 + 4);
}

struct Case {
  ClusterShape shape;
  int group_size;
  int directions;
  const char* topology;
};

TEST(LplbBalancer, SaneAndNeverWorseOnSeveralTopologies) {
  const std::vector<Case> cases{{{8, 4, 2, 8}, 8, 0, "Cube8P2E"},
                                {{8, 2, 1, 8}, 8, 0, "Ring8P"},
                                {{16, 2, 2, 16}, 16, 0, "Hypercube16P2E"},
                                {{16, 4, 2, 8}, 4, 0, "RingShift4P2E"},
                                {{8, 4, 4, 8}, 8, 2, "Cube8P2E"}};
  for (const Case& c : cases) {
    BalancerOptions opt;
    opt.lplb.group_size = c.group_size;
    opt.lplb.directions = c.directions;
    opt.lplb.window = 3;
    opt.lplb.period = 2;
    LplbBalancer b(c.shape, opt.lplb);
    EXPECT_EQ(b.layout().topology.name, c.topology);
    const int g = b.layout().topology.group_size;
    for (int k = 0; k < 6; ++k) {
      const LoadMatrix loads = testing::skewed_loads(c.shape.num_ranks, c.shape.num_experts(), 500 + k, 700);
      const PlanResult r = b.plan(loads, {0, k});
      EXPECT_TRUE(testing::plan_is_sane(r.plan)) << c.topology << " call " << k;
      EXPECT_TRUE(testing::allocation_conserves(r.plan, r.alloc, loads)) << c.topology;
      if (k < 2) {
        EXPECT_EQ(r.plan.total_replicas(), 0);
        continue;
      }
      // After history: exactly R copies per rank, one copy per replicated expert, inside the expert's group.
      EXPECT_EQ(r.plan.used_redundant_slots(),
                static_cast<int64_t>(c.shape.num_ranks) * c.shape.num_redundant);
      for (int l = 0; l < c.shape.num_experts(); ++l) {
        ASSERT_LE(r.plan.lcnt[l], 2);
        if (r.plan.lcnt[l] == 2) {
          EXPECT_EQ(r.plan.host(l, 0) / g, r.plan.host(l, 1) / g);
        }
      }
      const LplbSplit& split = b.last_split();
      EXPECT_EQ(split.lp_fallbacks, 0);
      EXPECT_EQ(split.lp_solved, c.shape.num_ranks / g);
      for (size_t grp = 0; grp < split.lp_makespan.size(); ++grp)
        EXPECT_LE(split.lp_makespan[grp], split.keep_all_makespan[grp] * (1 + 1e-9)) << c.topology;
      // Token counts follow the LP's fractions: with gcd(499, n) = 1 a source keeps floor(x n) tokens on the
      // original; every rank is within the summed rounding of its entries of the LP's makespan.
      const std::vector<int64_t> after = rank_loads_after(r.plan, r.alloc);
      std::vector<double> rounding(static_cast<size_t>(c.shape.num_ranks), 0.0);
      const int d = b.layout().topology.directions;
      for (int rank = 0; rank < c.shape.num_ranks; ++rank)
        for (int slot = 0; slot < b.layout().per_direction * d; ++slot) {
          const int l = r.plan.p2l[static_cast<size_t>(rank) * c.shape.slots_per_rank() + slot];
          const double keep = split.keep[static_cast<size_t>(rank) * d + slot % d];
          for (int s = 0; s < c.shape.num_ranks; ++s) {
            const int32_t n = loads.at(s, l);
            const double dev = keep * n - r.alloc.at(s, l, 0);
            if (n % 499 != 0) {
              EXPECT_GE(dev, 0.0);
              EXPECT_LT(dev, 1.0);
            }
            rounding[r.plan.host(l, 0)] += std::abs(dev);
            rounding[r.plan.host(l, 1)] += std::abs(dev);
          }
        }
      for (int rank = 0; rank < c.shape.num_ranks; ++rank)
        EXPECT_LE(after[rank], split.lp_makespan[rank / g] + rounding[rank] + 1e-6) << c.topology;
    }
    EXPECT_EQ(b.lp_fallbacks(), 0);
    EXPECT_GT(b.lp_solved(), 0);
  }
}

TEST(LplbBalancer, SplitCountsFallbacks) {
  const ClusterShape shape{8, 4, 2, 8};
  const LplbLayout layout = resolve_lplb_layout(shape, LplbOptions{});
  const LoadMatrix loads = testing::skewed_loads(8, 32, 3, 900);
  std::vector<double> w(32);
  const std::vector<int64_t> totals = loads.expert_totals();
  std::copy(totals.begin(), totals.end(), w.begin());
  const Plan plan = lplb_placement(shape, layout, w);
  const LplbSplit split = lplb_split(plan, layout, loads, /*max_iterations=*/0);
  EXPECT_EQ(split.lp_fallbacks, 1);
  EXPECT_EQ(split.lp_solved, 0);
  EXPECT_EQ(split.keep, std::vector<double>(16, 0.5));
  EXPECT_TRUE(testing::allocation_conserves(plan, split.alloc, loads));
}

TEST(LplbBalancer, PlacementNeverSeesCurrentOrFutureLoads) {
  const ClusterShape shape{8, 4, 2, 8};
  LplbOptions o;
  o.window = 2;
  o.period = 2;
  LplbBalancer a(shape, o), b(shape, o);
  const int m = 4;
  bool later_differs = false;
  for (int k = 0; k < 8; ++k) {
    const LoadMatrix la = testing::skewed_loads(8, 32, 900 + k, 500);
    LoadMatrix lb = la;
    if (k >= m) {
      lb = LoadMatrix(8, 32);
      for (int s = 0; s < 8; ++s) lb.at(s, 31 - s) = 5000 + s;
    }
    const PlanResult ra = a.plan(la, {0, k});
    const PlanResult rb = b.plan(lb, {0, k});
    if (k <= m) {
      EXPECT_EQ(ra.plan.p2l, rb.plan.p2l) << "call " << k;
    } else if (ra.plan.p2l != rb.plan.p2l) {
      later_differs = true;
    }
  }
  EXPECT_TRUE(later_differs);
}

void expect_bad(const ClusterShape& shape, const LplbOptions& lplb, const std::string& source,
                const std::string& field) {
  BalancerOptions opt;
  opt.lplb = lplb;
  try {
    make_balancer("lplb", shape, opt);
    ADD_FAILURE() << "expected InputError for " << field;
  } catch (const InputError& e) {
    EXPECT_EQ(e.source(), source);
    EXPECT_EQ(e.field(), field);
  }
}

TEST(LplbBalancer, BadOptionsNameTheOption) {
  LplbOptions o;
  o.group_size = 0;
  expect_bad({8, 4, 2, 8}, o, "lplb options", "group_size");
  o = LplbOptions{};
  o.group_size = 3;  // does not divide the domain of 8
  expect_bad({8, 4, 2, 8}, o, "lplb options", "group_size");
  o = LplbOptions{};
  o.directions = 2;  // R = 3 is not a multiple of 2
  expect_bad({8, 4, 3, 8}, o, "lplb options", "directions");
  o = LplbOptions{};
  o.directions = -1;
  expect_bad({8, 4, 2, 8}, o, "lplb options", "directions");
  o = LplbOptions{};
  o.directions = 8;  // more directions than other ranks in the group
  expect_bad({8, 8, 8, 8}, o, "lplb options", "directions");
  o = LplbOptions{};
  o.window = 0;
  expect_bad({8, 4, 2, 8}, o, "lplb options", "window");
  o = LplbOptions{};
  o.period = 0;
  expect_bad({8, 4, 2, 8}, o, "lplb options", "period");
  expect_bad({8, 4, 2, 1}, LplbOptions{}, "lplb options", "group_size");  // G = 1: no other rank to copy to
  expect_bad({8, 1, 2, 8}, LplbOptions{}, "cluster shape", "slots");      // R = 2 > M = 1
  // R = 0: nothing to replicate, always masters only.
  LplbBalancer none({8, 2, 0, 8}, LplbOptions{});
  const LoadMatrix loads = testing::skewed_loads(8, 16, 1, 100);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(none.plan(loads, {0, k}).plan.total_replicas(), 0);
}

}  // namespace
}  // namespace rackep
