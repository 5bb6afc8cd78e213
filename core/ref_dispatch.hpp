// File: core/ref_dispatch.hpp
// Token dispatch and combine between EP ranks (CPU reference of the kernel backend's dispatch/combine).
// After reroute every source rank holds, per token, top_k physical expert ids. Dispatch sends one row (the
// token's hidden vector) per (token, k) to the rank hosting that physical slot; on the receiving rank rows
// are grouped by local slot (so the expert FFN runs a grouped GEMM), then by source rank, then token, then k.
// Every row carries its origin (source rank, token index, k) so a misrouted row is visible without a
// reference. Combine sends the expert outputs back and sums them per token in k order with the routing
// probabilities, in fp32. Between GPUs the rows travel in "wire order": the rows from s to d in their receive
// order, so the receiver's staging buffer (segments by source rank) maps to final rows through
// recv_from_staging. Usage:
//   rackep::DispatchLayout lay = rackep::build_dispatch_layout(shape, physical_ids, top_k);
//   rackep::dispatch_reference(lay, x, hidden, recv, origin);
//   rackep::combine_reference(lay, y, probs, hidden, out);
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster_shape.hpp"

namespace rackep {

struct DispatchLayout {
  int num_ranks = 0;
  int slots_per_rank = 0;
  int top_k = 0;
  std::vector<int64_t> num_tokens;  ///< [N] tokens of each source rank
  // Send side, per source s, indexed by t * top_k + i:
  std::vector<std::vector<int32_t>> dest_rank;  ///< rank hosting the pair's physical slot
  std::vector<std::vector<int64_t>> dest_row;   ///< row on that rank
  std::vector<std::vector<int64_t>> wire_pos;   ///< position among the rows s sends to that rank
  std::vector<int64_t> send_counts;             ///< [N * N] rows from s (row) to d (column)
  // Receive side, per destination d, indexed by row:
  std::vector<std::vector<int32_t>> row_source;         ///< source rank of each row
  std::vector<std::vector<int32_t>> row_token;          ///< token index on the source
  std::vector<std::vector<int32_t>> row_k;              ///< position in the token's top-k
  std::vector<std::vector<int64_t>> slot_offsets;       ///< [S + 1] first row of each local slot
  std::vector<std::vector<int64_t>> recv_from_staging;  ///< final row of staging row i (segments by source)

  int64_t rows(int rank) const { return static_cast<int64_t>(row_source[rank].size()); }
  int64_t send_count(int s, int d) const { return send_counts[static_cast<size_t>(s) * num_ranks + d]; }
  /// First staging row of source s's segment on rank d: sum of send_count(s', d) for s' < s.
  int64_t staging_offset(int d, int s) const;
  /// First wire row of the segment s sends to d: sum of send_count(s, d') for d' < d.
  int64_t send_offset(int s, int d) const;
};

/// Builds the layout from each source's physical ids (num_tokens[s] * top_k, token-major). Throws
/// InputError("physical_ids", ...) on an id outside [0, N*S) or a size that is not a multiple of top_k.
DispatchLayout build_dispatch_layout(const ClusterShape& shape,
                                     const std::vector<std::vector<int32_t>>& physical_ids, int top_k);

/// Dispatch: recv[d] (rows(d) * hidden) gets x[s] row t for each of its rows; origin[d] (rows(d) * 3) gets
/// (source rank, token, k). x[s] holds num_tokens[s] * hidden elements (bf16 bits).
void dispatch_reference(const DispatchLayout& layout, const std::vector<std::vector<uint16_t>>& x,
                        int64_t hidden, std::vector<std::vector<uint16_t>>& recv,
                        std::vector<std::vector<int32_t>>& origin);

/// Combine: out[s][t*hidden + h] = sum over i < top_k, in order, of probs[s][t*top_k + i] * y[d][row*hidden +
/// h] (fp32: each product rounded, then added), with (d, row) the pair's destination. y[d] is rows(d) *
/// hidden bf16.
void combine_reference(const DispatchLayout& layout, const std::vector<std::vector<uint16_t>>& y,
                       const std::vector<std::vector<float>>& probs, int64_t hidden,
                       std::vector<std::vector<float>>& out);

/// A deterministic, exactly representable bf16 value for element h of token t on source s: k/16 with
/// k in [-127, 127]. Fill payloads with it and a received row proves where it came from.
uint16_t origin_payload(int source, int64_t token, int64_t h);

/// Checks every received row against its recorded origin and payload. Returns -1 when all rows are right,
/// else the first bad row's index on rank `rank`.
int64_t first_misrouted_row(const DispatchLayout& layout, int rank, const std::vector<uint16_t>& recv,
                            const std::vector<int32_t>& origin, int64_t hidden);

}  // namespace rackep
