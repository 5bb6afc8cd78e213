// File: tests/core/baseline_sanity.hpp
// Structural sanity checks shared by the baseline balancer tests (legacy, eplb, lplb): the plan's arrays
// agree with each other and with the shape, and the allocation conserves every source's tokens.
// Usage:
//   EXPECT_TRUE(rackep::testing::plan_is_sane(result.plan));
//   EXPECT_TRUE(rackep::testing::allocation_conserves(result.plan, result.alloc, loads));
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {
namespace testing {

/// lcnt matches the non-negative entries of each l2p row (which come first), every expert has >= 1 instance,
/// l2p and p2l are inverse of each other (each used physical slot holds exactly one instance), no rank holds
/// more than S instances, and with masters_fixed instance 0 is the master slot and replicas sit in redundant
/// slots.
inline ::testing::AssertionResult plan_is_sane(const Plan& plan) {
  const ClusterShape& shape = plan.shape;
  const int n = shape.num_ranks;
  const int l_count = shape.num_experts();
  const int p_count = shape.num_physical();
  if (static_cast<int>(plan.lcnt.size()) != l_count || static_cast<int>(plan.p2l.size()) != p_count ||
      plan.l2p.size() != static_cast<size_t>(l_count) * n)
    return ::testing::AssertionFailure() << "array sizes do not match the shape";
  std::vector<int> seen(static_cast<size_t>(p_count), 0);
  std::vector<int> per_rank(static_cast<size_t>(n), 0);
  for (int l = 0; l < l_count; ++l) {
    const int c = plan.lcnt[l];
    if (c < 1 || c > n) return ::testing::AssertionFailure() << "expert " << l << " has lcnt " << c;
    for (int j = 0; j < n; ++j) {
      const int p = plan.physical(l, j);
      if (j >= c) {
        if (p != -1)
          return ::testing::AssertionFailure() << "l2p[" << l << "][" << j << "] beyond lcnt is " << p;
        continue;
      }
      if (p < 0 || p >= p_count)
        return ::testing::AssertionFailure() << "l2p[" << l << "][" << j << "] = " << p;
      if (plan.p2l[p] != l)
        return ::testing::AssertionFailure() << "p2l[" << p << "] = " << plan.p2l[p] << " but l2p says " << l;
      if (++seen[p] > 1) return ::testing::AssertionFailure() << "physical " << p << " listed twice";
      per_rank[shape.rank_of_physical(p)] += 1;
      if (plan.masters_fixed) {
        if (j == 0 && p != shape.master_physical(l))
          return ::testing::AssertionFailure() << "expert " << l << " instance 0 is not its master";
        if (j > 0 && shape.slot_of_physical(p) < shape.num_masters)
          return ::testing::AssertionFailure() << "replica of " << l << " in master slot " << p;
      }
    }
  }
  for (int p = 0; p < p_count; ++p)
    if (plan.p2l[p] >= 0 && seen[p] != 1)
      return ::testing::AssertionFailure() << "p2l[" << p << "] = " << plan.p2l[p] << " missing from l2p";
  for (int r = 0; r < n; ++r)
    if (per_rank[r] > shape.slots_per_rank())
      return ::testing::AssertionFailure() << "rank " << r << " holds " << per_rank[r] << " instances";
  return ::testing::AssertionSuccess();
}

/// Every source's allocation of every expert sums exactly to its tokens, with no negative entry.
inline ::testing::AssertionResult allocation_conserves(const Plan& plan, const Allocation& alloc,
                                                       const LoadMatrix& loads) {
  if (alloc.num_ranks != loads.num_ranks() || alloc.offset.size() != plan.lcnt.size() + 1)
    return ::testing::AssertionFailure() << "allocation not shaped for the plan";
  for (int l = 0; l < plan.num_experts(); ++l)
    if (alloc.offset[l + 1] - alloc.offset[l] != plan.lcnt[l])
      return ::testing::AssertionFailure() << "allocation offsets disagree with lcnt at " << l;
  for (int s = 0; s < loads.num_ranks(); ++s)
    for (int l = 0; l < plan.num_experts(); ++l) {
      int64_t sum = 0;
      for (int j = 0; j < plan.lcnt[l]; ++j) {
        if (alloc.at(s, l, j) < 0) return ::testing::AssertionFailure() << "negative allocation";
        sum += alloc.at(s, l, j);
      }
      if (sum != loads.at(s, l))
        return ::testing::AssertionFailure()
               << "source " << s << " expert " << l << ": " << sum << " != " << loads.at(s, l);
    }
  return ::testing::AssertionSuccess();
}

/// A deterministic pseudo-random load matrix (64-bit LCG), skewed so some experts are hot.
inline LoadMatrix skewed_loads(int num_ranks, int num_experts, uint64_t seed, int max_tokens) {
  LoadMatrix m(num_ranks, num_experts);
  uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (int s = 0; s < num_ranks; ++s)
    for (int l = 0; l < num_experts; ++l) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      const int base = static_cast<int>((state >> 33) % static_cast<uint64_t>(max_tokens));
      m.at(s, l) = (l % 5 == 0) ? 4 * base : base;
    }
  return m;
}

}  // namespace testing
}  // namespace rackep
