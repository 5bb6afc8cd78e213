// grad_reduce pulls (docs/ALGORITHMS.md §3.6) and the analytic weight_sync / grad_reduce cost helpers (§3.5,
// §3.6).
#include <algorithm>

#include "core/error.hpp"
#include "core/transfer.hpp"

namespace rackep {

GradReducePlan plan_grad_reduce(const Plan& plan, const ExpertBytes& eb) {
  eb.validate("expert bytes");
  detail::check_transfer_plan(plan, /*fixed_masters=*/plan.masters_fixed, "plan");
  const ClusterShape& shape = plan.shape;
  const size_t n = static_cast<size_t>(shape.num_ranks);
  GradReducePlan g;
  g.shape = shape;
  g.expert = eb;
  g.pulled_bytes.assign(n, 0);
  g.written_bytes.assign(n, 0);
  g.served_bytes.assign(n, 0);
  g.zeroed_bytes.assign(n, 0);
  g.num_tasks.assign(n, 0);
  g.grad_tiles.assign(n, 0);
  const int64_t bg = eb.grad_bytes();
  // For fixed-master plans expert order is the build kernel's order: rank-major, then master slot.
  for (int l = 0; l < plan.num_experts(); ++l) {
    const int32_t master_phys = plan.physical(l, 0);
    const int puller = shape.rank_of_physical(master_phys);
    for (int j = 1; j < plan.lcnt[l]; ++j) {
      GradPull pull;
      pull.expert = l;
      pull.instance = j;
      pull.puller_rank = puller;
      pull.master_physical = master_phys;
      pull.replica_physical = plan.physical(l, j);
      pull.replica_rank = shape.rank_of_physical(pull.replica_physical);
      pull.bytes = bg;
      g.pulled_bytes[puller] += bg;
      g.written_bytes[puller] += bg;
      g.served_bytes[pull.replica_rank] += bg;
      g.zeroed_bytes[pull.replica_rank] += bg;
      g.num_tasks[puller] += ExpertBytes::kNumShards;
      g.grad_tiles[puller] += eb.grad_tiles();
      g.pulls.push_back(pull);
    }
  }
  return g;
}

int64_t GradReducePlan::total_pulled_bytes() const {
  int64_t sum = 0;
  for (int64_t b : pulled_bytes) sum += b;
  return sum;
}

int64_t GradReducePlan::max_pulled_bytes() const {
  return pulled_bytes.empty() ? 0 : *std::max_element(pulled_bytes.begin(), pulled_bytes.end());
}

// ---------------------------------------------------------------------------------------------------------
// Cost helpers
// ---------------------------------------------------------------------------------------------------------

void WeightSyncCostParams::validate(const std::string& source) const {
  if (!(launch_s >= 0)) throw InputError(source, "launch_s", "must be >= 0, got " + std::to_string(launch_s));
  if (!(egress_bytes_per_s > 0))
    throw InputError(source, "egress_bytes_per_s",
                     "must be positive, got " + std::to_string(egress_bytes_per_s));
  if (!(ingress_bytes_per_s > 0))
    throw InputError(source, "ingress_bytes_per_s",
                     "must be positive, got " + std::to_string(ingress_bytes_per_s));
}

double weight_sync_time_s(const TransferPlan& plan, const WeightSyncCostParams& params) {
  params.validate("weight_sync cost");
  double worst_s = 0.0;
  for (size_t r = 0; r < plan.egress_bytes.size(); ++r) {
    worst_s = std::max(worst_s, static_cast<double>(plan.egress_bytes[r]) / params.egress_bytes_per_s);
    worst_s = std::max(worst_s, static_cast<double>(plan.ingress_bytes[r]) / params.ingress_bytes_per_s);
  }
  const double chunk_s = static_cast<double>(ExpertBytes::kChunkBytes) / params.egress_bytes_per_s;
  return params.launch_s + worst_s + plan.relay_levels * chunk_s;
}

void GradReduceCostParams::validate(const std::string& source) const {
  if (num_sms <= 0) throw InputError(source, "num_sms", "must be positive, got " + std::to_string(num_sms));
  if (!(bytes_per_sm_s > 0))
    throw InputError(source, "bytes_per_sm_s", "must be positive, got " + std::to_string(bytes_per_sm_s));
}

double grad_reduce_time_s(int64_t pulled_bytes, const GradReduceCostParams& params) {
  params.validate("grad_reduce cost");
  if (pulled_bytes < 0)
    throw InputError("grad_reduce cost", "pulled_bytes", "must be >= 0, got " + std::to_string(pulled_bytes));
  return static_cast<double>(pulled_bytes) / (params.num_sms * params.bytes_per_sm_s);
}

double grad_reduce_time_s(const GradReducePlan& plan, const GradReduceCostParams& params) {
  return grad_reduce_time_s(plan.max_pulled_bytes(), params);
}

}  // namespace rackep
