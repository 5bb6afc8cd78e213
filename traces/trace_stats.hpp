// File: traces/trace_stats.hpp
// Summary statistics of a record stream, per layer and overall, in one streaming pass (memory: per
// layer, one previous W vector and one imbalance per record): rank imbalance before balancing, expert
// imbalance, the hottest experts, and how well the previous microbatch's per-expert loads W predict the
// next microbatch's for the same layer, which is what history-based balancers (EPLB, legacy) rely on.
// Usage:
//   rackep::TraceReader in("out/trace");
//   rackep::TraceStats s = rackep::compute_trace_stats(in, {/*num_ranks=*/0, /*hot=*/8});
//   for (const auto& l : s.layers) print(l.layer, l.imbalance_mean, l.predict_rel_l1);
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "traces/trace_format.hpp"

namespace rackep {

/// Options of compute_trace_stats.
struct StatsOptions {
  int num_ranks = 0;  ///< ranks for the imbalance (M = L / N consecutive experts per rank); 0 = the trace's N
  int hot = 8;        ///< how many hottest experts to list and to compare between microbatches
};

/// Statistics of one layer (or of all records, for TraceStats::overall).
struct LayerStats {
  int layer = -1;  ///< layer id (-1 for overall)
  int64_t records = 0;
  int64_t tokens = 0;                  ///< routed (token, expert) pairs, summed over records
  double imbalance_mean = 1.0;         ///< rank max/mean of RL (docs/ALGORITHMS.md §1), mean over records
  double imbalance_p50 = 1.0;          ///< its median
  double imbalance_max = 1.0;          ///< its maximum
  double expert_imbalance_mean = 1.0;  ///< max/mean of W over experts, mean over records
  std::vector<std::pair<int, double>> hottest;  ///< (expert, share of the layer's tokens), hottest first
  int64_t predict_pairs = 0;                    ///< (previous, next) microbatch pairs of this layer compared
  double predict_rel_l1 = 0.0;       ///< mean of sum_l |W_prev - W| / sum_l W (0 = perfect prediction)
  double predict_pearson = 0.0;      ///< mean Pearson correlation of W_prev and W (pairs where both vary)
  int64_t pearson_pairs = 0;         ///< pairs where the correlation is defined
  double predict_hot_overlap = 0.0;  ///< mean |hot(prev) ∩ hot(next)| / hot for the `hot` hottest experts
};

/// The whole summary.
struct TraceStats {
  TraceManifest manifest;  ///< the stream's manifest
  int num_ranks = 0;       ///< N used for the imbalance
  int num_masters = 0;     ///< M = L / N
  int hot = 0;             ///< the effective `hot` (at most L)
  int64_t records = 0;
  int64_t microbatches = 0;        ///< distinct microbatch ids
  std::vector<LayerStats> layers;  ///< in manifest layer order (layers without records are kept, records = 0)
  LayerStats overall;  ///< over all records; hottest and prediction are per layer only (left empty)
};

/// Reads `in` to the end. Throws InputError("--ranks", "--ranks", ...) when the trace's L is not a multiple
/// of options.num_ranks, InputError("--hot", ...) for hot < 1, and whatever in.next() throws.
TraceStats compute_trace_stats(RecordStream& in, const StatsOptions& options = {});

}  // namespace rackep
