// Property tests over 10,000 random load matrices and cluster shapes, for every registered balancer:
// plans are legal (docs/ALGORITHMS.md §2.8), every source rank's tokens are allocated exactly (none lost or
// created); for `ultraep` additionally: the max rank load (by quota) is at most the threshold found, never
// worse than `none`, and every instance receives its quota up to per-source rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/balancer.hpp"
#include "core/error.hpp"
#include "core/legality.hpp"
#include "core/metrics.hpp"
#include "core/ultraep.hpp"

namespace rackep {
namespace {

// Portable uniform double in [0, 1) from a 64-bit engine (std distributions differ between libraries).
double uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}
int uniform_int(std::mt19937_64& rng, int lo, int hi) {  // inclusive
  return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

ClusterShape random_shape(std::mt19937_64& rng) {
  static const int kRanks[] = {1, 2, 3, 4, 6, 8, 12, 16};
  const int n = kRanks[uniform_int(rng, 0, 7)];
  std::vector<int> divisors;
  for (int g = 1; g <= n; ++g)
    if (n % g == 0) divisors.push_back(g);
  const int g = divisors[uniform_int(rng, 0, static_cast<int>(divisors.size()) - 1)];
  return ClusterShape{n, uniform_int(rng, 1, 4), uniform_int(rng, 0, 3), g};
}

// Heavy-tailed expert popularity, random per-source noise, some empty experts and ranks.
LoadMatrix random_loads(std::mt19937_64& rng, const ClusterShape& shape) {
  const int n = shape.num_ranks;
  const int l_count = shape.num_experts();
  LoadMatrix m(n, l_count);
  const double skew = uniform01(rng) * 2.5;
  const int scale = uniform_int(rng, 0, 3) == 0 ? 5 : 3000;
  std::vector<double> pop(l_count);
  for (double& p : pop) p = std::pow(1.0 - uniform01(rng), -skew);
  for (int s = 0; s < n; ++s)
    for (int l = 0; l < l_count; ++l) {
      if (uniform01(rng) < 0.1) continue;
      m.at(s, l) = static_cast<int32_t>(std::min(pop[l] * scale * uniform01(rng), 2.0e6));
    }
  return m;
}

TEST(Property, EveryBalancerIsLegalAndConservesTokens) {
  std::mt19937_64 rng(20261121);
  const std::vector<std::string> names = balancer_names();
  ASSERT_FALSE(names.empty());
  int checked = 0;
  for (int iter = 0; iter < 10000; ++iter) {
    const ClusterShape shape = random_shape(rng);
    // Three consecutive microbatches of one layer, so history-based balancers use real history.
    std::vector<LoadMatrix> steps;
    for (int mb = 0; mb < 3; ++mb) steps.push_back(random_loads(rng, shape));
    BalancerOptions options;
    options.eplb.window = 2;
    options.eplb.period = 2;
    options.lplb.window = 2;
    options.lplb.period = 2;
    const std::string& name = names[iter % names.size()];
    std::unique_ptr<Balancer> balancer;
    try {
      balancer = make_balancer(name, shape, options);
    } catch (const InputError&) {
      continue;  // a shape this balancer cannot run (e.g. LPLB's direction count); tested elsewhere
    }
    for (int mb = 0; mb < 3; ++mb) {
      const LoadMatrix& loads = steps[mb];
      const PlanResult r = balancer->plan(loads, {0, mb});
      const std::vector<std::string> bad = check_plan(r.plan, &r.routed, &r.alloc);
      ASSERT_TRUE(bad.empty()) << name << " iter " << iter << ": " << bad.front();
      ASSERT_EQ(r.routed.source_totals(), loads.source_totals()) << name << " changed a source's token count";
      if (name != "ideal") {
        ASSERT_TRUE(r.routed == loads) << name << " changed the routed loads";
      }
      const std::vector<int64_t> after = rank_loads_after(r.plan, r.alloc);
      int64_t total_after = 0;
      for (int64_t x : after) total_after += x;
      ASSERT_EQ(total_after, loads.total()) << name << ": tokens lost or created";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20000);
}

TEST(Property, UltraEpRespectsItsThresholdAndNeverLosesToNone) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 10000; ++iter) {
    const ClusterShape shape = random_shape(rng);
    const LoadMatrix loads = random_loads(rng, shape);
    auto balancer = make_balancer("ultraep", shape, {});
    const PlanResult r = balancer->plan(loads, {0, 0});
    const Plan& p = r.plan;
    const std::vector<int64_t> before = loads.rank_loads(shape);
    std::vector<int64_t> by_quota(shape.num_ranks, 0);
    for (int l = 0; l < p.num_experts(); ++l)
      for (int j = 0; j < p.lcnt[l]; ++j) by_quota[p.host(l, j)] += p.quota_of(l, j);
    for (int d = 0; d < shape.num_domains(); ++d) {
      int64_t max_before = 0, max_quota = 0;
      for (int r0 = d * shape.domain_size; r0 < (d + 1) * shape.domain_size; ++r0) {
        max_before = std::max(max_before, before[r0]);
        max_quota = std::max(max_quota, by_quota[r0]);
      }
      ASSERT_LE(max_quota, p.domain_threshold[d]) << "iter " << iter << " domain " << d;
      ASSERT_LE(max_quota, max_before) << "iter " << iter << ": worse than none in domain " << d;
    }
    // Instance totals equal quotas up to one token of rounding per remote source.
    for (int l = 0; l < p.num_experts(); ++l)
      for (int j = 0; j < p.lcnt[l]; ++j) {
        int64_t got = 0;
        for (int s = 0; s < shape.num_ranks; ++s) got += r.alloc.at(s, l, j);
        ASSERT_LE(std::llabs(got - p.quota_of(l, j)), shape.num_ranks - 1) << "iter " << iter;
      }
  }
}

TEST(Property, PlannerIsDeterministicAndReusable) {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 200; ++iter) {
    const ClusterShape shape = random_shape(rng);
    const LoadMatrix a = random_loads(rng, shape);
    const LoadMatrix b = random_loads(rng, shape);
    UltraEpPlanner reused(shape, {});
    reused.plan(a.expert_totals());
    const Plan second = reused.plan(b.expert_totals());
    const Plan fresh = ultraep_plan(shape, b.expert_totals(), {});
    ASSERT_EQ(second.p2l, fresh.p2l);
    ASSERT_EQ(second.l2p, fresh.l2p);
    ASSERT_EQ(second.quota, fresh.quota);
  }
}

}  // namespace
}  // namespace rackep
