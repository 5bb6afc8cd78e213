// GPU UltraEP planner (kernels/planner.hpp) against core's UltraEpPlanner: bit-identical p2l, l2p, lcnt,
// quota and per-domain thresholds on the docs/ALGORITHMS.md §8 vectors (fast path, fallback, starvation, two
// domains) and on seeded random loads over many shapes and options.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/ultraep.hpp"
#include "kernels/planner.hpp"
#include "tests/kernels/gpu_test_util.hpp"

namespace {

class PlannerGpu : public rackep::test::GpuTest {
 protected:
  void expect_same(const rackep::ClusterShape& shape, const std::vector<int64_t>& w,
                   const rackep::UltraEpOptions& opt = {}) {
    rackep::UltraEpPlanner cpu(shape, opt);
    const rackep::Plan& ref = cpu.plan(w);
    rackep::kernels::GpuPlanner gpu(shape, opt);
    const rackep::Plan& got = gpu.plan(w, stream_);
    EXPECT_EQ(got.p2l, ref.p2l);
    EXPECT_EQ(got.l2p, ref.l2p);
    EXPECT_EQ(got.lcnt, ref.lcnt);
    EXPECT_EQ(got.quota, ref.quota);
    EXPECT_EQ(got.domain_threshold, ref.domain_threshold);
  }
};

TEST_F(PlannerGpu, TestVectorsOfAlgorithmsSection8) {
  const rackep::ClusterShape s4{4, 2, 1, 4};
  const std::vector<int64_t> tv_a{3000, 1000, 800, 400, 600, 200, 500, 300};
  expect_same(s4, tv_a);  // TV-A: fast path, one hot expert
  rackep::UltraEpOptions eps0;
  eps0.eps = 0.0;
  expect_same(s4, tv_a, eps0);
  rackep::UltraEpOptions bt;
  bt.balance_threshold = 1.1;
  expect_same(s4, tv_a, bt);
  expect_same(s4, {2000, 2000, 100, 100, 100, 100, 100, 100});  // TV-B
  expect_same(s4, {1000, 1000, 1000, 1000, 1000, 1000, 0, 0});  // TV-C: starvation, fallback to no replicas
  expect_same(s4, {1000, 0, 1000, 1000, 4000, 3000, 3000, 6000});  // TV-D: static-floor fallback, T = 5000
  expect_same({4, 2, 1, 2}, {1500, 500, 200, 200, 600, 600, 400, 400});  // TV-E: two domains
  expect_same({4, 2, 2, 4}, {400, 400, 0, 0, 0, 0, 0, 0});               // TV-F: dynamic floor moves on
  expect_same(s4, std::vector<int64_t>(8, 0));                           // all zero
  expect_same({4, 2, 0, 4}, tv_a);                                       // R = 0: masters only
}

TEST_F(PlannerGpu, TvAMatchesTheHandWorkedPlan) {
  rackep::kernels::GpuPlanner gpu({4, 2, 1, 4}, {});
  const rackep::Plan& p = gpu.plan({3000, 1000, 800, 400, 600, 200, 500, 300}, stream_);
  EXPECT_EQ(std::vector<int32_t>(p.l2p.begin(), p.l2p.begin() + 4), (std::vector<int32_t>{0, 8, 11, 5}));
  EXPECT_EQ(std::vector<int64_t>(p.quota.begin(), p.quota.begin() + 4),
            (std::vector<int64_t>{717, 917, 917, 449}));
  EXPECT_EQ(p.p2l, (std::vector<int32_t>{0, 1, -1, 2, 3, 0, 4, 5, 0, 6, 7, 0}));
}

TEST_F(PlannerGpu, RandomLoadsManyShapes) {
  std::mt19937_64 rng(20240607);
  struct Case {
    int n, m, r, g;
  };
  const std::vector<Case> cases{{8, 2, 1, 8},   {8, 4, 2, 4},   {16, 4, 2, 16}, {32, 2, 3, 32},
                                {64, 4, 2, 64}, {72, 2, 2, 72}, {96, 1, 2, 96}, {64, 8, 1, 32}};
  for (const Case& c : cases) {
    const rackep::ClusterShape shape{c.n, c.m, c.r, c.g};
    for (int trial = 0; trial < 6; ++trial) {
      std::vector<int64_t> w(static_cast<size_t>(shape.num_experts()));
      const double skew = 0.5 + trial;  // from mild to extreme hot spots
      std::exponential_distribution<double> ex(1.0);
      for (auto& v : w) v = static_cast<int64_t>(2000.0 * std::pow(ex(rng), skew));
      if (trial == 5)
        for (size_t i = 0; i < w.size(); i += 3) w[i] = 0;  // many idle experts
      rackep::UltraEpOptions opt;
      opt.min_tokens_per_replica = trial % 2 == 0 ? 1024 : 64;
      opt.allow_zero_master_quota = trial == 3;
      SCOPED_TRACE("N=" + std::to_string(c.n) + " M=" + std::to_string(c.m) + " R=" + std::to_string(c.r) +
                   " G=" + std::to_string(c.g) + " trial " + std::to_string(trial));
      expect_same(shape, w, opt);
    }
  }
}

TEST_F(PlannerGpu, RejectsDomainsBeyondTheKernelLimit) {
  rackep::kernels::PlannerArgs a;
  a.shape = {128, 1, 1, 128};
  EXPECT_NE(rackep::kernels::validate(a), "");
}

}  // namespace
