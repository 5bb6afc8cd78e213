// Device code of the token-path kernels (kernels/moe_kernels.hpp).
#include "kernels/moe_kernels.hpp"

#include <cuda_bf16.h>

#include "kernels/check.hpp"

namespace rackep::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// One warp per entry: 16-byte vectors of the row, origin written by lane 0.
__global__ void __launch_bounds__(kThreads) scatter_rows_kernel(ScatterArgs a) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (e >= a.num_entries) return;
  const int64_t t = e / a.top_k;
  const int b = a.dest_buf != nullptr ? a.dest_buf[e] : 0;
  const int64_t row = a.dest_row[e];
  const int4* src = reinterpret_cast<const int4*>(a.x + t * a.hidden);
  int4* dst = reinterpret_cast<int4*>(a.dst_bufs[b] + row * a.hidden);
  for (int64_t i = lane; i < a.hidden / 8; i += 32) dst[i] = src[i];
  if (lane == 0 && a.dst_origin != nullptr) {
    int32_t* o = a.dst_origin[b] + row * 3;
    o[0] = a.source_rank;
    o[1] = static_cast<int32_t>(t);
    o[2] = static_cast<int32_t>(e % a.top_k);
  }
}

__global__ void __launch_bounds__(kThreads) permute_rows_kernel(PermuteArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (i >= a.count) return;
  const int64_t s = a.src_row != nullptr ? a.src_row[i] : i;
  const int64_t d = a.dst_row != nullptr ? a.dst_row[i] : i;
  const int4* src = reinterpret_cast<const int4*>(a.src + s * a.hidden);
  int4* dst = reinterpret_cast<int4*>(a.dst + d * a.hidden);
  for (int64_t v = lane; v < a.hidden / 8; v += 32) dst[v] = src[v];
  if (lane < 3 && a.src_origin != nullptr && a.dst_origin != nullptr)
    a.dst_origin[d * 3 + lane] = a.src_origin[s * 3 + lane];
}

__global__ void __launch_bounds__(kThreads) move_rows_kernel(MoveRowsArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (i >= a.count) return;
  const int sb = a.src_buf != nullptr ? a.src_buf[i] : 0;
  const int db = a.dst_buf != nullptr ? a.dst_buf[i] : 0;
  const int64_t s = a.src_row != nullptr ? a.src_row[i] : i;
  const int64_t d = a.dst_row != nullptr ? a.dst_row[i] : i;
  const int4* src = reinterpret_cast<const int4*>(a.src_bufs[sb] + s * a.hidden);
  int4* dst = reinterpret_cast<int4*>(a.dst_bufs[db] + d * a.hidden);
  for (int64_t v = lane; v < a.hidden / 8; v += 32) dst[v] = src[v];
  if (lane < 3 && a.src_origin != nullptr && a.dst_origin != nullptr)
    a.dst_origin[db][d * 3 + lane] = a.src_origin[sb][s * 3 + lane];
}

__global__ void __launch_bounds__(kThreads)
    swiglu_kernel(const __nv_bfloat16* gu, __nv_bfloat16* act, int64_t rows, int64_t ffn) {
  const int64_t n = rows * ffn;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int64_t r = i / ffn;
    const int64_t f = i % ffn;
    const float g = __bfloat162float(gu[r * 2 * ffn + f]);
    const float u = __bfloat162float(gu[r * 2 * ffn + ffn + f]);
    const float silu = __fdiv_rn(g, __fadd_rn(1.0f, expf(-g)));
    act[i] = __float2bfloat16_rn(__fmul_rn(silu, u));
  }
}

