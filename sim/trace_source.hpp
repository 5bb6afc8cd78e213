// File: sim/trace_source.hpp
// Where the simulator's routing comes from (--trace):
//   <directory>                a canonical trace (traces/trace_format.hpp)
//   esft:<task>[,<task>...]    the shipped ESFT DeepSeek-V2-Lite per-token routing
//   (traces/data/esft-deepseek-v2-lite),
//                              composed into N ranks x T tokens per microbatch (pack policy, seeded)
//   synthetic:<zipf|drift|switch>   the seeded generators of traces/synthetic.hpp for the model's experts and
//   top-k
// and how many keys each token attends to: exact per-sequence causal positions for composed per-token traces,
// otherwise sequences of --seq-len tokens packed per rank.
// Usage:
//   TraceSpec spec;  spec.text = "esft:intent";  spec.num_ranks = 32;  spec.tokens_per_rank = 256;
//   TraceSource src(spec);
//   TraceRecord r;  while (src.stream().next(r)) { ... }
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "traces/composer.hpp"
#include "traces/trace_format.hpp"

namespace rackep::sim {

struct TraceSpec {
  std::string text;     ///< --trace
  int num_ranks = 0;    ///< required by generated traces; checked against a directory's manifest (0 = any)
  int num_experts = 0;  ///< the model's routed experts (generated traces use it; files must match)
  int top_k = 0;        ///< the model's top-k
  int num_layers = 0;   ///< MoE layers to generate (synthetic)
  int64_t tokens_per_rank = 0;  ///< T for generated traces (0 = a default per kind)
  int64_t microbatches = 0;     ///< synthetic: microbatches to generate (0 = 8)
  double imbalance = 2.0;       ///< synthetic: target rank imbalance
  uint64_t seed = 1;            ///< composition / generation seed
  int seq_len = 0;              ///< tokens per sequence for traces without sequence structure (0 = T)
};

class TraceSource {
 public:
  /// Opens the source. Throws InputError naming the file (or "--trace") and field.
  explicit TraceSource(const TraceSpec& spec);
  ~TraceSource();

  RecordStream& stream() { return *stream_; }
  const TraceManifest& manifest() const { return stream_->manifest(); }
  /// One line saying what is replayed.
  const std::string& description() const { return description_; }
  /// Sum over the tokens of (microbatch, rank) of the keys each attends to under causal attention, with a
  /// sliding window of `window` keys (0 = none). `tokens` is the rank's token count in that microbatch.
  double attended_keys(int64_t microbatch, int rank, double tokens, int window) const;
  /// Sequence length used for traces without sequence structure.
  int seq_len() const { return seq_len_; }

 private:
  std::unique_ptr<RecordStream> stream_;
  const TokenComposer* composer_ = nullptr;  // set for composed per-token traces
  std::string description_;
  int seq_len_ = 0;
};

}  // namespace rackep::sim
