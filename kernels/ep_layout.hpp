// File: kernels/ep_layout.hpp
// Placement of N expert-parallel ranks on G GPUs (contiguous blocks of N / G ranks, each an emulated rank
// with its own allocations and stream) and the GPU-level exchange layout derived from core's DispatchLayout
// (core/ref_dispatch.hpp). Host code only; the device side is kernels/ep_exchange.hpp.
//   Dispatch: source s pushes entry e with one scatter kernel into dst_bufs[entry_buf[s][e]] at row
//             entry_row[s][e], where buffers 0..q-1 are the receive buffers of the q ranks on s's own GPU
//             (device-side permutation, row = DispatchLayout::dest_row) and buffer q is the GPU's send buffer
//             (rows to other GPUs). The send buffer of GPU g holds, for each other GPU h ascending, one
//             segment of gpu_send_count(g, h) rows ordered by (source rank, destination rank, wire position);
//             one ncclSend/ncclRecv pair per (g, h) moves it into h's staging buffer at staging_offset(h, g),
//             and h unpacks staging row k into local rank staging_rank[h][k], row staging_row[h][k].
//   Combine:  h gathers y rows in staging order, sends each segment back, and g receives it at
//             send_offset(g, h) of its return buffer, which then sits at the same rows as the send buffer:
//             combine reads entry (s, e) from buffer entry_buf[s][e] (local y or the return buffer), row
//             entry_row[s][e].
// With G = 1 every entry is local and the layout is exactly the emulated single-GPU dispatch.
// Usage:
//   EpPlacement place{n, gpus};  place.validate("--gpus");
//   GpuExchangeLayout gl = build_gpu_exchange_layout(build_dispatch_layout(shape, ids, k), place);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ref_dispatch.hpp"

namespace rackep::kernels {

struct EpPlacement {
  int num_ranks = 1;  ///< N EP ranks
  int num_gpus = 1;   ///< G GPUs; N % G == 0

  /// Throws InputError(source, "gpus", ...) unless N >= 1, 1 <= G <= N and N % G == 0.
  void validate(const std::string& source) const;
  int ranks_per_gpu() const { return num_ranks / num_gpus; }
  int gpu_of(int rank) const { return rank / ranks_per_gpu(); }
  int first_rank(int gpu) const { return gpu * ranks_per_gpu(); }
};

/// The largest G <= available that divides num_ranks (1 when available < 1).
int gpus_for_ranks(int num_ranks, int available);

struct GpuExchangeLayout {
  EpPlacement placement;
  /// Per source rank, per entry (t * top_k + i): buffer index on the source's GPU (local destination index
  /// 0..q-1, or q = the GPU's send/return buffer) and the row in it.
  std::vector<std::vector<int32_t>> entry_buf;
  std::vector<std::vector<int64_t>> entry_row;
  std::vector<int64_t>
      gpu_send_counts;  ///< [G * G] rows from GPU g (row) to GPU h (column); 0 on the diagonal
  /// Per GPU h, per staging row: local index of the destination rank on h and its row in that rank's buffer.
  std::vector<std::vector<int32_t>> staging_rank;
  std::vector<std::vector<int64_t>> staging_row;

  int64_t gpu_send_count(int g, int h) const {
    return gpu_send_counts[static_cast<size_t>(g) * placement.num_gpus + h];
  }
  /// First row of the segment g sends to h in g's send (and return) buffer.
  int64_t send_offset(int g, int h) const;
  /// First row of the segment h receives from g in h's staging buffer.
  int64_t staging_offset(int h, int g) const;
  int64_t send_rows(int g) const { return send_offset(g, placement.num_gpus); }
  int64_t staging_rows(int h) const { return static_cast<int64_t>(staging_rank[h].size()); }
};

/// Throws InputError when the layout's rank count differs from the placement's.
GpuExchangeLayout build_gpu_exchange_layout(const DispatchLayout& layout, const EpPlacement& placement);

}  // namespace rackep::kernels
