#include "core/legacy.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/allocation.hpp"
#include "core/error.hpp"

namespace rackep {
namespace {

void check_threshold(double bt) {
  if (!std::isfinite(bt) || bt < 0.0)
    throw InputError("ultraep options", "balance_threshold",
                     "must be a finite number >= 0, got " + std::to_string(bt));
}

// One replica waiting for placement: domain-local expert and its per-copy load.
struct Replica {
  int expert;
  double load;
};

}  // namespace

Plan legacy_plan(const ClusterShape& shape, const std::vector<int64_t>& w, double balance_threshold,
                 LegacyStats* stats) {
  check_threshold(balance_threshold);
  RACKEP_CHECK(static_cast<int>(w.size()) == shape.num_experts(),
               "legacy_plan: W size does not match the shape");
  const int g = shape.domain_size;
  const int m = shape.num_masters;
  const int r = shape.num_redundant;
  const int s = shape.slots_per_rank();
  const int n = shape.num_ranks;
  const int e_count = g * m;
  Plan plan = Plan::masters_only(shape, {});
  plan.has_quota = false;
  plan.masters_fixed = true;
  LegacyStats local;

  std::vector<int> cnt(static_cast<size_t>(e_count));
  std::vector<double> rank_est(static_cast<size_t>(g));
  std::vector<int> slots_used(static_cast<size_t>(g));
  std::vector<Replica> replicas;
  for (int d = 0; d < shape.num_domains(); ++d) {
    const int first_rank = d * g;
    const int first_expert = first_rank * m;
    auto load = [&](int e) { return static_cast<double>(w[first_expert + e]); };
    double total = 0.0;
    for (int e = 0; e < e_count; ++e) total += load(e);
    const double avg = total / e_count;

    // Replication: one redundant slot per iteration.
    std::fill(cnt.begin(), cnt.end(), 1);
    for (int it = 0; it < g * r; ++it) {
      int best = -1;
      double best_value = 0.0;
      for (int e = 0; e < e_count; ++e) {
        if (cnt[e] - 1 >= g - 1) continue;  // at most G-1 replicas (one per other rank of the domain)
        const double value = load(e) / cnt[e];
        if (best < 0 || value > best_value) {
          best = e;
          best_value = value;
        }
      }
      if (best < 0) break;
      if (balance_threshold > 1.0 && avg > 0.0 && best_value <= avg * balance_threshold) break;
      cnt[best] += 1;
    }

    // Replicas by per-copy load descending (ties: lower expert id).
    replicas.clear();
    for (int e = 0; e < e_count; ++e)
      for (int c = 1; c < cnt[e]; ++c) replicas.push_back({e, load(e) / cnt[e]});
    std::stable_sort(replicas.begin(), replicas.end(),
                     [](const Replica& a, const Replica& b) { return a.load > b.load; });
    local.replicas_requested += static_cast<int64_t>(replicas.size());

    // Rank estimates from the pre-drop counts.
    for (int rank = 0; rank < g; ++rank) {
      rank_est[rank] = 0.0;
      for (int k = 0; k < m; ++k) rank_est[rank] += load(rank * m + k) / cnt[rank * m + k];
    }
    std::fill(slots_used.begin(), slots_used.end(), 0);
    for (const Replica& rep : replicas) {
      const int l = first_expert + rep.expert;
      const size_t row = static_cast<size_t>(l) * n;
      int target = -1;
      for (int rank = 0; rank < g; ++rank) {
        if (slots_used[rank] >= r) continue;
        bool hosts = false;
        for (int j = 0; j < plan.lcnt[l] && !hosts; ++j) hosts = plan.host(l, j) == first_rank + rank;
        if (hosts) continue;
        if (target < 0 || rank_est[rank] < rank_est[target]) target = rank;
      }
      if (target < 0) {
        local.replicas_dropped += 1;  // cnt[e] -= 1: the expert simply keeps one instance fewer
        continue;
      }
      const int phys = (first_rank + target) * s + m + slots_used[target];
      slots_used[target] += 1;
      plan.p2l[phys] = l;
      plan.l2p[row + plan.lcnt[l]] = phys;
      plan.lcnt[l] += 1;
      rank_est[target] += rep.load;
    }
  }
  if (stats != nullptr) *stats = local;
  return plan;
}

namespace {

class LegacyBalancer : public Balancer {
 public:
  LegacyBalancer(const ClusterShape& shape, const UltraEpOptions& options)
      : shape_(shape), threshold_(options.balance_threshold) {
    check_threshold(threshold_);
  }

  std::string name() const override { return "ultraep-legacy"; }

  PlanResult plan(const LoadMatrix& loads, const StepContext& /*ctx*/) override {
    loads.validate("ultraep-legacy loads", &shape_);
    PlanResult result;
    result.plan = legacy_plan(shape_, loads.expert_totals(), threshold_);
    result.alloc = allocate_round_robin(result.plan, loads);
    result.routed = loads;
    return result;
  }

 private:
  ClusterShape shape_;
  double threshold_;
};

}  // namespace

std::unique_ptr<Balancer> make_legacy_balancer(const ClusterShape& shape, const BalancerOptions& options) {
  return std::make_unique<LegacyBalancer>(shape, options.ultraep);
}

}  // namespace rackep
