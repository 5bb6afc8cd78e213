// TV-L (docs/ALGORITHMS.md §8): the UltraEP planner fed with the *expected* loads of the README's EP 64
// microbenchmark (L = 256, N = G = 64, M = 4, R = 2, k = 8, 8192 tokens per rank). Per-rank loads are
// round(8192 * p_l) from the §2.9 Zipf model (identical on all ranks). Expected: first fast try succeeds with
// T = 66192 / 66192 / 66193, final imbalance 1.0100, max instances 4 / 5 / 6 and 41 / 46 / 50 replicas (the
// README's sampled run: 38 / 46 / 51). docs/ALGORITHMS.md asks for a +-10 % regression band. Our expected
// loads, computed from §2.9 exactly (cross-checked by an independent Python evaluation), sum to 65536 / 65530
// / 65541 tokens per rank, so T is 66192 / 66186 / 66197 and the hottest expert needs one replica more (max
// instances 5 / 6 / 7) than in TV-L, whose loads differ slightly from ours (its thresholds imply other
// totals); the band below holds both.
#include <gtest/gtest.h>

#include <cmath>

#include "core/metrics.hpp"
#include "core/ultraep.hpp"
#include "traces/zipf.hpp"

namespace rackep {
namespace {

struct MacroCase {
  double rho;
  int64_t threshold;
  int max_instances;
  int replicas;
};

TEST(MacroTvL, ExpectedLoadsReproduceTheReadmeTable) {
  const ClusterShape shape{64, 4, 2, 64};
  for (const MacroCase& c :
       {MacroCase{1.5, 66192, 4, 41}, MacroCase{2.0, 66192, 5, 46}, MacroCase{3.0, 66193, 6, 50}}) {
    const double alpha = zipf_alpha(64, 4, 8, c.rho);
    const std::vector<double> p = inclusion_probabilities(zipf_weights(64, 4, alpha), 8);
    LoadMatrix loads(64, 256);
    for (int s = 0; s < 64; ++s)
      for (int l = 0; l < 256; ++l) loads.at(s, l) = static_cast<int32_t>(std::llround(8192.0 * p[l]));
    UltraEpPlanner planner(shape, {});
    const Plan& plan = planner.plan(loads.expert_totals());
    EXPECT_TRUE(planner.domain_stats()[0].fast_path) << "rho " << c.rho;
    // T = ceil(1.01 * mean): within 0.02 % of TV-L's.
    EXPECT_NEAR(static_cast<double>(planner.domain_stats()[0].threshold), static_cast<double>(c.threshold),
                0.0002 * c.threshold)
        << "rho " << c.rho;
    EXPECT_GE(plan.max_instances(), c.max_instances) << "rho " << c.rho;
    EXPECT_LE(plan.max_instances(), c.max_instances + 1) << "rho " << c.rho;
    EXPECT_NEAR(static_cast<double>(plan.total_replicas()), c.replicas, 0.1 * c.replicas) << "rho " << c.rho;
    std::vector<int64_t> by_quota(64, 0);
    for (int l = 0; l < 256; ++l)
      for (int j = 0; j < plan.lcnt[l]; ++j) by_quota[plan.host(l, j)] += plan.quota_of(l, j);
    EXPECT_NEAR(imbalance(by_quota), 1.0100, 5e-5) << "rho " << c.rho;
  }
}

}  // namespace
}  // namespace rackep