// One block per token; threads over hidden; k in order with separately rounded products and sums.
__global__ void __launch_bounds__(kThreads) combine_kernel(CombineArgs a) {
  const int64_t t = blockIdx.x;
  if (t >= a.num_tokens) return;
  for (int64_t h = threadIdx.x; h < a.hidden; h += kThreads) {
    float acc = 0.0f;
    for (int k = 0; k < a.top_k; ++k) {
      const int64_t e = t * a.top_k + k;
      const int b = a.y_buf != nullptr ? a.y_buf[e] : 0;
      const __nv_bfloat16* y = reinterpret_cast<const __nv_bfloat16*>(a.y_bufs[b]) + a.y_row[e] * a.hidden;
      acc = __fadd_rn(acc, __fmul_rn(a.probs[e], __bfloat162float(y[h])));
    }
    a.out[t * a.hidden + h] = acc;
  }
}

// Same integer mix as origin_payload: k/16 with k in [-127, 127] is exact in bf16.
__global__ void __launch_bounds__(kThreads)
    fill_payload_kernel(__nv_bfloat16* x, int32_t source, int64_t n, int64_t hidden) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint64_t t = static_cast<uint64_t>(i / hidden);
    const uint64_t h = static_cast<uint64_t>(i % hidden);
    const uint64_t mix = static_cast<uint64_t>(source) * 7919u + t * 104729u + h * 31u;
    const int k = static_cast<int>(mix % 255u) - 127;
    x[i] = __float2bfloat16_rn(static_cast<float>(k) / 16.0f);
  }
}

unsigned blocks_for(int64_t items, int per_block) {
  return static_cast<unsigned>((items + per_block - 1) / per_block);
}

}  // namespace

void launch_scatter_rows(const ScatterArgs& a, cudaStream_t stream) {
  if (a.num_entries == 0) return;
  scatter_rows_kernel<<<blocks_for(a.num_entries, kWarps), kThreads, 0, stream>>>(a);
  RACKEP_CUDA_LAUNCH_CHECK("scatter_rows_kernel");
}

void launch_permute_rows(const PermuteArgs& a, cudaStream_t stream) {
  if (a.count == 0) return;
  permute_rows_kernel<<<blocks_for(a.count, kWarps), kThreads, 0, stream>>>(a);
  RACKEP_CUDA_LAUNCH_CHECK("permute_rows_kernel");
}

void launch_move_rows(const MoveRowsArgs& a, cudaStream_t stream) {
  if (a.count == 0) return;
  move_rows_kernel<<<blocks_for(a.count, kWarps), kThreads, 0, stream>>>(a);
  RACKEP_CUDA_LAUNCH_CHECK("move_rows_kernel");
}

void launch_swiglu(const uint16_t* gu, uint16_t* act, int64_t rows, int64_t ffn, cudaStream_t stream) {
  if (rows == 0) return;
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(blocks_for(rows * ffn, kThreads), 65535 * 8));
  swiglu_kernel<<<grid, kThreads, 0, stream>>>(reinterpret_cast<const __nv_bfloat16*>(gu),
                                               reinterpret_cast<__nv_bfloat16*>(act), rows, ffn);
  RACKEP_CUDA_LAUNCH_CHECK("swiglu_kernel");
}

void launch_combine(const CombineArgs& a, cudaStream_t stream) {
  if (a.num_tokens == 0) return;
  combine_kernel<<<static_cast<unsigned>(a.num_tokens), kThreads, 0, stream>>>(a);
  RACKEP_CUDA_LAUNCH_CHECK("combine_kernel");
}

void launch_fill_payload(uint16_t* x, int32_t source, int64_t num_tokens, int64_t hidden,
                         cudaStream_t stream) {
  if (num_tokens == 0) return;
  const unsigned grid =
      static_cast<unsigned>(std::min<int64_t>(blocks_for(num_tokens * hidden, kThreads), 65535 * 8));
  fill_payload_kernel<<<grid, kThreads, 0, stream>>>(reinterpret_cast<__nv_bfloat16*>(x), source,
                                                     num_tokens * hidden, hidden);
  RACKEP_CUDA_LAUNCH_CHECK("fill_payload_kernel");
}

}  // namespace rackep::kernels
