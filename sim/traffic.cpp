#include "sim/traffic.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace rackep::sim {

namespace {

// Host rank of every instance of `r.alloc`, in its flat numbering (expert by expert, instance order).
std::vector<int> instance_hosts(const PlanResult& r) {
  const Plan& plan = r.plan;
  std::vector<int> hosts(static_cast<size_t>(r.alloc.num_instances()));
  for (int l = 0; l < plan.num_experts(); ++l)
    for (int j = 0; j < plan.lcnt[l]; ++j)
      hosts[static_cast<size_t>(r.alloc.offset[l] + j)] = plan.host(l, j);
  return hosts;
}

}  // namespace

TrafficMatrix dispatch_token_matrix(const PlanResult& r, int top_k, bool dedup) {
  const Plan& plan = r.plan;
  const Allocation& alloc = r.alloc;
  const int n = plan.shape.num_ranks;
  const int num_experts = plan.num_experts();
  RACKEP_CHECK(alloc.num_ranks == n, "allocation does not match the plan");
  const std::vector<int> hosts = instance_hosts(r);
  const size_t count = hosts.size();
  TrafficMatrix out(n);
  std::vector<double> keep(n);   // probability that a token of s has no choice on rank j
  std::vector<double> pairs(n);  // pairs from s to j
  for (int s = 0; s < n; ++s) {
    const int32_t* routed = r.routed.row(s);
    int64_t row_pairs = 0;
    for (int l = 0; l < num_experts; ++l) row_pairs += routed[l];
    const double tokens = static_cast<double>(row_pairs) / top_k;
    std::fill(keep.begin(), keep.end(), 1.0);
    std::fill(pairs.begin(), pairs.end(), 0.0);
    // Instances in (expert, instance) order, as the allocation row stores them: the products below keep
    // their order.
    const int32_t* row = alloc.tokens.data() + static_cast<size_t>(s) * count;
    const bool dedup_row = dedup && tokens > 0.0;
    for (size_t g = 0; g < count; ++g) {
      const int32_t a = row[g];
      if (a <= 0) continue;
      const int host = hosts[g];
      pairs[host] += a;
      if (dedup_row) keep[host] *= std::max(0.0, 1.0 - a / tokens);
    }
    int64_t* out_row = out.bytes.data() + static_cast<size_t>(s) * n;
    for (int d = 0; d < n; ++d) {
      const double copies = dedup ? std::min(pairs[d], tokens * (1.0 - keep[d])) : pairs[d];
      out_row[d] = static_cast<int64_t>(std::llround(copies));
    }
  }
  return out;
}

TrafficMatrix dispatch_route_matrix(const PlanResult& r, int top_k, bool dedup, const Fabric& fabric,
                                    int max_domains_per_token) {
  const TrafficMatrix direct = dispatch_token_matrix(r, top_k, dedup);
  const int n = direct.num_ranks;
  RACKEP_CHECK(n == fabric.num_ranks, "dispatch_route_matrix: plan and fabric differ in ranks");
  const int g = fabric.domain_size;
  const int num_domains = fabric.num_domains();
  if (num_domains == 1) return direct;
  const Plan& plan = r.plan;
  const std::vector<int> hosts = instance_hosts(r);
  const size_t count = hosts.size();
  const bool limited = max_domains_per_token > 0 && max_domains_per_token < num_domains;
  TrafficMatrix out(n);
  std::vector<double> keep(num_domains), pairs(num_domains);
  for (int s = 0; s < n; ++s) {
    const int32_t* routed = r.routed.row(s);
    int64_t row_pairs = 0;
    for (int l = 0; l < plan.num_experts(); ++l) row_pairs += routed[l];
    const double tokens = static_cast<double>(row_pairs) / top_k;
    std::fill(keep.begin(), keep.end(), 1.0);
    std::fill(pairs.begin(), pairs.end(), 0.0);
    const int32_t* row = r.alloc.tokens.data() + static_cast<size_t>(s) * count;
    for (size_t i = 0; i < count; ++i) {
      const int32_t a = row[i];
      if (a <= 0) continue;
      const int d = fabric.domain_of(hosts[i]);
      pairs[d] += a;
      if (dedup && tokens > 0.0) keep[d] *= std::max(0.0, 1.0 - a / tokens);
    }
    const int home = fabric.domain_of(s);
    for (int d = 0; d < num_domains; ++d) {
      if (d == home) {
        for (int j = d * g; j < (d + 1) * g; ++j) out.at(s, j) += direct.at(s, j);
        continue;
      }
      if (pairs[d] <= 0.0) continue;
      // Token copies that cross to domain d: one per (token, destination domain) as DeepEP sends them;
      // with node-limited routing a token brings top_k / M of its pairs to each of its M domains.
      double copies = dedup ? std::min(pairs[d], tokens * (1.0 - keep[d])) : pairs[d];
      if (dedup && limited) copies = std::min(copies, max_domains_per_token * pairs[d] / top_k);
      const int peer = d * g + s % g;
      const int64_t nic = std::llround(copies);
      out.at(s, peer) += nic;
      for (int j = d * g; j < (d + 1) * g; ++j) {
        if (j == peer) continue;
        out.at(peer, j) += std::min(direct.at(s, j), nic);  // NVLink fan-out inside domain d
      }
    }
  }
  return out;
}

TrafficMatrix scale_traffic(const TrafficMatrix& tokens, double bytes_per_token, bool transpose) {
  const int n = tokens.num_ranks;
  TrafficMatrix out(n);
  // An integral byte count per token (the usual case) makes every product an exact integer while it stays
  // below 2^53, so llround(x * b) == x * b in integer arithmetic; otherwise round each product.
  const bool integral =
      bytes_per_token >= 0.0 && bytes_per_token < 9.0e15 && bytes_per_token == std::floor(bytes_per_token);
  const int64_t b_int = integral ? static_cast<int64_t>(bytes_per_token) : 0;
  constexpr int64_t kExact = int64_t{1} << 53;
  for (int s = 0; s < n; ++s) {
    const int64_t* row = tokens.bytes.data() + static_cast<size_t>(s) * n;
    for (int d = 0; d < n; ++d) {
      const int64_t x = row[d];
      int64_t b = 0;
      if (x == 0) {
        b = 0;
      } else if (integral && x > 0 && (b_int == 0 || x <= kExact / b_int)) {
        b = x * b_int;
      } else {
        b = std::llround(static_cast<double>(x) * bytes_per_token);
      }
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
  const std::vector<int> hosts = instance_hosts(r);
  const size_t count = hosts.size();
  // Column sums of the allocation, row by row (integer sums: order-independent).
  std::vector<int64_t> totals(count, 0);
  for (int s = 0; s < r.alloc.num_ranks; ++s) {
    const int32_t* row = r.alloc.tokens.data() + static_cast<size_t>(s) * count;
    for (size_t g = 0; g < count; ++g) totals[g] += row[g];
  }
  std::vector<std::vector<int64_t>> out(n);
  for (size_t g = 0; g < count; ++g) out[hosts[g]].push_back(totals[g]);
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
