#include "kernels/ep_layout.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::kernels {

void EpPlacement::validate(const std::string& source) const {
  if (num_ranks < 1) throw InputError(source, "ranks", "EP size must be at least 1");
  if (num_gpus < 1 || num_gpus > num_ranks)
    throw InputError(source, "gpus",
                     "GPU count " + std::to_string(num_gpus) + " must be between 1 and the EP size " +
                         std::to_string(num_ranks));
  if (num_ranks % num_gpus != 0)
    throw InputError(source, "gpus",
                     "EP size " + std::to_string(num_ranks) + " is not a multiple of the GPU count " +
                         std::to_string(num_gpus));
}

int gpus_for_ranks(int num_ranks, int available) {
  for (int g = std::min(available, num_ranks); g > 1; --g)
    if (num_ranks % g == 0) return g;
  return 1;
}

int64_t GpuExchangeLayout::send_offset(int g, int h) const {
  int64_t off = 0;
  for (int x = 0; x < h; ++x) off += gpu_send_count(g, x);
  return off;
}

int64_t GpuExchangeLayout::staging_offset(int h, int g) const {
  int64_t off = 0;
  for (int x = 0; x < g; ++x) off += gpu_send_count(x, h);
  return off;
}

GpuExchangeLayout build_gpu_exchange_layout(const DispatchLayout& lay, const EpPlacement& p) {
  p.validate("gpu exchange layout");
  if (lay.num_ranks != p.num_ranks)
    throw InputError("gpu exchange layout", "ranks",
                     "dispatch layout has " + std::to_string(lay.num_ranks) + " ranks, placement " +
                         std::to_string(p.num_ranks));
  const int n = p.num_ranks;
  const int g_count = p.num_gpus;
  const int q = p.ranks_per_gpu();
  GpuExchangeLayout gl;
  gl.placement = p;
  gl.gpu_send_counts.assign(static_cast<size_t>(g_count) * g_count, 0);
  for (int s = 0; s < n; ++s)
    for (int d = 0; d < n; ++d)
      if (p.gpu_of(s) != p.gpu_of(d))
        gl.gpu_send_counts[static_cast<size_t>(p.gpu_of(s)) * g_count + p.gpu_of(d)] += lay.send_count(s, d);
  // seg_offset[s * n + d]: first row of the (s -> d) rows in the send buffer of s's GPU (remote d only).
  std::vector<int64_t> seg_offset(static_cast<size_t>(n) * n, -1);
  for (int g = 0; g < g_count; ++g) {
    for (int h = 0; h < g_count; ++h) {
      if (h == g) continue;
      int64_t row = gl.send_offset(g, h);
      for (int s = p.first_rank(g); s < p.first_rank(g) + q; ++s)
        for (int d = p.first_rank(h); d < p.first_rank(h) + q; ++d) {
          seg_offset[static_cast<size_t>(s) * n + d] = row;
          row += lay.send_count(s, d);
        }
    }
  }
  gl.entry_buf.resize(static_cast<size_t>(n));
  gl.entry_row.resize(static_cast<size_t>(n));
  for (int s = 0; s < n; ++s) {
    const size_t entries = lay.dest_rank[s].size();
    gl.entry_buf[s].resize(entries);
    gl.entry_row[s].resize(entries);
    for (size_t e = 0; e < entries; ++e) {
      const int d = lay.dest_rank[s][e];
      if (p.gpu_of(d) == p.gpu_of(s)) {
        gl.entry_buf[s][e] = d - p.first_rank(p.gpu_of(s));
        gl.entry_row[s][e] = lay.dest_row[s][e];
      } else {
        gl.entry_buf[s][e] = q;
        gl.entry_row[s][e] = seg_offset[static_cast<size_t>(s) * n + d] + lay.wire_pos[s][e];
      }
    }
  }
  // Staging of h: segments by source GPU, each by (source rank, destination rank, wire position), as sent.
  gl.staging_rank.resize(static_cast<size_t>(g_count));
  gl.staging_row.resize(static_cast<size_t>(g_count));
  for (int h = 0; h < g_count; ++h) {
    for (int g = 0; g < g_count; ++g) {
      if (g == h) continue;
      for (int s = p.first_rank(g); s < p.first_rank(g) + q; ++s)
        for (int d = p.first_rank(h); d < p.first_rank(h) + q; ++d) {
          const int64_t base = lay.staging_offset(d, s);
          for (int64_t w = 0; w < lay.send_count(s, d); ++w) {
            gl.staging_rank[h].push_back(d - p.first_rank(h));
            gl.staging_row[h].push_back(lay.recv_from_staging[d][static_cast<size_t>(base + w)]);
          }
        }
    }
  }
  return gl;
}

}  // namespace rackep::kernels
