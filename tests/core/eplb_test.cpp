// DeepSeek EPLB pure functions (docs/ALGORITHMS.md §4, test vector TV-M) and the periodic `eplb` balancer.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/allocation.hpp"
#include "core/balancer.hpp"
#include "core/eplb.hpp"
#include "core/error.hpp"
#include "tests/core/baseline_sanity.hpp"

namespace rackep {
namespace {

// Load of every GPU: sum over its copies of weight / count.
std::vector<double> gpu_loads(const EplbPlacement& p, const std::vector<double>& w, int num_gpus) {
  const int per_gpu = static_cast<int>(p.phy2log.size()) / num_gpus;
  std::vector<double> out(static_cast<size_t>(num_gpus), 0.0);
  for (size_t i = 0; i < p.phy2log.size(); ++i)
    if (p.phy2log[i] >= 0) out[i / per_gpu] += w[p.phy2log[i]] / p.logcnt[p.phy2log[i]];
  return out;
}

TEST(EplbTvM, ReadmeExample) {
  // The EPLB README example: 2 layers, 12 experts, 16 physical, 4 groups, 2 nodes, 8 GPUs (hierarchical).
  const std::vector<std::vector<double>> weight{{90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86},
                                                {20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27}};
  const std::vector<std::vector<int32_t>> expected{{5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1},
                                                   {7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1}};
  for (int layer = 0; layer < 2; ++layer) {
    const EplbPlacement p = rebalance_experts(weight[layer], 16, 4, 2, 8);
    EXPECT_EQ(p.phy2log, expected[layer]) << "layer " << layer;
    // log2phy is the inverse of (phy2log, phyrank).
    for (int l = 0; l < 12; ++l)
      for (int j = 0; j < p.logcnt[l]; ++j) {
        EXPECT_EQ(p.phy2log[p.physical(l, j)], l);
        EXPECT_EQ(p.phyrank[p.physical(l, j)], j);
      }
  }
}

TEST(EplbTvM, SmallGlobal) {
  // w = [100, 60, 30, 10], P = 6: extra copies to e0 (100) then e1 (60 > 50). Copies 50,50,30,30,30,10 packed
  // onto 2 GPUs: GPU 0 = {e0, e1, e1} = 110, GPU 1 = {e0, e2, e3} = 90 -> GPU 0 holds both copies of e1.
  const std::vector<double> w{100, 60, 30, 10};
  const EplbPlacement p = rebalance_experts(w, 6, 1, 1, 2);
  EXPECT_EQ(p.logcnt, (std::vector<int32_t>{2, 2, 1, 1}));
  EXPECT_EQ(p.phy2log, (std::vector<int32_t>{0, 1, 1, 0, 2, 3}));
  EXPECT_EQ(p.max_count, 2);
  EXPECT_EQ(p.log2phy, (std::vector<int32_t>{0, 3, 1, 2, 4, -1, 5, -1}));
  EXPECT_EQ(gpu_loads(p, w, 2), (std::vector<double>{110, 90}));
}

TEST(EplbTvM, SmallHierarchical) {
  // Groups {e0,e1}=160, {e2,e3}=40, {e4,e5}=90, {e6,e7}=25 -> node 0 gets groups {0, 3}, node 1 {2, 1}.
  const std::vector<double> w{100, 60, 30, 10, 50, 40, 20, 5};
  const EplbPlacement p = rebalance_experts(w, 12, 4, 2, 4);
  EXPECT_EQ(p.phy2log, (std::vector<int32_t>{0, 1, 6, 0, 1, 7, 2, 5, 5, 4, 4, 3}));
  EXPECT_EQ(gpu_loads(p, w, 4), (std::vector<double>{100, 85, 70, 60}));
}

TEST(EplbTvM, TvALoadsGlobal) {
  const std::vector<double> w{3000, 1000, 800, 400, 600, 200, 500, 300};
  const EplbPlacement p = rebalance_experts(w, 12, 1, 1, 4);
  EXPECT_EQ(p.logcnt, (std::vector<int32_t>{4, 2, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(p.phy2log, (std::vector<int32_t>{2, 6, 3, 0, 0, 5, 0, 4, 7, 0, 1, 1}));
  EXPECT_EQ(gpu_loads(p, w, 4), (std::vector<double>{1700, 1700, 1650, 1750}));
}

TEST(Eplb, PackingAndReplicationTieRules) {
  // Equal weights: items in index order, each to the lightest pack, ties to the lower pack.
  const EplbPacking pk = balanced_packing({5, 5, 5, 5}, 2);
  EXPECT_EQ(pk.pack, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_EQ(pk.rank_in_pack, (std::vector<int32_t>{0, 0, 1, 1}));
  const EplbPacking id = balanced_packing({1, 9, 3}, 3);  // one item per pack: identity
  EXPECT_EQ(id.pack, (std::vector<int32_t>{0, 1, 2}));
  // 10/1 ties 20/2: the lower id gets the copy.
  const EplbReplication rep = replicate_experts({20, 10}, 4);
  EXPECT_EQ(rep.phy2log, (std::vector<int32_t>{0, 1, 0, 0}));
  EXPECT_EQ(rep.rank, (std::vector<int32_t>{0, 0, 1, 2}));
  // A cap stops replication: expert 0 cannot exceed 2 copies.
  const EplbReplication capped = replicate_experts({100, 1}, 5, 2);
  EXPECT_EQ(capped.logcnt, (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(capped.phy2log.size(), 4u);
  EXPECT_THROW(balanced_packing({1, 2, 3}, 2), InputError);
  EXPECT_THROW(rebalance_experts({1, 2, 3, 4}, 6, 1, 1, 4), InputError);  // 6 physical over 4 GPUs
}

const ClusterShape kTvA{4, 2, 1, 4};

LoadMatrix one_source(const std::vector<int32_t>& w) {
  LoadMatrix m(4, static_cast<int>(w.size()));
  for (size_t l = 0; l < w.size(); ++l) m.at(static_cast<int>(l) % 4, static_cast<int>(l)) = w[l];
  return m;
}

TEST(EplbBalancer, MastersOnlyBeforeHistoryThenPeriodic) {
  BalancerOptions opt;
  opt.eplb.window = 4;
  opt.eplb.period = 2;
  auto b = make_balancer("eplb", kTvA, opt);
  EXPECT_EQ(b->name(), "eplb");
  EXPECT_TRUE(b->persistent_replicas());
  const LoadMatrix tv_a = one_source({3000, 1000, 800, 400, 600, 200, 500, 300});
  const Plan masters = Plan::masters_only(kTvA, {});
  // Calls 0 and 1: no re-plan yet (call 1 is not a multiple of the period) -> masters only, slots empty.
  for (int k = 0; k < 2; ++k) {
    const PlanResult r = b->plan(tv_a, {0, k});
    EXPECT_EQ(r.plan.p2l, masters.p2l) << "call " << k;
    EXPECT_EQ(r.plan.l2p, masters.l2p);
    EXPECT_FALSE(r.plan.masters_fixed);
    EXPECT_FALSE(r.plan.has_quota);
    EXPECT_TRUE(testing::allocation_conserves(r.plan, r.alloc, tv_a));
  }
  // Call 2: re-plan from W summed over calls 0-1 (= 2 x TV-A, same placement as TV-M's TV-A vector).
  const PlanResult r2 = b->plan(tv_a, {0, 2});
  EXPECT_EQ(r2.plan.p2l, (std::vector<int32_t>{2, 6, 3, 0, 0, 5, 0, 4, 7, 0, 1, 1}));
  EXPECT_EQ(r2.plan.lcnt, (std::vector<int32_t>{4, 2, 1, 1, 1, 1, 1, 1}));
  EXPECT_TRUE(testing::plan_is_sane(r2.plan));
  EXPECT_TRUE(testing::allocation_conserves(r2.plan, r2.alloc, tv_a));
  // Round-robin over copies: 750 per e0 copy, 500 per e1 copy -> GPU loads 1700/1700/1650/1750.
  EXPECT_EQ(rank_loads_after(r2.plan, r2.alloc), (std::vector<int64_t>{1700, 1700, 1650, 1750}));
  EXPECT_EQ(r2.alloc.tokens, allocate_round_robin(r2.plan, tv_a).tokens);
  // Call 3: not due, the plan is kept even though loads changed completely.
  const PlanResult r3 = b->plan(one_source({1, 1, 1, 1, 1, 1, 1, 9000}), {0, 3});
  EXPECT_EQ(r3.plan.p2l, r2.plan.p2l);
  // Another layer has its own history: its first call is masters only.
  const PlanResult other = b->plan(tv_a, {1, 0});
  EXPECT_EQ(other.plan.p2l, masters.p2l);
}

TEST(EplbBalancer, WindowSumDrivesThePlan) {
  // window 2, period 1: the plan of call k is eplb_plan over W(k-2) + W(k-1).
  const ClusterShape shape{8, 2, 1, 4};  // two domains -> hierarchical by default
  BalancerOptions opt;
  opt.eplb.window = 2;
  opt.eplb.period = 1;
  auto b = make_eplb_balancer(shape, opt);
  const EplbLayout layout = resolve_eplb_layout(shape, opt.eplb);
  EXPECT_TRUE(layout.hierarchical);
  std::vector<LoadMatrix> seq;
  for (uint64_t k = 0; k < 6; ++k) seq.push_back(testing::skewed_loads(8, 16, 100 + k, 500));
  for (int k = 0; k < 6; ++k) {
    const PlanResult r = b->plan(seq[k], {0, k});
    EXPECT_TRUE(testing::plan_is_sane(r.plan));
    EXPECT_TRUE(testing::allocation_conserves(r.plan, r.alloc, seq[k]));
    if (k == 0) continue;
    std::vector<double> sum(16, 0.0);
    for (int i = std::max(0, k - 2); i < k; ++i) {
      const std::vector<int64_t> w = seq[i].expert_totals();
      for (int l = 0; l < 16; ++l) sum[l] += static_cast<double>(w[l]);
    }
    const Plan expect = eplb_plan(shape, layout, sum);
    EXPECT_EQ(r.plan.p2l, expect.p2l) << "call " << k;
    EXPECT_EQ(r.plan.l2p, expect.l2p) << "call " << k;
  }
}

TEST(EplbBalancer, PlanNeverSeesCurrentOrFutureLoads) {
  // Two traces agree on calls 0..m-1 and differ from call m on. Every plan up to and including call m must be
  // identical; m is a re-plan point, so a plan that peeked at call m's loads would differ.
  const ClusterShape shape{8, 2, 2, 8};
  BalancerOptions opt;
  opt.eplb.window = 3;
  opt.eplb.period = 2;
  const int m = 4;
  auto a = make_eplb_balancer(shape, opt);
  auto b = make_eplb_balancer(shape, opt);
  bool later_differs = false;
  for (int k = 0; k < 8; ++k) {
    const LoadMatrix la = testing::skewed_loads(8, 16, 7 + k, 400);
    LoadMatrix lb = la;
    if (k >= m) {
      lb = LoadMatrix(8, 16);
      lb.at(0, 15) = 50000;  // a completely different future: one very hot expert
    }
    const PlanResult ra = a->plan(la, {0, k});
    const PlanResult rb = b->plan(lb, {0, k});
    EXPECT_TRUE(testing::plan_is_sane(rb.plan));
    if (k <= m) {
      EXPECT_EQ(ra.plan.p2l, rb.plan.p2l) << "call " << k;
      EXPECT_EQ(ra.plan.l2p, rb.plan.l2p) << "call " << k;
    } else if (ra.plan.p2l != rb.plan.p2l) {
      later_differs = true;
    }
  }
  EXPECT_TRUE(later_differs) << "the test loads do not influence later plans";
}

TEST(EplbBalancer, SaneOnManyShapesIncludingCappedCopies) {
  const std::vector<ClusterShape> shapes{
      {4, 2, 1, 4}, {8, 2, 2, 4}, {8, 3, 1, 2}, {2, 1, 2, 2}, {16, 2, 2, 8}};
  for (const ClusterShape& shape : shapes) {
    BalancerOptions opt;
    opt.eplb.window = 2;
    opt.eplb.period = 1;
    auto b = make_eplb_balancer(shape, opt);
    for (int k = 0; k < 4; ++k) {
      LoadMatrix loads = testing::skewed_loads(shape.num_ranks, shape.num_experts(), 31 + k, 300);
      loads.at(0, 0) = 100000;  // very hot: would exceed N copies without the cap on tiny shapes
      const PlanResult r = b->plan(loads, {0, k});
      EXPECT_TRUE(testing::plan_is_sane(r.plan)) << shape.num_ranks << "x" << shape.num_masters;
      EXPECT_TRUE(testing::allocation_conserves(r.plan, r.alloc, loads));
      EXPECT_LE(r.plan.max_instances(), shape.num_ranks);
    }
  }
  // N = 2, M = 1, R = 2: L = 2, P = 6, but each expert is capped at N = 2 copies -> 2 slots stay empty.
  const ClusterShape tiny{2, 1, 2, 2};
  const Plan p = eplb_plan(tiny, resolve_eplb_layout(tiny, EplbOptions{}), {1000, 1});
  EXPECT_EQ(p.lcnt, (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(std::count(p.p2l.begin(), p.p2l.end(), -1), 2);
}

TEST(EplbBalancer, PolicyResolution) {
  const ClusterShape one_domain{8, 2, 1, 8};
  EXPECT_FALSE(resolve_eplb_layout(one_domain, EplbOptions{}).hierarchical);
  const ClusterShape two_domains{8, 2, 1, 4};
  const EplbLayout h = resolve_eplb_layout(two_domains, EplbOptions{});
  EXPECT_TRUE(h.hierarchical);
  EXPECT_EQ(h.num_groups, 2);
  EXPECT_EQ(h.num_nodes, 2);
  EplbOptions o;
  o.num_groups = 4;
  o.num_nodes = 8;  // 4 % 8 != 0 -> global under auto
  EXPECT_FALSE(resolve_eplb_layout(two_domains, o).hierarchical);
  o.policy = EplbPolicy::kGlobal;
  o.num_nodes = 2;
  EXPECT_FALSE(resolve_eplb_layout(two_domains, o).hierarchical);
}

void expect_bad_option(const ClusterShape& shape, const EplbOptions& eplb, const std::string& field) {
  BalancerOptions opt;
  opt.eplb = eplb;
  try {
    make_balancer("eplb", shape, opt);
    ADD_FAILURE() << "expected InputError for " << field;
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), field);
    EXPECT_EQ(e.source(), "eplb options");
  }
}

TEST(EplbBalancer, BadOptionsNameTheOption) {
  const ClusterShape shape{8, 2, 1, 4};
  EplbOptions o;
  o.window = 0;
  expect_bad_option(shape, o, "window");
  o = EplbOptions{};
  o.period = 0;
  expect_bad_option(shape, o, "period");
  o = EplbOptions{};
  o.num_nodes = 3;  // does not divide 8 ranks
  expect_bad_option(shape, o, "num_nodes");
  o = EplbOptions{};
  o.num_groups = 3;  // does not divide 16 experts
  expect_bad_option(shape, o, "num_groups");
  o = EplbOptions{};
  o.num_groups = -1;
  expect_bad_option(shape, o, "num_groups");
  o = EplbOptions{};
  o.policy = EplbPolicy::kHierarchical;
  o.num_groups = 2;
  o.num_nodes = 4;  // 2 groups cannot be packed onto 4 nodes
  expect_bad_option(shape, o, "policy");
}

}  // namespace
}  // namespace rackep
