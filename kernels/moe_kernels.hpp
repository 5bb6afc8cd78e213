// File: kernels/moe_kernels.hpp
// Token-path kernels of one rank (device code in kernels/moe_kernels.cu), launched on that rank's stream:
//   scatter_rows  dispatch by push: entry e = (token e / top_k, k = e % top_k) of this source copies the
//   token's
//                 hidden row to row dest_row[e] of buffer dst_bufs[dest_buf[e]] and records its origin
//                 (source rank, token, k). Between emulated ranks on one GPU the buffers are the receivers'
//                 own allocations; before NCCL, one send buffer in wire order (core/ref_dispatch.hpp).
//   permute_rows  dst[dst_row[i]] = src[src_row[i]] with origins (NCCL staging -> final rows, and back for
//   combine). swiglu        act = bf16(silu(g) * u) over [rows, 2F] GEMM outputs (g = first F columns, u =
//   the rest). combine       out[t][h] = sum over k in order of prob[t][k] * y(row of (t, k))[h], fp32 with
//   separately
//                 rounded products and sums, bit-identical to combine_reference.
// Rows are bf16 (uint16_t bits); hidden must be a multiple of 8 (16-byte vectors).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace rackep::kernels {

struct ScatterArgs {
  const uint16_t* x = nullptr;  ///< [num_tokens, hidden] rows of this source
  int64_t num_entries = 0;      ///< num_tokens * top_k
  int top_k = 1;
  int64_t hidden = 0;
  int32_t source_rank = 0;
  const int32_t* dest_buf = nullptr;    ///< [num_entries] index into dst_bufs; null = buffer 0
  const int64_t* dest_row = nullptr;    ///< [num_entries]
  uint16_t* const* dst_bufs = nullptr;  ///< device array of row buffers
  int32_t* const* dst_origin =
      nullptr;  ///< device array of [rows, 3] origin buffers (same indexing); may be null
};
void launch_scatter_rows(const ScatterArgs& args, cudaStream_t stream);

struct PermuteArgs {
  const uint16_t* src = nullptr;
  const int32_t* src_origin = nullptr;  ///< may be null (then dst_origin is not written)
  uint16_t* dst = nullptr;
  int32_t* dst_origin = nullptr;
  const int64_t* src_row = nullptr;  ///< null = identity
  const int64_t* dst_row = nullptr;  ///< null = identity
  int64_t count = 0;
  int64_t hidden = 0;
};
void launch_permute_rows(const PermuteArgs& args, cudaStream_t stream);

/// Row i goes from src_bufs[src_buf[i]] row src_row[i] to dst_bufs[dst_buf[i]] row dst_row[i], with its
/// 3 origin ints when both origin arrays are given (between the emulated ranks of one GPU and its NCCL
/// send/staging buffers: kernels/ep_exchange.hpp). Null index arrays mean buffer 0 / identity rows.
struct MoveRowsArgs {
  const uint16_t* const* src_bufs = nullptr;  ///< device array of row buffers
  const int32_t* src_buf = nullptr;
  const int64_t* src_row = nullptr;
  const int32_t* const* src_origin = nullptr;  ///< device array of origin buffers; may be null
  uint16_t* const* dst_bufs = nullptr;
  const int32_t* dst_buf = nullptr;
  const int64_t* dst_row = nullptr;
  int32_t* const* dst_origin = nullptr;  ///< may be null
  int64_t count = 0;
  int64_t hidden = 0;
};
void launch_move_rows(const MoveRowsArgs& args, cudaStream_t stream);

/// gu [rows, 2F] -> act [rows, F].
void launch_swiglu(const uint16_t* gu, uint16_t* act, int64_t rows, int64_t ffn, cudaStream_t stream);

struct CombineArgs {
  const uint16_t* const* y_bufs = nullptr;  ///< device array of expert-output buffers
  const int32_t* y_buf = nullptr;           ///< [num_tokens * top_k] buffer of each entry; null = buffer 0
  const int64_t* y_row = nullptr;           ///< [num_tokens * top_k]
  const float* probs = nullptr;             ///< [num_tokens * top_k]
  float* out = nullptr;                     ///< [num_tokens, hidden]
  int64_t num_tokens = 0;
  int top_k = 1;
  int64_t hidden = 0;
};
void launch_combine(const CombineArgs& args, cudaStream_t stream);

/// x[t][h] = origin_payload(source, t, h) of core/ref_dispatch.hpp, bit for bit, for t < num_tokens.
void launch_fill_payload(uint16_t* x, int32_t source, int64_t num_tokens, int64_t hidden,
                         cudaStream_t stream);

}  // namespace rackep::kernels
