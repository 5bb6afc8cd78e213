// File: tests/core/transfer_test_util.hpp
// Hand-built plans shared by the transfer-plan tests (the planners themselves are tested elsewhere).
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/plan.hpp"
#include "core/transfer.hpp"

namespace rackep::test {
// ---------------------------------------------------------------------------------------------------------
// Hand-built plans (the planners are tested elsewhere)
// ---------------------------------------------------------------------------------------------------------

/// Adds a replica of `expert` in the next free redundant slot of `rank`; returns its physical id.
inline int add_replica(Plan& p, int expert, int rank) {
  const ClusterShape& s = p.shape;
  for (int slot = s.num_masters; slot < s.slots_per_rank(); ++slot) {
    const int phys = rank * s.slots_per_rank() + slot;
    if (p.p2l[phys] >= 0) continue;
    p.p2l[phys] = expert;
    p.l2p[static_cast<size_t>(expert) * s.num_ranks + p.lcnt[expert]] = phys;
    p.lcnt[expert] += 1;
    return phys;
  }
  ADD_FAILURE() << "rank " << rank << " has no free redundant slot";
  return -1;
}

inline void add_replicas(Plan& p, int expert, const std::vector<int>& ranks) {
  for (int r : ranks) add_replica(p, expert, r);
}

/// A persistent-placement plan (masters_fixed = false) from its p2l: instances numbered by ascending physical
/// id.
inline Plan plan_from_p2l(const ClusterShape& s, const std::vector<int32_t>& p2l) {
  Plan p;
  p.shape = s;
  p.masters_fixed = false;
  p.p2l = p2l;
  p.lcnt.assign(static_cast<size_t>(s.num_experts()), 0);
  p.l2p.assign(static_cast<size_t>(s.num_experts()) * s.num_ranks, -1);
  p.quota.assign(p.l2p.size(), 0);
  for (int phys = 0; phys < static_cast<int>(p2l.size()); ++phys) {
    const int l = p2l[phys];
    if (l < 0) continue;
    p.l2p[static_cast<size_t>(l) * s.num_ranks + p.lcnt[l]] = phys;
    p.lcnt[l] += 1;
  }
  return p;
}

inline std::vector<int> ranks_of(const std::vector<int32_t>& v) {
  return std::vector<int>(v.begin(), v.end());
}

// Small expert with short tails: fc1 = 278,528 B (2 chunks, 9 tiles), fc2 = 139,264 B (1 chunk, 5 tiles).
inline const ExpertBytes kSmall{256, 272, 2};

// TV-I shape: one NVLink domain of 16 ranks, so relay is allowed under the Python rule (G > 8).
inline const ClusterShape kTvIShape{16, 1, 2, 16};

/// TV-I, second bullet: master e0 on rank 0 with replicas on ranks 1..9, then master e10 on rank 10 with
/// replicas on ranks [11, 12, 13, 14, 15, 1, 2].
inline Plan tv_i_two_masters() {
  Plan p = Plan::masters_only(kTvIShape, {});
  add_replicas(p, 0, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  add_replicas(p, 10, {11, 12, 13, 14, 15, 1, 2});
  return p;
}

/// TV-I, third bullet: master on rank 0 with replicas [4, 5, 6]; master on rank 1 with [7..12].
inline Plan tv_i_direct_then_relay() {
  Plan p = Plan::masters_only(kTvIShape, {});
  add_replicas(p, 0, {4, 5, 6});
  add_replicas(p, 1, {7, 8, 9, 10, 11, 12});
  return p;
}

}  // namespace rackep::test
