// Device code of the GPU UltraEP planner (kernels/planner.hpp). The algorithm mirrors core/ultraep.cpp line
// by line; any change there must be made here too (the gpu test compares both on random and edge-case loads).
#include "kernels/planner.hpp"

#include <climits>
#include <cmath>

#include "core/error.hpp"
#include "kernels/check.hpp"

namespace rackep::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kRanksPerLane = 3;           // domains of up to 96 ranks
constexpr int64_t kOptionScale = 1000000;  // core/ultraep.cpp: options quantised to 1e-6

struct DeviceOptions {
  int64_t bt_scaled;
  int64_t eps_scaled;
  int64_t q_min;
  int64_t keep_if_loaded;
};

__device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

__device__ __forceinline__ int64_t warp_sum(int64_t v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Shared-memory views of one domain.
struct Smem {
  int64_t* w;          // [E]
  int64_t* rl;         // [G]
  int32_t* src_order;  // [G]
  int32_t* exp_order;  // [E]
  int64_t* exported;   // [E]
  int32_t* ex_e;       // [kWarps * cap]
  int32_t* ex_t;       // [kWarps * cap]
  int64_t* ex_q;       // [kWarps * cap]
  int32_t* n_exports;  // [kWarps]
  int32_t* feasible;   // [kWarps]
};

// docs/ALGORITHMS.md §2.4.2 run by one warp (all 32 lanes); exports go to this warp's buffer. Lane l owns the
// ranks l, l + 32, l + 64 and keeps their slack / slots used / occupancy stamp in registers.
__device__ bool warp_oracle(const Smem& sm, int g, int m, int r_slots, int64_t t, bool dynamic_floor,
                            const DeviceOptions& opt, int warp, int cap) {
  const int lane = threadIdx.x & 31;
  int64_t slack[kRanksPerLane];
  int used[kRanksPerLane];
  int occ[kRanksPerLane];
  int64_t my_excess = 0, my_slack = 0;
#pragma unroll
  for (int i = 0; i < kRanksPerLane; ++i) {
    const int r = lane + 32 * i;
    slack[i] = 0;
    used[i] = 0;
    occ[i] = -1;
    if (r < g) {
      const int64_t rl = sm.rl[r];
      my_excess += rl > t ? rl - t : 0;
      slack[i] = t > rl ? t - rl : 0;
      my_slack += slack[i];
    }
  }
  int64_t run_excess = warp_sum(my_excess);
  int64_t run_slack = warp_sum(my_slack);
  int n = 0;
  int32_t* ex_e = sm.ex_e + warp * cap;
  int32_t* ex_t = sm.ex_t + warp * cap;
  int64_t* ex_q = sm.ex_q + warp * cap;
  bool ok = true;
  if (run_excess != 0) {
    if (run_excess > run_slack) ok = false;
    int stamp = 0;
    for (int idx = 0; ok && idx < g; ++idx) {
      const int src = sm.src_order[idx];
      int64_t need = sm.rl[src] > t ? sm.rl[src] - t : 0;
      if (need == 0) continue;
      if (need > run_slack) {
        ok = false;
        break;
      }
      for (int i = 0; i < m && need > 0; ++i) {
        const int e = sm.exp_order[src * m + i];
        const int64_t keep = sm.w[e] > 0 ? opt.keep_if_loaded : 0;
        // exported[e] is always 0 here: each expert belongs to one source rank, visited once per oracle call.
        int64_t avail = sm.w[e] - keep > 0 ? sm.w[e] - keep : 0;
        ++stamp;
#pragma unroll
        for (int k = 0; k < kRanksPerLane; ++k)
          if (lane + 32 * k == src) occ[k] = stamp;
        while (need > 0 && avail > 0) {
          int count = 0;
          int64_t best_slack = -1;
          int best_rank = INT_MAX;
#pragma unroll
          for (int k = 0; k < kRanksPerLane; ++k) {
            const int r = lane + 32 * k;
            if (r < g && slack[k] > 0 && used[k] < r_slots && occ[k] != stamp) {
              ++count;
              if (slack[k] > best_slack) {  // ranks ascend within a lane: strict keeps the lowest on ties
                best_slack = slack[k];
                best_rank = r;
              }
            }
          }
          count = static_cast<int>(warp_sum(count));
          for (int off = 16; off > 0; off >>= 1) {
            const int64_t os = __shfl_xor_sync(0xffffffffu, best_slack, off);
            const int orank = __shfl_xor_sync(0xffffffffu, best_rank, off);
            if (os > best_slack || (os == best_slack && orank < best_rank)) {
              best_slack = os;
              best_rank = orank;
            }
          }
          if (count == 0) break;
          const int64_t fl = dynamic_floor ? max(int64_t{1}, ceil_div(need, count)) : opt.q_min;
          const int64_t q = min(need, min(best_slack, avail));
          if (q < fl) break;
          if (lane == 0 && n < cap) {
            ex_e[n] = e;
            ex_t[n] = best_rank;
            ex_q[n] = q;
          }
          ++n;
#pragma unroll
          for (int k = 0; k < kRanksPerLane; ++k)
            if (lane + 32 * k == best_rank) {
              slack[k] -= q;
              used[k] += 1;
              occ[k] = stamp;
            }
          run_excess -= q;
          run_slack -= q;
          need -= q;
          avail -= q;
        }
      }
      if (need > 0 || run_excess > run_slack) ok = false;
    }
  }
  if (lane == 0) {
    sm.n_exports[warp] = ok ? n : 0;
    sm.feasible[warp] = ok ? 1 : 0;
  }
  return ok;
}

__global__ void __launch_bounds__(kThreads)
    planner_kernel(int n_ranks, int g, int m, int r_slots, DeviceOptions opt,
                   const int64_t* __restrict__ w_all, int32_t* __restrict__ p2l, int32_t* __restrict__ l2p,
                   int32_t* __restrict__ lcnt, int64_t* __restrict__ quota,
                   int64_t* __restrict__ threshold_out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int e_count = g * m;
  const int cap = g * r_slots > 0 ? g * r_slots : 1;
  Smem sm;
  unsigned char* p = smem_raw;
  sm.w = reinterpret_cast<int64_t*>(p);
  p += sizeof(int64_t) * e_count;
  sm.exported = reinterpret_cast<int64_t*>(p);
  p += sizeof(int64_t) * e_count;
  sm.rl = reinterpret_cast<int64_t*>(p);
  p += sizeof(int64_t) * g;
  sm.ex_q = reinterpret_cast<int64_t*>(p);
  p += sizeof(int64_t) * kWarps * cap;
  sm.src_order = reinterpret_cast<int32_t*>(p);
  p += sizeof(int32_t) * g;
  sm.exp_order = reinterpret_cast<int32_t*>(p);
  p += sizeof(int32_t) * e_count;
  sm.ex_e = reinterpret_cast<int32_t*>(p);
  p += sizeof(int32_t) * kWarps * cap;
  sm.ex_t = reinterpret_cast<int32_t*>(p);
  p += sizeof(int32_t) * kWarps * cap;
  sm.n_exports = reinterpret_cast<int32_t*>(p);
  p += sizeof(int32_t) * kWarps;
  sm.feasible = reinterpret_cast<int32_t*>(p);

  const int d = blockIdx.x;
  const int rank0 = d * g;
  const int l0 = rank0 * m;
  const int s_slots = m + r_slots;
  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;

  // §2.4.1 preprocessing.
  for (int e = threadIdx.x; e < e_count; e += kThreads) {
    sm.w[e] = w_all[l0 + e];
    sm.exported[e] = 0;
  }
  __syncthreads();
  for (int r = threadIdx.x; r < g; r += kThreads) {
    int64_t sum = 0;
    for (int i = 0; i < m; ++i) sum += sm.w[r * m + i];
    sm.rl[r] = sum;
  }
  __syncthreads();
  for (int r = threadIdx.x; r < g; r += kThreads) {  // stable sort by RL descending
    int pos = 0;
    for (int o = 0; o < g; ++o) pos += (sm.rl[o] > sm.rl[r] || (sm.rl[o] == sm.rl[r] && o < r)) ? 1 : 0;
    sm.src_order[pos] = r;
  }
  for (int e = threadIdx.x; e < e_count; e += kThreads) {  // per rank, stable sort of masters by W descending
    const int base = (e / m) * m;
    int pos = 0;
    for (int o = base; o < base + m; ++o) pos += (sm.w[o] > sm.w[e] || (sm.w[o] == sm.w[e] && o < e)) ? 1 : 0;
    sm.exp_order[base + pos] = e;
  }
  __syncthreads();

  // Every warp computes the same totals (no barrier needed).
  int64_t my_total = 0, my_max = 0;
  for (int r = lane; r < g; r += 32) {
    my_total += sm.rl[r];
    my_max = max(my_max, sm.rl[r]);
  }
  const int64_t total = warp_sum(my_total);
  for (int off = 16; off > 0; off >>= 1) my_max = max(my_max, __shfl_xor_sync(0xffffffffu, my_max, off));
  const int64_t mx = my_max;

  int64_t accepted_t = mx;
  int chosen = -1;  // warp buffer holding the accepted exports; -1 = none
  if (r_slots > 0 && g > 1) {
    // §2.4.3 (a): the three dynamic-floor tries, one per warp, first feasible wins.
    int64_t lo = ceil_div(total * opt.bt_scaled, int64_t{g} * kOptionScale);
    int64_t hi = max(mx, lo);
    const int64_t t0 = max(ceil_div(lo * (kOptionScale + opt.eps_scaled), kOptionScale), lo);
    const int64_t step = max(int64_t{1}, (hi + 99) / 100);
    int64_t tries[3];
    tries[0] = t0;
    tries[1] = min(hi, tries[0] + step);
    tries[2] = min(hi, tries[1] + step);
    if (warp < 3) warp_oracle(sm, g, m, r_slots, tries[warp], true, opt, warp, cap);
    __syncthreads();
    for (int i = 0; i < 3 && chosen < 0; ++i)
      if (sm.feasible[i]) {
        chosen = i;
        accepted_t = tries[i];
      }
    __syncthreads();
    if (chosen < 0) {
      // (b) fallback with the static floor.
      const int64_t lo_cap = min(max(lo, ceil_div(total, g)), hi);
      if (warp == 0) warp_oracle(sm, g, m, r_slots, lo_cap, false, opt, 0, cap);
      __syncthreads();
      const bool cap_ok = sm.feasible[0] != 0;
      __syncthreads();
      if (cap_ok) {
        chosen = 0;
        accepted_t = lo_cap;
      } else {
        lo = min(lo_cap + 1, hi);
        while (lo < hi) {
          const int64_t range = hi - lo;
          int64_t probes[kWarps];
          bool valid[kWarps];
          for (int i = 0; i < kWarps; ++i) {
            probes[i] = range <= 4 ? lo + i : lo + range * (i + 1) / 5;
            valid[i] = range <= 4 ? probes[i] < hi : true;
          }
          if (valid[warp]) {
            warp_oracle(sm, g, m, r_slots, probes[warp], false, opt, warp, cap);
          } else if (lane == 0) {
            sm.feasible[warp] = 0;
          }
          __syncthreads();
          int f = -1;
          for (int i = 0; i < kWarps && f < 0; ++i)
            if (sm.feasible[i]) f = i;
          __syncthreads();
          if (range <= 4) {
            lo = hi = f >= 0 ? probes[f] : hi;
          } else if (f >= 0) {
            hi = probes[f];
            if (f > 0) lo = probes[f - 1] + 1;
          } else {
            lo = probes[3] + 1;
          }
        }
        if (warp == 0) warp_oracle(sm, g, m, r_slots, lo, false, opt, 0, cap);
        __syncthreads();
        chosen = 0;  // core asserts this final call is feasible
        accepted_t = lo;
      }
    }
  }
  const int n_exp = chosen >= 0 ? sm.n_exports[chosen] : 0;
  const int32_t* ex_e = sm.ex_e + (chosen >= 0 ? chosen : 0) * cap;
  const int32_t* ex_t = sm.ex_t + (chosen >= 0 ? chosen : 0) * cap;
  const int64_t* ex_q = sm.ex_q + (chosen >= 0 ? chosen : 0) * cap;

  // §2.4.4 emit: masters first, then replicas in creation order.
  for (int x = threadIdx.x; x < n_exp; x += kThreads)
    atomicAdd(reinterpret_cast<unsigned long long*>(&sm.exported[ex_e[x]]),
              static_cast<unsigned long long>(ex_q[x]));
  __syncthreads();
  for (int idx = threadIdx.x; idx < e_count * n_ranks; idx += kThreads) {
    const int e = idx / n_ranks;
    const int c = idx % n_ranks;
    const size_t row = static_cast<size_t>(l0 + e) * n_ranks;
    const int master_phys = (rank0 + e / m) * s_slots + e % m;
    l2p[row + c] = c == 0 ? master_phys : -1;
    quota[row + c] = c == 0 ? sm.w[e] - sm.exported[e] : 0;
    if (c == 0) {
      int instances = 1;
      for (int x = 0; x < n_exp; ++x) instances += ex_e[x] == e ? 1 : 0;
      lcnt[l0 + e] = instances;
    }
  }
  for (int idx = threadIdx.x; idx < g * s_slots; idx += kThreads) {
    const int r = idx / s_slots;
    const int slot = idx % s_slots;
    p2l[(rank0 + r) * s_slots + slot] = slot < m ? (rank0 + r) * m + slot : -1;
  }
  __syncthreads();
  for (int x = threadIdx.x; x < n_exp; x += kThreads) {
    int slot_idx = 0, j = 1;
    for (int o = 0; o < x; ++o) {
      slot_idx += ex_t[o] == ex_t[x] ? 1 : 0;
      j += ex_e[o] == ex_e[x] ? 1 : 0;
    }
    const int l = l0 + ex_e[x];
    const int phys = (rank0 + ex_t[x]) * s_slots + m + slot_idx;
    p2l[phys] = l;
    l2p[static_cast<size_t>(l) * n_ranks + j] = phys;
    quota[static_cast<size_t>(l) * n_ranks + j] = ex_q[x];
  }
  if (threadIdx.x == 0) threshold_out[d] = accepted_t;
}

DeviceOptions device_options(const UltraEpOptions& o) {
  DeviceOptions d{};
  d.bt_scaled = std::max<int64_t>(std::llround(o.balance_threshold * kOptionScale), kOptionScale);
  d.eps_scaled = std::max<int64_t>(std::llround(o.eps * kOptionScale), 0);
  d.q_min = o.min_tokens_per_replica;
  d.keep_if_loaded = o.allow_zero_master_quota ? 0 : 1;
  return d;
}

}  // namespace

