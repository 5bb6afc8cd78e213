#include "core/allocation.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"

namespace rackep {
namespace {

// Stable insertion sort: the candidate lists are short (instances of one expert), and std::stable_sort
// would allocate a buffer on every call. Same order as any stable sort.
template <class Less>
void stable_insertion_sort(std::vector<int>& v, Less less) {
  for (size_t i = 1; i < v.size(); ++i) {
    const int x = v[i];
    size_t k = i;
    for (; k > 0 && less(x, v[k - 1]); --k) v[k] = v[k - 1];
    v[k] = x;
  }
}

// Hands `leftover` single tokens to the candidates with the largest remainders; `order` holds candidate
// positions already sorted by the tie-break rule, so a stable sort on the remainder keeps it.
void give_leftover(int64_t leftover, std::vector<int>& order, const std::vector<int64_t>& remainder,
                   int32_t* out) {
  stable_insertion_sort(order, [&](int a, int b) { return remainder[a] > remainder[b]; });
  RACKEP_CHECK(leftover <= static_cast<int64_t>(order.size()), "largest-remainder leftover too large");
  for (int64_t i = 0; i < leftover; ++i) out[order[i]] += 1;
}

}  // namespace

void allocate_source_expert(const Plan& plan, const LoadMatrix& loads, int source, int expert,
                            bool locality_aware, int32_t* out) {
  const int c = plan.lcnt[expert];
  std::fill(out, out + c, 0);
  const int64_t n_s = loads.at(source, expert);
  if (c == 1) {
    out[0] = static_cast<int32_t>(n_s);
    return;
  }
  // Reused per-thread workspace: this runs once per (source, replicated expert) and must not allocate.
  thread_local std::vector<int64_t> remainder;
  thread_local std::vector<int> order;
  thread_local std::vector<int64_t> rc;
  remainder.assign(static_cast<size_t>(c), 0);
  order.clear();
  if (!locality_aware) {
    int64_t sum_q = 0;
    for (int j = 0; j < c; ++j) sum_q += plan.quota_of(expert, j);
    if (n_s == 0) return;
    RACKEP_CHECK(sum_q > 0, "tokens routed to an expert whose quotas are all zero");
    int64_t given = 0;
    for (int j = 0; j < c; ++j) {
      const int64_t prod = n_s * plan.quota_of(expert, j);
      out[j] = static_cast<int32_t>(prod / sum_q);
      remainder[j] = prod % sum_q;
      given += out[j];
      order.push_back(j);  // ties: lower j
    }
    give_leftover(n_s - given, order, remainder, out);
    return;
  }
  // Locality-aware: every host first fills its own instance with its own tokens.
  rc.resize(static_cast<size_t>(c));
  int64_t own_here = 0;
  int64_t total_rc = 0;
  for (int j = 0; j < c; ++j) {
    const int h = plan.host(expert, j);
    const int64_t q = plan.quota_of(expert, j);
    const int64_t own = std::min<int64_t>(loads.at(h, expert), q);
    rc[j] = q - own;
    total_rc += rc[j];
    if (h == source) {
      out[j] += static_cast<int32_t>(own);
      own_here += own;
    }
  }
  const int64_t rem = std::max<int64_t>(n_s - own_here, 0);
  if (rem == 0 || total_rc == 0) {
    RACKEP_CHECK(rem == 0, "source has tokens left but no instance has remote capacity");
    return;
  }
  int64_t given = 0;
  for (int j = 0; j < c; ++j) {
    if (plan.host(expert, j) == source || rc[j] <= 0) continue;
    const int64_t prod = rem * rc[j];
    out[j] += static_cast<int32_t>(prod / total_rc);
    remainder[j] = prod % total_rc;
    given += prod / total_rc;
    order.push_back(j);
  }
  // Ties: lower host rank, then lower j.
  stable_insertion_sort(order, [&](int a, int b) {
    const int ha = plan.host(expert, a);
    const int hb = plan.host(expert, b);
    return ha != hb ? ha < hb : a < b;
  });
  give_leftover(rem - given, order, remainder, out);
}

Allocation allocate_by_quota(const Plan& plan, const LoadMatrix& loads, bool locality_aware) {
  RACKEP_CHECK(plan.has_quota, "allocate_by_quota needs a plan with quotas");
  Allocation a = Allocation::shaped_for(plan);
  const int l_count = plan.num_experts();
  for (int s = 0; s < a.num_ranks; ++s) {
    const int32_t* row = loads.row(s);
    for (int l = 0; l < l_count; ++l) {
      if (plan.lcnt[l] == 1) {
        a.at(s, l, 0) = row[l];  // a single instance serves every token (as allocate_source_expert does)
      } else {
        allocate_source_expert(plan, loads, s, l, locality_aware, &a.at(s, l, 0));
      }
    }
  }
  return a;
}

Allocation allocate_round_robin(const Plan& plan, const LoadMatrix& loads) {
  Allocation a = Allocation::shaped_for(plan);
  const int l_count = plan.num_experts();
  for (int s = 0; s < a.num_ranks; ++s)
    for (int l = 0; l < l_count; ++l) {
      const int32_t n = loads.at(s, l);
      const int32_t c = plan.lcnt[l];
      for (int j = 0; j < c; ++j) a.at(s, l, j) = n / c + (j < n % c ? 1 : 0);
    }
  return a;
}

void rank_quota_prefix(const Allocation& alloc, int source, int expert, int num_instances, int32_t* out) {
  int32_t run = 0;
  for (int j = 0; j < num_instances; ++j) {
    run += alloc.at(source, expert, j);
    out[j] = run;
  }
}

}  // namespace rackep
