#include "core/metrics.hpp"

#include <algorithm>
#include <numeric>

namespace rackep {

double domain_lower_bound(const std::vector<int64_t>& rank_loads, int domain_size) {
  const int64_t total = std::accumulate(rank_loads.begin(), rank_loads.end(), int64_t{0});
  if (total <= 0 || domain_size <= 0) return 1.0;
  int64_t max_domain = 0;
  for (size_t d = 0; d * domain_size < rank_loads.size(); ++d) {
    int64_t sum = 0;
    for (size_t r = d * domain_size; r < (d + 1) * domain_size && r < rank_loads.size(); ++r)
      sum += rank_loads[r];
    max_domain = std::max(max_domain, sum);
  }
  // (max_domain / G) / (total / N)
  return static_cast<double>(max_domain) * static_cast<double>(rank_loads.size()) /
         (static_cast<double>(total) * domain_size);
}

PlanMetrics measure_plan(const LoadMatrix& loads, const PlanResult& result) {
  PlanMetrics m;
  const Plan& plan = result.plan;
  const std::vector<int64_t> before = loads.rank_loads(plan.shape);
  const std::vector<int64_t> after = rank_loads_after(plan, result.alloc);
  m.imbalance_before = imbalance(before);
  m.imbalance_after = imbalance(after);
  m.domain_lower_bound = domain_lower_bound(before, plan.shape.domain_size);
  m.max_instances = plan.max_instances();
  m.total_replicas = plan.total_replicas();
  m.used_redundant_slots = plan.used_redundant_slots();
  m.remote_tokens = remote_tokens(plan, result.alloc);
  m.max_rank_load = after.empty() ? 0 : *std::max_element(after.begin(), after.end());
  return m;
}

}  // namespace rackep
