// File: sim/traffic.hpp
// Byte matrices of the communication phases of one (MoE layer, microbatch), built from the balancer's plan
// and the transfer plans of core/transfer.hpp (docs/ALGORITHMS.md §2.2, §3; docs/HARDWARE.md §E.1).
//   dispatch   D[s][j] = copies of source s's tokens sent to rank j. DeepEP-style (dedup): one copy per token
//   and
//              destination rank, estimated from per-instance allocations as T_s (1 - prod over instances i on
//              j of (1 - a_si / T_s)) (top-k choices of a token treated as independent); without dedup: one
//              per pair.
//   combine    C[j][s] = D[s][j] (the transpose), with the combine element size.
// Usage:
//   TrafficMatrix tok = dispatch_token_matrix(result, /*top_k=*/8, /*dedup=*/true);
//   TrafficMatrix d = scale_traffic(tok, 14336.0, /*transpose=*/false);
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.hpp"
#include "core/transfer.hpp"
#include "sim/fabric.hpp"

namespace rackep::sim {

/// Token copies from each source rank to each destination rank (diagonal = tokens served locally).
TrafficMatrix dispatch_token_matrix(const PlanResult& result, int top_k, bool dedup);

/// The dispatch token copies as DeepEP moves them between NVLink domains (docs/HARDWARE.md "Internode
/// all-to-all"): inside the source's domain one copy per (token, destination rank) over NVLink, as
/// dispatch_token_matrix(); towards another domain d one copy per (token, d) over the NIC to the rank of d
/// with the source's local index (the RDMA peer), which forwards it over NVLink to every other destination
/// rank of d. `max_domains_per_token` > 0 (node-limited routing, DeepSeek-V3: 4) caps the domains a token
/// reaches. Entry (i, j) = copies from i to j on the route between them; the transpose is the combine.
TrafficMatrix dispatch_route_matrix(const PlanResult& result, int top_k, bool dedup, const Fabric& fabric,
                                    int max_domains_per_token);

/// round(tokens x bytes_per_token), optionally transposed (combine direction).
TrafficMatrix scale_traffic(const TrafficMatrix& tokens, double bytes_per_token, bool transpose);

/// Tokens (routed pairs) each instance receives, grouped by the rank hosting it: [N][instances on that rank].
std::vector<std::vector<int64_t>> instance_tokens_per_rank(const PlanResult& result);

/// One entry per weight copy: src_rank -> dst_rank, B_w bytes.
TrafficMatrix weight_sync_traffic(const TransferPlan& plan);

/// grad_reduce pulls: B_g read from the replica host to the puller, and B_g of zeros written back.
TrafficMatrix grad_reduce_traffic(const GradReducePlan& plan);

/// The per-rank load all-gather of docs/ALGORITHMS.md §2.2 step 3: every rank sends its L int32 counts to
/// every other rank.
TrafficMatrix load_allgather_traffic(int num_ranks, int num_experts);

}  // namespace rackep::sim
