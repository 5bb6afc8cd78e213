#include "core/plan.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep {

int64_t Plan::total_replicas() const {
  int64_t n = 0;
  for (int32_t c : lcnt) n += c - 1;
  return n;
}

int Plan::max_instances() const {
  return lcnt.empty() ? 0 : *std::max_element(lcnt.begin(), lcnt.end());
}

int64_t Plan::used_redundant_slots() const {
  int64_t n = 0;
  const int s = shape.slots_per_rank();
  for (size_t p = 0; p < p2l.size(); ++p)
    if (p2l[p] >= 0 && static_cast<int>(p % s) >= shape.num_masters) ++n;
  return n;
}

Plan Plan::masters_only(const ClusterShape& shape, const std::vector<int64_t>& w) {
  const int n = shape.num_ranks;
  const int l_count = shape.num_experts();
  RACKEP_CHECK(w.empty() || static_cast<int>(w.size()) == l_count, "W size does not match shape");
  Plan p;
  p.shape = shape;
  p.p2l.assign(static_cast<size_t>(shape.num_physical()), -1);
  p.l2p.assign(static_cast<size_t>(l_count) * n, -1);
  p.lcnt.assign(static_cast<size_t>(l_count), 1);
  p.quota.assign(static_cast<size_t>(l_count) * n, 0);
  for (int l = 0; l < l_count; ++l) {
    const int phys = shape.master_physical(l);
    p.p2l[phys] = l;
    p.l2p[static_cast<size_t>(l) * n] = phys;
    if (!w.empty()) p.quota[static_cast<size_t>(l) * n] = w[l];
  }
  p.has_quota = !w.empty();
  return p;
}

Allocation Allocation::shaped_for(const Plan& plan) {
  Allocation a;
  a.num_ranks = plan.shape.num_ranks;
  a.offset.assign(plan.lcnt.size() + 1, 0);
  for (size_t l = 0; l < plan.lcnt.size(); ++l) a.offset[l + 1] = a.offset[l] + plan.lcnt[l];
  a.tokens.assign(static_cast<size_t>(a.num_ranks) * a.num_instances(), 0);
  return a;
}

namespace {

// Host rank of every instance in the allocation's flat numbering.
std::vector<int> instance_hosts(const Plan& plan, const Allocation& alloc) {
  std::vector<int> hosts(static_cast<size_t>(alloc.num_instances()));
  const int l_count = plan.num_experts();
  for (int l = 0; l < l_count; ++l)
    for (int j = 0; j < plan.lcnt[l]; ++j) hosts[static_cast<size_t>(alloc.offset[l] + j)] = plan.host(l, j);
  return hosts;
}

}  // namespace

std::vector<int64_t> rank_loads_after(const Plan& plan, const Allocation& alloc) {
  std::vector<int64_t> loads(static_cast<size_t>(plan.shape.num_ranks), 0);
  const std::vector<int> hosts = instance_hosts(plan, alloc);
  const size_t count = hosts.size();
  // Row by row (contiguous): integer sums, so the order does not change the result.
  for (int s = 0; s < alloc.num_ranks; ++s) {
    const int32_t* row = alloc.tokens.data() + static_cast<size_t>(s) * count;
    for (size_t g = 0; g < count; ++g) loads[static_cast<size_t>(hosts[g])] += row[g];
  }
  return loads;
}

int64_t remote_tokens(const Plan& plan, const Allocation& alloc) {
  const std::vector<int> hosts = instance_hosts(plan, alloc);
  const size_t count = hosts.size();
  int64_t remote = 0;
  for (int s = 0; s < alloc.num_ranks; ++s) {
    const int32_t* row = alloc.tokens.data() + static_cast<size_t>(s) * count;
    for (size_t g = 0; g < count; ++g)
      if (hosts[g] != s) remote += row[g];
  }
  return remote;
}

}  // namespace rackep
