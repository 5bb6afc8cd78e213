#include "core/legality.hpp"

#include <set>
#include <string>

namespace rackep {
namespace {

std::string at(int l) {
  return "expert " + std::to_string(l) + ": ";
}

}  // namespace

std::vector<std::string> check_plan(const Plan& plan, const LoadMatrix* routed, const Allocation* alloc) {
  std::vector<std::string> bad;
  const ClusterShape& sh = plan.shape;
  const int n = sh.num_ranks;
  const int l_count = sh.num_experts();
  const int s_slots = sh.slots_per_rank();
  if (static_cast<int>(plan.p2l.size()) != sh.num_physical() ||
      plan.l2p.size() != static_cast<size_t>(l_count) * n || static_cast<int>(plan.lcnt.size()) != l_count ||
      plan.quota.size() != static_cast<size_t>(l_count) * n) {
    bad.push_back("plan arrays do not match the cluster shape");
    return bad;
  }
  std::vector<int> hosted(static_cast<size_t>(sh.num_physical()), -1);
  for (int l = 0; l < l_count; ++l) {
    int valid = 0;
    for (int j = 0; j < n; ++j) {
      const int p = plan.physical(l, j);
      if (p < 0) continue;
      ++valid;
      if (j >= plan.lcnt[l]) bad.push_back(at(l) + "instance beyond lcnt at column " + std::to_string(j));
      if (p >= sh.num_physical()) {
        bad.push_back(at(l) + "physical id " + std::to_string(p) + " out of range");
        continue;
      }
      if (hosted[p] >= 0) bad.push_back(at(l) + "physical slot " + std::to_string(p) + " used twice");
      hosted[p] = l;
      if (plan.p2l[p] != l) bad.push_back(at(l) + "p2l[" + std::to_string(p) + "] disagrees with l2p");
    }
    if (plan.lcnt[l] < 1) bad.push_back(at(l) + "has no instance");
    if (valid != plan.lcnt[l])
      bad.push_back(at(l) + "lcnt " + std::to_string(plan.lcnt[l]) + " but " + std::to_string(valid) +
                    " instances in l2p");
  }
  for (int p = 0; p < sh.num_physical(); ++p)
    if (plan.p2l[p] >= 0 && hosted[p] != plan.p2l[p])
      bad.push_back("physical slot " + std::to_string(p) + " claims expert " + std::to_string(plan.p2l[p]) +
                    " which does not list it");
  if (plan.used_redundant_slots() > int64_t{n} * sh.num_redundant)
    bad.push_back("more than N*R redundant slots used");
  if (!bad.empty()) return bad;

  if (plan.masters_fixed) {
    for (int l = 0; l < l_count; ++l) {
      if (plan.physical(l, 0) != sh.master_physical(l)) bad.push_back(at(l) + "instance 0 is not the master");
      std::set<int> ranks;
      for (int j = 0; j < plan.lcnt[l]; ++j) {
        const int p = plan.physical(l, j);
        const int r = sh.rank_of_physical(p);
        if (sh.domain_of_rank(r) != sh.domain_of_rank(sh.master_rank(l)))
          bad.push_back(at(l) + "instance on rank " + std::to_string(r) +
                        " outside the master's NVLink domain");
        if (!ranks.insert(r).second) bad.push_back(at(l) + "two instances on rank " + std::to_string(r));
        if (j > 0 && sh.slot_of_physical(p) < sh.num_masters)
          bad.push_back(at(l) + "replica in master slot " + std::to_string(p));
      }
    }
    for (int p = 0; p < sh.num_physical(); ++p) {
      const int slot = p % s_slots;
      if (slot < sh.num_masters && plan.p2l[p] != (p / s_slots) * sh.num_masters + slot)
        bad.push_back("master slot " + std::to_string(p) + " does not hold its master");
    }
  }
  if (plan.has_quota && routed != nullptr) {
    const std::vector<int64_t> w = routed->expert_totals();
    for (int l = 0; l < l_count; ++l) {
      int64_t sum = 0;
      for (int j = 0; j < plan.lcnt[l]; ++j) {
        if (plan.quota_of(l, j) < 0) bad.push_back(at(l) + "negative quota");
        sum += plan.quota_of(l, j);
      }
      if (sum != w[l])
        bad.push_back(at(l) + "quotas sum to " + std::to_string(sum) + ", W = " + std::to_string(w[l]));
    }
  }
  if (routed != nullptr && alloc != nullptr) {
    if (alloc->num_ranks != n || static_cast<int>(alloc->offset.size()) != l_count + 1) {
      bad.push_back("allocation does not match the plan");
      return bad;
    }
    for (int l = 0; l < l_count; ++l) {
      if (alloc->offset[l + 1] - alloc->offset[l] != plan.lcnt[l]) {
        bad.push_back(at(l) + "allocation has the wrong instance count");
        continue;
      }
      for (int s = 0; s < n; ++s) {
        int64_t sum = 0;
        for (int j = 0; j < plan.lcnt[l]; ++j) {
          if (alloc->at(s, l, j) < 0) bad.push_back(at(l) + "negative allocation");
          sum += alloc->at(s, l, j);
        }
        if (sum != routed->at(s, l))
          bad.push_back(at(l) + "source " + std::to_string(s) + " allocates " + std::to_string(sum) + " of " +
                        std::to_string(routed->at(s, l)) + " tokens");
      }
    }
  }
  return bad;
}

std::vector<std::string> check_reroute(const Plan& plan, const std::vector<int32_t>& topk_ids,
                                       const std::vector<int32_t>& physical, int top_k) {
  std::vector<std::string> bad;
  if (top_k < 1 || topk_ids.size() % static_cast<size_t>(top_k) != 0) {
    bad.push_back("top_k " + std::to_string(top_k) + " does not divide the " +
                  std::to_string(topk_ids.size()) + " routed entries");
    return bad;
  }
  if (physical.size() != topk_ids.size()) {
    bad.push_back("rerouted map has " + std::to_string(physical.size()) + " entries for " +
                  std::to_string(topk_ids.size()) + " routed ones: a token row lost or gained entries");
    return bad;
  }
  const int64_t slots = plan.shape.num_physical();
  for (size_t row = 0; row < topk_ids.size() / static_cast<size_t>(top_k); ++row) {
    std::set<int32_t> seen;
    for (int k = 0; k < top_k; ++k) {
      const size_t i = row * static_cast<size_t>(top_k) + static_cast<size_t>(k);
      const int32_t p = physical[i];
      const std::string at = "token " + std::to_string(row) + " entry " + std::to_string(k) + ": ";
      if (p < 0 || p >= slots) {
        bad.push_back(at + "physical id " + std::to_string(p) + " out of range");
        continue;
      }
      if (plan.p2l[p] != topk_ids[i])
        bad.push_back(at + "slot " + std::to_string(p) + " does not host expert " +
                      std::to_string(topk_ids[i]));
      if (!seen.insert(p).second) bad.push_back(at + "slot " + std::to_string(p) + " twice in one token row");
    }
  }
  return bad;
}

}  // namespace rackep
