// File: core/ref_expert_ffn.hpp
// CPU reference of the expert FFN the kernel backend runs with cuBLAS grouped GEMM: SwiGLU over bf16 weights,
// fp32 accumulation, with the GPU path's rounding points:
//   [g | u] = bf16(x · fc1ᵀ)          fc1 is [2F, H] row-major: rows 0..F-1 gate, rows F..2F-1 up
//   a       = bf16(silu(g) · u)       silu(g) = g / (1 + exp(-g)), in fp32
//   y       = bf16(a · fc2ᵀ)          fc2 is [H, F] row-major
// All matrices are row-major arrays of bf16 bits (core/ref_bf16.hpp). Tokens of a rank's instances are
// grouped by local slot (rows slot_offsets[i] .. slot_offsets[i+1]); slot i uses the weights weights[i].
// Usage:
//   rackep::expert_ffn_reference(x.data(), n, fc1.data(), fc2.data(), dims, y.data());
//   rackep::FfnCompare c = rackep::compare_ffn_outputs(ref, got, n, dims.hidden);  // c.ok
#pragma once

#include <cstdint>
#include <vector>

namespace rackep {

/// Hidden size H and expert FFN size F of one routed expert.
struct FfnDims {
  int64_t hidden = 0;
  int64_t ffn = 0;
  int64_t fc1_elements() const { return 2 * ffn * hidden; }
  int64_t fc2_elements() const { return hidden * ffn; }
  /// Multiply-adds x2 of one token through one expert: 2·(2F·H) + 2·(H·F).
  int64_t flops_per_token() const { return 6 * hidden * ffn; }
};

/// One expert: y[n, H] from x[n, H]. Throws InputError("expert ffn", ...) on non-positive dims or negative n.
void expert_ffn_reference(const uint16_t* x, int64_t num_tokens, const uint16_t* fc1, const uint16_t* fc2,
                          const FfnDims& dims, uint16_t* y);

/// Every local slot of a rank: rows [slot_offsets[i], slot_offsets[i+1]) of x go through fc1[i] / fc2[i].
/// slot_offsets has num_slots + 1 entries starting at 0; fc1/fc2 hold num_slots pointers.
void grouped_expert_ffn_reference(const uint16_t* x, const std::vector<int64_t>& slot_offsets,
                                  const std::vector<const uint16_t*>& fc1,
                                  const std::vector<const uint16_t*>& fc2, const FfnDims& dims, uint16_t* y);

/// Tolerance of GPU vs CPU outputs. The two sides accumulate fp32 in different orders, which can flip the
/// bf16 rounding of an intermediate (2^-8 relative) and of the output (2^-8 relative); both effects stay far
/// below
///   |got - ref| <= kRelTol · |ref| + kAbsTolOfRowRms · rms(ref row)
/// with kRelTol = kAbsTolOfRowRms = 2^-5 for |inputs| <= 1 and weights scaled by 1/sqrt(fan-in).
struct FfnCompare {
  static constexpr double kRelTol = 1.0 / 32.0;
  static constexpr double kAbsTolOfRowRms = 1.0 / 32.0;
  bool ok = true;
  int64_t num_bad = 0;       ///< elements outside the tolerance
  int64_t first_bad = -1;    ///< flat index of the first one
  double max_abs_err = 0.0;  ///< over all elements
  double max_rel_err = 0.0;  ///< |got - ref| / |ref| over elements with ref != 0
};

/// Compares two [num_rows, hidden] bf16 outputs under the tolerance above.
FfnCompare compare_ffn_outputs(const std::vector<uint16_t>& ref, const std::vector<uint16_t>& got,
                               int64_t num_rows, int64_t hidden);

}  // namespace rackep
