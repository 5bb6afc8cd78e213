#include "sim/traffic.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace rackep::sim {

TrafficMatrix dispatch_token_matrix(const PlanResult& r, int top_k, bool dedup) {
  const Plan& plan = r.plan;
  const Allocation& alloc = r.alloc;
  const int n = plan.shape.num_ranks;
  const int num_experts = plan.num_experts();
  RACKEP_CHECK(alloc.num_ranks == n, "allocation does not match the plan");
  TrafficMatrix out(n);
  std::vector<double> keep(n);   // probability that a token of s has no choice on rank j
  std::vector<double> pairs(n);  // pairs from s to j
  for (int s = 0; s < n; ++s) {
    int64_t row_pairs = 0;
    for (int l = 0; l < num_experts; ++l) row_pairs += r.routed.at(s, l);
    const double tokens = static_cast<double>(row_pairs) / top_k;
    std::fill(keep.begin(), keep.end(), 1.0);
    std::fill(pairs.begin(), pairs.end(), 0.0);
    for (int l = 0; l < num_experts; ++l) {
      const int c = plan.lcnt[l];
      for (int j = 0; j < c; ++j) {
        const int32_t a = alloc.at(s, l, j);
        if (a <= 0) continue;
        const int host = plan.host(l, j);
        pairs[host] += a;
        if (dedup && tokens > 0.0) keep[host] *= std::max(0.0, 1.0 - a / tokens);
      }
    }
    for (int d = 0; d < n; ++d) {
      const double copies = dedup ? std::min(pairs[d], tokens * (1.0 - keep[d])) : pairs[d];
      out.at(s, d) = static_cast<int64_t>(std::llround(copies));
    }
  }
  return out;
}

TrafficMatrix scale_traffic(const TrafficMatrix& tokens, double bytes_per_token, bool transpose) {
  const int n = tokens.num_ranks;
  TrafficMatrix out(n);
  for (int s = 0; s < n; ++s) {
    for (int d = 0; d < n; ++d) {
      const int64_t b = std::llround(static_cast<double>(tokens.at(s, d)) * bytes_per_token);
      if (transpose) {
        out.at(d, s) = b;
      } else {
        out.at(s, d) = b;
      }
    }
  }
  return out;
}

std::vector<std::vector<int64_t>> instance_tokens_per_rank(const PlanResult& r) {
  const Plan& plan = r.plan;
  const int n = plan.shape.num_ranks;
  std::vector<std::vector<int64_t>> out(n);
  for (int l = 0; l < plan.num_experts(); ++l) {
    for (int j = 0; j < plan.lcnt[l]; ++j) {
      int64_t total = 0;
      for (int s = 0; s < n; ++s) total += r.alloc.at(s, l, j);
      out[plan.host(l, j)].push_back(total);
    }
  }
  return out;
}

TrafficMatrix weight_sync_traffic(const TransferPlan& plan) {
  TrafficMatrix out(plan.shape.num_ranks);
  for (const TransferCopy& c : plan.copies) out.at(c.src_rank, c.dst_rank) += c.bytes;
  return out;
}

TrafficMatrix grad_reduce_traffic(const GradReducePlan& plan) {
  TrafficMatrix out(plan.shape.num_ranks);
  for (const GradPull& p : plan.pulls) {
    out.at(p.replica_rank, p.puller_rank) += p.bytes;  // gradient read
    out.at(p.puller_rank, p.replica_rank) += p.bytes;  // zeros written back
  }
  return out;
}

TrafficMatrix load_allgather_traffic(int num_ranks, int num_experts) {
  TrafficMatrix out(num_ranks);
  for (int s = 0; s < num_ranks; ++s)
    for (int d = 0; d < num_ranks; ++d)
      if (s != d) out.at(s, d) = 4LL * num_experts;
  return out;
}

}  // namespace rackep::sim
