#include "core/ref_dispatch.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "core/ref_bf16.hpp"

namespace rackep {

int64_t DispatchLayout::staging_offset(int d, int s) const {
  int64_t off = 0;
  for (int i = 0; i < s; ++i) off += send_count(i, d);
  return off;
}

int64_t DispatchLayout::send_offset(int s, int d) const {
  int64_t off = 0;
  for (int i = 0; i < d; ++i) off += send_count(s, i);
  return off;
}

DispatchLayout build_dispatch_layout(const ClusterShape& shape,
                                     const std::vector<std::vector<int32_t>>& physical_ids, int top_k) {
  const int n = shape.num_ranks;
  const int s_slots = shape.slots_per_rank();
  if (static_cast<int>(physical_ids.size()) != n)
    throw InputError("physical_ids", "ranks", "need one id list per source rank");
  if (top_k <= 0) throw InputError("physical_ids", "top_k", "must be positive");
  DispatchLayout lay;
  lay.num_ranks = n;
  lay.slots_per_rank = s_slots;
  lay.top_k = top_k;
  lay.num_tokens.assign(n, 0);
  lay.send_counts.assign(static_cast<size_t>(n) * n, 0);
  // Count rows per (destination, local slot, source).
  std::vector<int64_t> count(static_cast<size_t>(n) * s_slots * n, 0);
  auto cidx = [&](int d, int slot, int s) { return (static_cast<size_t>(d) * s_slots + slot) * n + s; };
  for (int s = 0; s < n; ++s) {
    const auto& ids = physical_ids[s];
    if (ids.size() % static_cast<size_t>(top_k) != 0)
      throw InputError("physical_ids", "rank " + std::to_string(s), "size is not a multiple of top_k");
    lay.num_tokens[s] = static_cast<int64_t>(ids.size()) / top_k;
    for (int32_t p : ids) {
      if (p < 0 || p >= shape.num_physical())
        throw InputError("physical_ids", "rank " + std::to_string(s),
                         "physical id " + std::to_string(p) + " outside [0, " +
                             std::to_string(shape.num_physical()) + ")");
      ++count[cidx(p / s_slots, p % s_slots, s)];
    }
  }
  // Exclusive prefix in (slot, source) order per destination: the first row of each (d, slot, s) block.
  std::vector<int64_t> next(count.size(), 0);
  lay.slot_offsets.assign(n, std::vector<int64_t>(s_slots + 1, 0));
  lay.row_source.resize(n);
  lay.row_token.resize(n);
  lay.row_k.resize(n);
  for (int d = 0; d < n; ++d) {
    int64_t row = 0;
    for (int slot = 0; slot < s_slots; ++slot) {
      lay.slot_offsets[d][slot] = row;
      for (int s = 0; s < n; ++s) {
        next[cidx(d, slot, s)] = row;
        row += count[cidx(d, slot, s)];
      }
    }
    lay.slot_offsets[d][s_slots] = row;
    lay.row_source[d].assign(row, -1);
    lay.row_token[d].assign(row, -1);
    lay.row_k[d].assign(row, -1);
  }
  lay.dest_rank.resize(n);
  lay.dest_row.resize(n);
  lay.wire_pos.resize(n);
  for (int s = 0; s < n; ++s) {
    const auto& ids = physical_ids[s];
    lay.dest_rank[s].resize(ids.size());
    lay.dest_row[s].resize(ids.size());
    lay.wire_pos[s].resize(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      const int d = ids[i] / s_slots;
      const int64_t row = next[cidx(d, ids[i] % s_slots, s)]++;
      lay.dest_rank[s][i] = d;
      lay.dest_row[s][i] = row;
      lay.row_source[d][row] = s;
      lay.row_token[d][row] = static_cast<int32_t>(i / top_k);
      lay.row_k[d][row] = static_cast<int32_t>(i % top_k);
      lay.send_counts[static_cast<size_t>(s) * n + d] += 1;
    }
  }
  // Wire order: the rows s sends to d, in their receive order on d. Staging on d: segments by source.
  lay.recv_from_staging.resize(n);
  std::vector<int64_t> seen(static_cast<size_t>(n) * n, 0);
  for (int d = 0; d < n; ++d) {
    lay.recv_from_staging[d].assign(lay.row_source[d].size(), -1);
    std::vector<int64_t> stage_off(n, 0);
    for (int s = 1; s < n; ++s) stage_off[s] = stage_off[s - 1] + lay.send_count(s - 1, d);
    for (int64_t row = 0; row < lay.rows(d); ++row) {
      const int s = lay.row_source[d][row];
      const int64_t pos = seen[static_cast<size_t>(s) * n + d]++;
      lay.recv_from_staging[d][stage_off[s] + pos] = row;
      lay.wire_pos[s][static_cast<size_t>(lay.row_token[d][row]) * top_k + lay.row_k[d][row]] = pos;
    }
  }
  return lay;
}

void dispatch_reference(const DispatchLayout& layout, const std::vector<std::vector<uint16_t>>& x,
                        int64_t hidden, std::vector<std::vector<uint16_t>>& recv,
                        std::vector<std::vector<int32_t>>& origin) {
  const int n = layout.num_ranks;
  recv.assign(n, {});
  origin.assign(n, {});
  for (int d = 0; d < n; ++d) {
    recv[d].assign(static_cast<size_t>(layout.rows(d) * hidden), 0);
    origin[d].assign(static_cast<size_t>(layout.rows(d) * 3), -1);
  }
  for (int s = 0; s < n; ++s) {
    if (static_cast<int64_t>(x[s].size()) != layout.num_tokens[s] * hidden)
      throw InputError("dispatch", "x", "rank " + std::to_string(s) + " has the wrong number of elements");
    for (size_t i = 0; i < layout.dest_rank[s].size(); ++i) {
      const int d = layout.dest_rank[s][i];
      const int64_t row = layout.dest_row[s][i];
      const int64_t t = static_cast<int64_t>(i) / layout.top_k;
      std::copy(x[s].begin() + t * hidden, x[s].begin() + (t + 1) * hidden, recv[d].begin() + row * hidden);
      origin[d][row * 3 + 0] = s;
      origin[d][row * 3 + 1] = static_cast<int32_t>(t);
      origin[d][row * 3 + 2] = static_cast<int32_t>(i % layout.top_k);
    }
  }
}

void combine_reference(const DispatchLayout& layout, const std::vector<std::vector<uint16_t>>& y,
                       const std::vector<std::vector<float>>& probs, int64_t hidden,
                       std::vector<std::vector<float>>& out) {
  const int n = layout.num_ranks;
  const int k = layout.top_k;
  out.assign(n, {});
  for (int s = 0; s < n; ++s) {
    const int64_t tokens = layout.num_tokens[s];
    if (static_cast<int64_t>(probs[s].size()) != tokens * k)
      throw InputError("combine", "probs",
                       "rank " + std::to_string(s) + " needs tokens * top_k probabilities");
    out[s].assign(static_cast<size_t>(tokens * hidden), 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < hidden; ++h) {
        float acc = 0.0f;
        for (int i = 0; i < k; ++i) {
          const size_t pair = static_cast<size_t>(t * k + i);
          const int d = layout.dest_rank[s][pair];
          const int64_t row = layout.dest_row[s][pair];
          const float prod = probs[s][pair] * bf16_to_float(y[d][row * hidden + h]);
          acc = acc + prod;
        }
        out[s][t * hidden + h] = acc;
      }
    }
  }
}

uint16_t origin_payload(int source, int64_t token, int64_t h) {
  const uint64_t mix = static_cast<uint64_t>(source) * 7919u + static_cast<uint64_t>(token) * 104729u +
                       static_cast<uint64_t>(h) * 31u;
  const int k = static_cast<int>(mix % 255u) - 127;
  return float_to_bf16(static_cast<float>(k) / 16.0f);
}

int64_t first_misrouted_row(const DispatchLayout& layout, int rank, const std::vector<uint16_t>& recv,
                            const std::vector<int32_t>& origin, int64_t hidden) {
  for (int64_t row = 0; row < layout.rows(rank); ++row) {
    const int s = origin[row * 3 + 0];
    const int32_t t = origin[row * 3 + 1];
    const int32_t k = origin[row * 3 + 2];
    if (s != layout.row_source[rank][row] || t != layout.row_token[rank][row] || k != layout.row_k[rank][row])
      return row;
    for (int64_t h = 0; h < hidden; ++h)
      if (recv[row * hidden + h] != origin_payload(s, t, h)) return row;
  }
  return -1;
}

}  // namespace rackep
