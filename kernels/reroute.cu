// Device code of the GPU reroute (kernels/reroute.hpp), mirroring core/reroute.cpp.
#include "kernels/reroute.hpp"

#include "core/error.hpp"
#include "kernels/check.hpp"

namespace rackep::kernels {
namespace {

constexpr int kTileTokens = 128;
constexpr int kWarpsPerBlock = 4;
constexpr int kMaxExperts = 4096;  // per-warp shared counters: 4 warps x 4096 x 4 B = 64 KiB

__device__ __forceinline__ int64_t gcd64(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Kernel 1: counts[tile][l] of the tile's (token, k) entries; one warp per tile.
__global__ void reroute_count_kernel(int64_t num_entries, int entries_per_tile, int num_experts,
                                     const int32_t* __restrict__ ids, int32_t* __restrict__ tile_counts,
                                     int32_t* __restrict__ error) {
  extern __shared__ int32_t counts_smem[];
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  int32_t* counts = counts_smem + warp * num_experts;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  const int64_t num_tiles = (num_entries + entries_per_tile - 1) / entries_per_tile;
  if (tile >= num_tiles) return;
  for (int l = lane; l < num_experts; l += 32) counts[l] = 0;
  __syncwarp();
  const int64_t begin = tile * entries_per_tile;
  const int64_t end = min(begin + entries_per_tile, num_entries);
  for (int64_t f = begin + lane; f < end; f += 32) {
    const int32_t id = ids[f];
    if (id < 0 || id >= num_experts) {
      atomicExch(error, 1);
      continue;
    }
    atomicAdd(&counts[id], 1);
  }
  __syncwarp();
  for (int l = lane; l < num_experts; l += 32) tile_counts[tile * num_experts + l] = counts[l];
}

// Kernel 2: exclusive prefix over tiles per expert, count check, interleave stride (§2.6).
__global__ void reroute_scan_kernel(int64_t num_tiles, int num_experts, int num_ranks, bool has_quota,
                                    const int32_t* __restrict__ tile_counts,
                                    const int32_t* __restrict__ prefix, const int32_t* __restrict__ lcnt,
                                    int32_t* __restrict__ tile_prefix, int64_t* __restrict__ stride,
                                    int32_t* __restrict__ error) {
  const int l = blockIdx.x * blockDim.x + threadIdx.x;
  if (l >= num_experts) return;
  int32_t run = 0;
  for (int64_t t = 0; t < num_tiles; ++t) {
    tile_prefix[t * num_experts + l] = run;
    run += tile_counts[t * num_experts + l];
  }
  const int c = lcnt[l];
  const int64_t q = prefix[static_cast<int64_t>(l) * num_ranks + c - 1];
  if (run != q) atomicExch(error, 2);
  int64_t s = 1;
  if (has_quota && q > 1) {
    s = q / 2 + 1;
    if (s >= q) s = q - 1;
    if (s < 1) s = 1;
    while (gcd64(s, q) != 1) {
      s += 1;
      if (s >= q) s = 1;
    }
  }
  stride[l] = s;
}

// Kernel 3: ordinal of every entry and its physical id; one warp per tile, chunks of 32 entries in order.
__global__ void reroute_assign_kernel(int64_t num_entries, int entries_per_tile, int num_experts,
                                      int num_ranks, bool has_quota, bool interleave,
                                      const int32_t* __restrict__ ids, const int32_t* __restrict__ prefix,
                                      const int32_t* __restrict__ l2p, const int32_t* __restrict__ lcnt,
                                      const int32_t* __restrict__ tile_prefix,
                                      const int64_t* __restrict__ stride, int32_t* __restrict__ physical) {
  extern __shared__ int32_t running_smem[];
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  int32_t* running = running_smem + warp * num_experts;
  const int64_t tile = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  const int64_t num_tiles = (num_entries + entries_per_tile - 1) / entries_per_tile;
  if (tile >= num_tiles) return;
  for (int l = lane; l < num_experts; l += 32) running[l] = 0;
  __syncwarp();
  const int64_t begin = tile * entries_per_tile;
  const int64_t end = min(begin + entries_per_tile, num_entries);
  for (int64_t base = begin; base < end; base += 32) {
    const int64_t f = base + lane;
    const bool active = f < end;
    int32_t id = active ? ids[f] : -1;
    if (id >= num_experts) id = -1;
    if (id < -1) id = -1;
    const unsigned peers = __match_any_sync(0xffffffffu, id);
    const int rank_in_chunk = __popc(peers & ((1u << lane) - 1u));
    int32_t out = -1;
    if (active && id >= 0) {
      const int64_t k =
          static_cast<int64_t>(tile_prefix[tile * num_experts + id]) + running[id] + rank_in_chunk;
      const int c = lcnt[id];
      const int32_t* p = prefix + static_cast<int64_t>(id) * num_ranks;
      int j = 0;
      if (has_quota) {
        const int64_t q = p[c - 1];
        int64_t kk = k;
        if (interleave && q > 1) kk = (k * stride[id] + id % q) % q;
        while (j < c && kk >= p[j]) ++j;
        if (j >= c) j = c - 1;
      } else {
        j = static_cast<int>(k % c);
      }
      out = l2p[static_cast<int64_t>(id) * num_ranks + j];
    }
    if (active) physical[f] = out;
    __syncwarp();
    // The highest lane of each group of equal ids advances that id's running count.
    if (id >= 0 && (peers >> lane) == 1u) running[id] += __popc(peers);
    __syncwarp();
  }
}

struct Workspace {
  int32_t* tile_counts;
  int32_t* tile_prefix;
  int64_t* stride;
};

Workspace carve(const RerouteArgs& a, void* ws, int64_t num_tiles) {
  auto* base = static_cast<unsigned char*>(ws);
  Workspace w{};
  w.stride = reinterpret_cast<int64_t*>(base);
  base += sizeof(int64_t) * static_cast<size_t>(a.num_experts);
  w.tile_counts = reinterpret_cast<int32_t*>(base);
  base += sizeof(int32_t) * static_cast<size_t>(num_tiles * a.num_experts);
  w.tile_prefix = reinterpret_cast<int32_t*>(base);
  return w;
}

int64_t tiles_of(const RerouteArgs& a) {
  return (a.num_tokens + kTileTokens - 1) / kTileTokens;
}

}  // namespace

std::string validate(const RerouteArgs& a) {
  if (a.num_tokens < 0) return "num_tokens must be >= 0";
  if (a.top_k <= 0) return "top_k must be positive";
  if (a.num_experts <= 0 || a.num_experts > kMaxExperts)
    return "num_experts must be in [1, " + std::to_string(kMaxExperts) + "]";
  if (a.num_ranks <= 0) return "num_ranks must be positive";
  if (a.num_tokens > 0 && (!a.topk_ids || !a.physical)) return "null token pointer";
  if (!a.prefix || !a.l2p || !a.lcnt || !a.error) return "null plan pointer";
  if (a.num_tokens * a.top_k > (int64_t{1} << 31) - 1) return "more than 2^31 routed entries";
  return {};
}

size_t workspace_bytes(const RerouteArgs& a) {
  const int64_t tiles = std::max<int64_t>(tiles_of(a), 1);
  return sizeof(int64_t) * static_cast<size_t>(a.num_experts) +
         2 * sizeof(int32_t) * static_cast<size_t>(tiles * a.num_experts);
}

void launch_reroute(const RerouteArgs& a, void* workspace, cudaStream_t stream) {
  const std::string why = validate(a);
  if (!why.empty()) throw InputError("gpu reroute", "args", why);
  const int64_t tiles = tiles_of(a);
  const int64_t entries = a.num_tokens * a.top_k;
  const int per_tile = kTileTokens * a.top_k;
  const Workspace w = carve(a, workspace, std::max<int64_t>(tiles, 1));
  const size_t smem = sizeof(int32_t) * kWarpsPerBlock * static_cast<size_t>(a.num_experts);
  if (smem > 48 * 1024) {
    RACKEP_CUDA_CHECK(cudaFuncSetAttribute(reroute_count_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
    RACKEP_CUDA_CHECK(cudaFuncSetAttribute(reroute_assign_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  }
  const unsigned blocks = static_cast<unsigned>((tiles + kWarpsPerBlock - 1) / kWarpsPerBlock);
  if (blocks > 0) {
    reroute_count_kernel<<<blocks, 32 * kWarpsPerBlock, smem, stream>>>(entries, per_tile, a.num_experts,
                                                                        a.topk_ids, w.tile_counts, a.error);
    RACKEP_CUDA_LAUNCH_CHECK("reroute_count_kernel");
  }
  const unsigned scan_blocks = static_cast<unsigned>((a.num_experts + 127) / 128);
  reroute_scan_kernel<<<scan_blocks, 128, 0, stream>>>(tiles, a.num_experts, a.num_ranks, a.has_quota,
                                                       w.tile_counts, a.prefix, a.lcnt, w.tile_prefix,
                                                       w.stride, a.error);
  RACKEP_CUDA_LAUNCH_CHECK("reroute_scan_kernel");
  if (blocks > 0) {
    reroute_assign_kernel<<<blocks, 32 * kWarpsPerBlock, smem, stream>>>(
        entries, per_tile, a.num_experts, a.num_ranks, a.has_quota, a.interleave, a.topk_ids, a.prefix, a.l2p,
        a.lcnt, w.tile_prefix, w.stride, a.physical);
    RACKEP_CUDA_LAUNCH_CHECK("reroute_assign_kernel");
  }
}

}  // namespace rackep::kernels
