// File: traces/rng.hpp
// SeededRng: the one random source of traces/. std::mt19937_64 (whose output sequence the C++ standard fixes)
// plus hand-written transforms, never std::*_distribution (whose output differs between standard libraries),
// so a seed gives the same trace with libstdc++, libc++ and MSVC. derive_seed() gives independent streams per
// (seed, purpose, indices) so records can be generated in any order.
// Usage:
//   rackep::SeededRng rng(rackep::derive_seed(seed, rackep::kStreamTokens, microbatch, layer, rank));
//   double u = rng.uniform();        // [0, 1)
//   uint64_t i = rng.below(10);      // {0..9}
#pragma once

#include <cstdint>
#include <random>

namespace rackep {

/// Purposes of derived streams, so that different uses of one seed never share a stream.
enum : uint64_t {
  kStreamTokens = 1,       ///< per-token expert sampling
  kStreamTokenCounts = 2,  ///< variable token counts per (microbatch, rank)
  kStreamPermutation = 3,  ///< expert popularity permutations
  kStreamShuffle = 4,      ///< sequence order of per-token composers
};

/// splitmix64 finaliser chain over (seed, purpose, a, b, c): a well-mixed 64-bit seed for one stream.
uint64_t derive_seed(uint64_t seed, uint64_t purpose, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0);

/// A deterministic random source: std::mt19937_64 plus hand-written transforms.
class SeededRng {
 public:
  /// Seeds the engine with `seed` (std::mt19937_64(seed): fixed by the standard).
  explicit SeededRng(uint64_t seed) : engine_(seed) {}

  /// Raw 64 random bits.
  uint64_t bits() { return engine_(); }
  /// Uniform double in [0, 1) with 53 random bits: (bits >> 11) * 2^-53.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n) without modulo bias (Lemire's multiply-and-reject); n > 0.
  uint64_t below(uint64_t n);
  /// Standard normal deviate by the Box-Muller transform (uses two uniforms per call, no caching).
  double normal();

 private:
  std::mt19937_64 engine_;
};

}  // namespace rackep
