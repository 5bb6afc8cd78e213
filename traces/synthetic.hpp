// File: traces/synthetic.hpp
// Seeded synthetic routing. SyntheticStream is a RecordStream of per-source-rank top-k routing whose
// expected rank imbalance is a target rho (docs/ALGORITHMS.md 2.9), optionally non-stationary, because
// history-based balancers fail exactly when popularity moves. Kinds:
// - zipf: stationary. Popularity position p = r*M + m has the 2.9 weight w[p]; it is expert placement[p].
// - drift: the ranking moves gradually. Step s = microbatch / D uses placement base[(p + s) mod L], i.e.
//   the hot spot walks one expert id per step; between steps the weights blend linearly,
//   (1 - f) * step s + f * step s+1 with f = (microbatch mod D) / D, so loads change smoothly.
// - switch: hot experts change abruptly; every P microbatches a new seeded random placement.
// Placements are block permutations (ranks permuted, then experts within each rank), which keep every
// rank's expected load, so the expected imbalance stays rho (drift: exactly at steps that are multiples of
// M, close otherwise). With layer_variation every layer starts from its own seeded placement; otherwise the
// first placement is the identity.
// Sampling: each token of a rank draws k distinct experts by sequential weighted sampling without
// replacement (draw j picks among the experts not chosen yet with probability proportional to weight),
// done exactly by rejection from a Walker alias table with a linear-scan fallback. Randomness is SeededRng
// (traces/rng.hpp), one derived stream per (microbatch, layer, rank): identical output with any standard
// library. UltraEP's torch streams are not reproduced, only the distribution. rho = 1 uses the reference's
// deterministic pattern instead: token t of rank r picks positions (t*k + i + r*k) mod L, i < k.
// Variable token counts (2.9 step 6) are round(g*T), g ~ Normal(0.5, 0.35) clamped to [0, 1], drawn once per
// (microbatch, rank) and shared by all layers.
// Usage:
//   rackep::SynthConfig c;
//   c.kind = rackep::SynthKind::kSwitch;
//   c.layers = {0, 1, 2};
//   rackep::SyntheticStream gen(c);
//   rackep::TraceRecord r;
//   while (gen.next(r)) use(r);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "traces/trace_format.hpp"

namespace rackep {

/// The generator kinds (see the file banner).
enum class SynthKind { kZipf, kDrift, kSwitch };

/// "zipf", "drift", "switch"; the parse throws InputError(source, "kind", ...) for anything else.
const char* synth_kind_name(SynthKind kind);
/// Inverse of synth_kind_name().
SynthKind parse_synth_kind(const std::string& text, const std::string& source);

/// Everything a synthetic trace depends on.
struct SynthConfig {
  SynthKind kind = SynthKind::kZipf;
  int num_ranks = 64;               ///< N source ranks
  int num_experts = 256;            ///< L logical experts; M = L / N masters per rank
  int top_k = 8;                    ///< k experts per token
  int64_t tokens_per_rank = 8192;   ///< T tokens per source rank per microbatch (the maximum when variable)
  std::vector<int> layers = {0};    ///< layer ids, in record order
  int64_t num_microbatches = 1;     ///< microbatches 0 .. num_microbatches-1
  double imbalance = 2.0;           ///< target expected rank imbalance rho >= 1
  uint64_t seed = 33;               ///< the one seed everything derives from
  bool variable_tokens = false;     ///< §2.9 step 6 token counts instead of a fixed T
  bool layer_variation = false;     ///< each layer gets its own seeded placement
  int64_t drift_every = 8;          ///< D: microbatches per one-expert step (drift)
  int64_t switch_every = 16;        ///< P: microbatches per placement (switch)
  std::string model = "synthetic";  ///< model name written to the manifest

  /// Throws InputError(source, field, ...) with field the CLI flag name ("--ranks", "--experts", ...) for a
  /// non-positive size, L % N != 0, k > L, rho < 1 or above what alpha <= 8 reaches for this shape,
  /// non-positive D or P, duplicate layers, or sizes whose products overflow.
  void validate(const std::string& source) const;
};

/// The generator of the file banner, as a RecordStream of config.num_microbatches x layers records.
class SyntheticStream final : public RecordStream {
 public:
  /// Validates `config` (source "synthetic trace") and solves for alpha.
  explicit SyntheticStream(SynthConfig config);

  /// Shape, layers, record count; provenance holds the kind, target, alpha and seed.
  const TraceManifest& manifest() const override { return manifest_; }
  /// The next record in the canonical order (generated on demand; nothing is cached).
  bool next(TraceRecord& record) override;

  /// Random access: the loads of (layer, microbatch); next() returns exactly these.
  LoadMatrix generate(int layer, int64_t microbatch) const;
  /// placement[p] = expert id at popularity position p for (layer, microbatch); a permutation of [0, L).
  /// For drift between two steps this is the placement of the step reached (s = microbatch / D).
  std::vector<int> placement(int layer, int64_t microbatch) const;
  /// Drift only: the placement of step s (the others ignore it).
  std::vector<int> drift_placement(int layer, int64_t step) const;
  /// Tokens of source rank `rank` in `microbatch` (T, or the variable count).
  int64_t tokens(int64_t microbatch, int rank) const;

  /// The Zipf exponent solved for config.imbalance (§2.9 step 4).
  double alpha() const { return alpha_; }
  /// §2.9 weights per popularity position (sum 1).
  const std::vector<float>& weights() const { return weights_; }
  /// The validated configuration.
  const SynthConfig& config() const { return config_; }

 private:
  std::vector<int> block_permutation(uint64_t stream_a, uint64_t stream_b) const;
  std::vector<int> base_placement(int layer) const;
  uint64_t layer_stream(int layer) const;

  SynthConfig config_;
  TraceManifest manifest_;
  double alpha_ = 0.0;
  std::vector<float> weights_;
  std::vector<uint64_t> alias_keep_;  // Walker alias table over positions: keep i if 32 random bits < this
  std::vector<int> alias_index_;
  int64_t next_microbatch_ = 0;
  size_t next_layer_ = 0;
};

}  // namespace rackep
