// GPU reroute (kernels/reroute.hpp) against core's reroute_tokens: identical physical ids for quota plans
// (with and without interleave) and round-robin plans, top-1 and top-4 routing, and the error flag on bad
// ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "core/allocation.hpp"
#include "core/balancer.hpp"
#include "core/error.hpp"
#include "core/reroute.hpp"
#include "core/ultraep.hpp"
#include "kernels/reroute.hpp"
#include "tests/kernels/gpu_test_util.hpp"

namespace {

// Random top-k routing of `tokens` tokens over L experts (distinct experts per token), skewed to low ids.
std::vector<int32_t> random_topk(std::mt19937_64& rng, int tokens, int top_k, int l_count) {
  std::vector<int32_t> ids;
  std::vector<int32_t> all(static_cast<size_t>(l_count));
  std::iota(all.begin(), all.end(), 0);
  for (int t = 0; t < tokens; ++t) {
    std::vector<int32_t> pick;
    while (static_cast<int>(pick.size()) < top_k) {
      const int l =
          static_cast<int>(std::min<double>(l_count - 1, std::exponential_distribution<double>(0.15)(rng)));
      if (std::find(pick.begin(), pick.end(), l) == pick.end()) pick.push_back(l);
    }
    ids.insert(ids.end(), pick.begin(), pick.end());
  }
  return ids;
}

std::vector<int32_t> prefix_matrix(const rackep::Plan& plan, const rackep::Allocation& alloc, int source) {
  const int n = plan.shape.num_ranks;
  std::vector<int32_t> p(plan.l2p.size(), 0);
  for (int l = 0; l < plan.num_experts(); ++l)
    rackep::rank_quota_prefix(alloc, source, l, plan.lcnt[l], &p[static_cast<size_t>(l) * n]);
  return p;
}

class RerouteGpu : public rackep::test::GpuTest {};

TEST_F(RerouteGpu, MatchesCoreForQuotaAndRoundRobinPlans) {
  std::mt19937_64 rng(7);
  const rackep::ClusterShape shape{8, 4, 2, 8};
  for (const char* name : {"ultraep", "ultraep-legacy"}) {
    for (int top_k : {1, 4}) {
      // Per-source routing first; the load matrix is what those tokens route.
      std::vector<std::vector<int32_t>> ids(shape.num_ranks);
      rackep::LoadMatrix loads(shape.num_ranks, shape.num_experts());
      for (int s = 0; s < shape.num_ranks; ++s) {
        ids[s] = random_topk(rng, 300 + 97 * s, top_k, shape.num_experts());
        for (int32_t l : ids[s]) loads.at(s, l) += 1;
      }
      auto balancer = rackep::make_balancer(name, shape, rackep::BalancerOptions{});
      const rackep::PlanResult r = balancer->plan(loads, {0, 0});
      for (bool interleave : {true, false}) {
        for (int s = 0; s < shape.num_ranks; ++s) {
          const auto ref = rackep::reroute_tokens(r.plan, r.alloc, s, ids[s], top_k, interleave);
          const auto got = rackep::kernels::reroute_on_gpu(r.plan, prefix_matrix(r.plan, r.alloc, s), ids[s],
                                                           top_k, interleave, stream_);
          ASSERT_EQ(got, ref) << name << " top_k=" << top_k << " interleave=" << interleave << " source "
                              << s;
        }
      }
    }
  }
}

TEST_F(RerouteGpu, ManyTilesKeepTokenOrder) {
  // 5000 tokens = 40 tiles of 128: ordinals must continue across tiles exactly as in core.
  std::mt19937_64 rng(11);
  const rackep::ClusterShape shape{4, 2, 2, 4};
  const std::vector<int32_t> ids = random_topk(rng, 5000, 2, shape.num_experts());
  rackep::LoadMatrix loads(4, shape.num_experts());
  for (int32_t l : ids) loads.at(0, l) += 1;
  auto b = rackep::make_balancer("ultraep", shape, rackep::BalancerOptions{});
  const rackep::PlanResult r = b->plan(loads, {0, 0});
  ASSERT_GT(r.plan.total_replicas(), 0);
  EXPECT_EQ(rackep::kernels::reroute_on_gpu(r.plan, prefix_matrix(r.plan, r.alloc, 0), ids, 2, true, stream_),
            rackep::reroute_tokens(r.plan, r.alloc, 0, ids, 2, true));
}

TEST_F(RerouteGpu, FlagsBadIdsAndCounts) {
  const rackep::ClusterShape shape{2, 2, 1, 2};
  rackep::LoadMatrix loads(2, 4);
  loads.at(0, 0) = 1;
  const rackep::Plan plan = rackep::Plan::masters_only(shape, loads.expert_totals());
  const rackep::Allocation alloc = rackep::allocate_by_quota(plan, loads, true);
  EXPECT_THROW(rackep::kernels::reroute_on_gpu(plan, prefix_matrix(plan, alloc, 0), {7}, 1, true, stream_),
               rackep::InputError);
  EXPECT_THROW(rackep::kernels::reroute_on_gpu(plan, prefix_matrix(plan, alloc, 0), {0, 0}, 1, true, stream_),
               rackep::InputError);
}

}  // namespace
