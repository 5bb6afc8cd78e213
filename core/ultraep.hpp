// File: core/ultraep.hpp
// The UltraEP quota planner (docs/ALGORITHMS.md §2.4): per NVLink domain, a threshold search over a greedy
// feasibility oracle that both creates replicas in redundant slots and fixes their quotas.
// The planner needs only the global loads W[l]; the per-source split is core/allocation.hpp.
// Usage:
//   rackep::UltraEpPlanner planner(shape, options.ultraep);
//   const rackep::Plan& plan = planner.plan(loads.expert_totals());
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/balancer.hpp"
#include "core/plan.hpp"

namespace rackep {

/// How the threshold of one domain was found.
struct UltraEpDomainStats {
  int64_t threshold = 0;  ///< T accepted (max rank load inside the domain, by quota)
  int oracle_calls = 0;
  bool fast_path = false;  ///< accepted on one of the three dynamic-floor tries
};

/// Reusable planner: holds its workspace so repeated calls do not allocate.
class UltraEpPlanner {
 public:
  UltraEpPlanner(const ClusterShape& shape, const UltraEpOptions& options);
  ~UltraEpPlanner();
  UltraEpPlanner(UltraEpPlanner&&) noexcept;
  UltraEpPlanner& operator=(UltraEpPlanner&&) noexcept;

  /// Plans all domains from W (size L). The reference stays valid until the next call.
  const Plan& plan(const std::vector<int64_t>& w);
  const std::vector<UltraEpDomainStats>& domain_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// One-shot convenience wrapper around UltraEpPlanner.
Plan ultraep_plan(const ClusterShape& shape, const std::vector<int64_t>& w, const UltraEpOptions& options);

/// The `ultraep` balancer (quota plan + locality-aware split) and the `none` and `ideal` balancers.
std::unique_ptr<Balancer> make_ultraep_balancer(const ClusterShape& shape, const BalancerOptions& options);
std::unique_ptr<Balancer> make_none_balancer(const ClusterShape& shape, const BalancerOptions& options);
std::unique_ptr<Balancer> make_ideal_balancer(const ClusterShape& shape, const BalancerOptions& options);

}  // namespace rackep