size_t planner_smem_bytes(const ClusterShape& shape) {
  const size_t g = static_cast<size_t>(shape.domain_size);
  const size_t e = g * static_cast<size_t>(shape.num_masters);
  const size_t cap = std::max<size_t>(g * static_cast<size_t>(shape.num_redundant), 1);
  return sizeof(int64_t) * (2 * e + g + kWarps * cap) +
         sizeof(int32_t) * (g + e + 2 * kWarps * cap + 2 * kWarps);
}

std::string validate(const PlannerArgs& a) {
  try {
    a.shape.validate("cluster shape");
  } catch (const InputError& e) {
    return e.what();
  }
  const UltraEpOptions& o = a.options;
  if (!(o.balance_threshold >= 0.0) || !std::isfinite(o.balance_threshold))
    return "balance_threshold must be >= 0";
  if (!(o.eps >= -1.0) || !std::isfinite(o.eps)) return "eps must be a finite number >= -1";
  if (o.min_tokens_per_replica < 1) return "min_tokens_per_replica must be >= 1";
  if (a.shape.domain_size > 32 * kRanksPerLane)
    return "domain_size " + std::to_string(a.shape.domain_size) + " exceeds the GPU planner's limit of 96";
  if (!a.w || !a.p2l || !a.l2p || !a.lcnt || !a.quota || !a.threshold) return "null device pointer";
  int device = 0;
  int optin = 0;
  RACKEP_CUDA_CHECK(cudaGetDevice(&device));
  RACKEP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (planner_smem_bytes(a.shape) > static_cast<size_t>(optin))
    return "planner needs " + std::to_string(planner_smem_bytes(a.shape)) +
           " B of shared memory, device allows " + std::to_string(optin);
  return {};
}

void launch_planner(const PlannerArgs& a, cudaStream_t stream) {
  const std::string why = validate(a);
  if (!why.empty()) throw InputError("gpu planner", "args", why);
  const size_t smem = planner_smem_bytes(a.shape);
  if (smem > 48 * 1024)
    RACKEP_CUDA_CHECK(cudaFuncSetAttribute(planner_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
  planner_kernel<<<a.shape.num_domains(), kThreads, smem, stream>>>(
      a.shape.num_ranks, a.shape.domain_size, a.shape.num_masters, a.shape.num_redundant,
      device_options(a.options), a.w, a.p2l, a.l2p, a.lcnt, a.quota, a.threshold);
  RACKEP_CUDA_LAUNCH_CHECK("planner_kernel");
}

}  // namespace rackep::kernels
