// File: core/ref_bf16.hpp
// bfloat16 on the CPU: the storage type of expert weights and activations in the kernel backend's references.
// A bf16 value is the upper 16 bits of an IEEE float32; float -> bf16 rounds to nearest, ties to even (the
// rounding of CUDA's __float2bfloat16_rn), NaN stays a quiet NaN, infinities and signed zeros are kept.
// Usage:
//   uint16_t b = rackep::float_to_bf16(3.14159f);   // 0x4049 (3.140625)
//   float f = rackep::bf16_to_float(b);
#pragma once

#include <cstdint>
#include <cstring>

namespace rackep {

/// float32 -> bf16 bits, round to nearest even; any NaN becomes the quiet NaN with the input's sign bit.
inline uint16_t float_to_bf16(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0)
    return static_cast<uint16_t>(((bits >> 16) & 0x8000u) | 0x7fc0u);
  const uint32_t rounding_bias = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

/// bf16 bits -> float32 (exact).
inline float bf16_to_float(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out = 0.0f;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

/// float32 rounded through bf16 and back.
inline float round_to_bf16(float value) {
  return bf16_to_float(float_to_bf16(value));
}

}  // namespace rackep
