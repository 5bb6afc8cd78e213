// File: traces/composer.hpp
// Per-token routing (TokenRouting: whole sequences, each token's top-k expert ids per layer), as per-token
// importers produce it, and TokenComposer, which turns it into per-source-rank microbatches (a
// RecordStream) by an explicit, seeded assignment policy. Public per-token data has no source ranks, so
// this is where they come from. Sequences are first put in a seeded order (Fisher-Yates with SeededRng,
// stream kStreamShuffle), then:
// - pack: the sequences are concatenated in that order and cut into consecutive T-token windows; window w
//   goes to microbatch w / N, source rank w % N (rank-major within a microbatch), like Megatron sequence
//   packing. Sequences may span ranks and microbatches. Every microbatch holds exactly N*T tokens; the
//   tail of the stream that does not fill a whole microbatch (< N*T tokens) is dropped.
// - whole: sequences are never split. Each goes, in order, to the least-filled rank of the open
//   microbatch (lowest rank on ties) if it fits in that rank's T tokens; if not, the microbatch is closed
//   and the sequence opens the next one. Ranks hold at most T tokens (batching of unpacked sequences);
//   every sequence must have at most T tokens. The microbatch left open when the data ends is dropped.
// With passes = P > 1 the order is P independent shuffles of all sequences, one after the other (resampling
// of real sequences, for microbatches larger than the data). Dropped tokens are reported by dropped_tokens()
// and written to the manifest's provenance; nothing is dropped silently. Records follow the canonical order
// (microbatch-major, then layer). Usage:
//   auto routing = std::make_shared<const rackep::TokenRouting>(rackep::read_esft({"data/intent"}));
//   rackep::TokenComposer c(routing, {8, 1024, rackep::ComposePolicy::kPack, /*seed=*/7});
//   rackep::write_trace(c, "out/esft-ep8");
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "traces/import_common.hpp"
#include "traces/trace_format.hpp"

namespace rackep {

/// An expert slot that routes nowhere: -1 padding (a token routed to fewer than k experts) or a row of a
/// capture buffer that holds no routing for that token. Counted by no expert.
constexpr uint16_t kNoExpert = 0xFFFF;

/// Where part of a TokenRouting came from (for summaries).
struct RoutingSource {
  std::string name;  ///< e.g. the task name "intent"
  std::string path;  ///< the directory or file read
  int64_t num_sequences = 0;
  int64_t num_tokens = 0;
};

/// Per-token top-k routing of whole sequences. Tokens are numbered globally: sequence i holds tokens
/// [sequence_offsets[i], sequence_offsets[i+1]). expert_ids[j] holds layer layers[j]: k ids per token,
/// token-major.
struct TokenRouting {
  std::string model;                              ///< model name for the manifest
  int num_experts = 0;                            ///< L
  int top_k = 0;                                  ///< k
  std::vector<int> layers;                        ///< layer ids
  std::vector<int64_t> sequence_offsets{0};       ///< S + 1 prefix offsets
  std::vector<std::vector<uint16_t>> expert_ids;  ///< [layers.size()][num_tokens * k]; kNoExpert = none
  std::vector<RoutingSource> sources;             ///< what was read, in order
  std::string provenance_json = "{}";             ///< JSON object: how the data was recorded
  std::vector<std::pair<std::string, std::string>> notices;  ///< (file name, text): license notices to keep

  /// S, the number of sequences.
  int64_t num_sequences() const { return static_cast<int64_t>(sequence_offsets.size()) - 1; }
  /// Tokens over all sequences.
  int64_t num_tokens() const { return sequence_offsets.back(); }
  /// Tokens of sequence s.
  int64_t sequence_length(int64_t s) const { return sequence_offsets[s + 1] - sequence_offsets[s]; }
};

/// Builds a TokenRouting from per-token captures ([tokens][layers][k] expert ids, token-major), as vLLM's and
/// SGLang's routed-experts outputs and per-token JSONL hold them. Rows are read the way capture buffers are
/// written: a row of k ids all -1, or (k >= 2) all 0, holds no routing (the buffer's zero fill: dense layers,
/// uncaptured tokens) and is counted, never rejected; a single -1 among real ids is padding (kNoExpert).
/// Layers that hold no routed id at all are dense and dropped; --layers picks layers as LayerFilter says.
class TokenRoutingBuilder {
 public:
  /// `num_experts` > 0 bounds the ids (else ids < 65535 and E = largest id + 1).
  explicit TokenRoutingBuilder(int num_experts) : num_experts_(num_experts) {}
  /// Appends `tokens` tokens to the open sequence: ids[(t * layer_ids.size() + j) * k + i] is expert i of
  /// token t in layer layer_ids[j]. Every call must give the same layers and k. Throws InputError(where,
  /// field, ...) for a layer or k count differing from the first call, an id outside [-1, E), or an id
  /// repeated within a token.
  void add(const int64_t* ids, int64_t tokens, const std::vector<int>& layer_ids, int k,
           const std::string& where, const std::string& field);
  /// Closes the open sequence (if it holds tokens).
  void close_sequence();
  /// Tokens in the open sequence.
  int64_t open_tokens() const { return open_tokens_; }
  /// Tokens of all closed sequences.
  int64_t num_tokens() const { return offsets_.back(); }
  /// The routing of the kept layers (`model_layers`: --layers; LayerFilter rules), with `model` and
  /// `provenance_json` left for the caller. Appends to `report` what was dropped. Throws InputError(source,
  /// ...) when nothing routes a token.
  TokenRouting finish(const std::vector<int>& model_layers, const std::string& source, ImportReport& report);

 private:
  int num_experts_;
  int top_k_ = 0, max_id_ = -1;
  std::vector<int> layer_ids_;
  std::vector<std::vector<uint16_t>> ids_;  // per source layer
  std::vector<int64_t> routed_;             // routed (token, expert) pairs per source layer
  std::vector<int64_t> empty_rows_;         // rows without routing per source layer
  int64_t padding_ = 0;
  int64_t open_tokens_ = 0;
  std::vector<int64_t> offsets_{0};
};

/// How sequences become per-rank microbatches (see the file banner).
enum class ComposePolicy { kPack, kWhole };

/// "pack" / "whole"; the parse throws InputError(source, "--policy", ...) otherwise.
const char* compose_policy_name(ComposePolicy policy);
/// Inverse of compose_policy_name().
ComposePolicy parse_compose_policy(const std::string& text, const std::string& source);

/// Parameters of the composition.
struct ComposeConfig {
  int num_ranks = 8;               ///< N source ranks
  int64_t tokens_per_rank = 1024;  ///< T tokens per rank per microbatch (pack: exactly; whole: at most)
  ComposePolicy policy = ComposePolicy::kPack;
  uint64_t seed = 0;  ///< seeds the sequence order
  /// Passes over the data: the sequence order is P independently shuffled permutations of all sequences,
  /// concatenated (pass p shuffled with stream (shuffle, p)); P > 1 reuses real sequences to fill more or
  /// larger microbatches than the data holds once. Recorded in the provenance.
  int passes = 1;
};

/// Consecutive tokens [begin, begin + length) of sequence `sequence` (global token numbering).
struct TokenSpan {
  int64_t sequence = 0;
  int64_t begin = 0;
  int64_t length = 0;
};

/// Per-token routing composed into per-source-rank microbatches by a ComposePolicy (see the file banner).
class TokenComposer final : public RecordStream {
 public:
  /// Plans every microbatch up front. Throws InputError("--ranks" / "--tokens-per-rank", ...) for
  /// non-positive sizes, for a whole-policy sequence longer than T, or when the data fills no microbatch.
  TokenComposer(std::shared_ptr<const TokenRouting> routing, ComposeConfig config);

  /// N, L, k, T and the layers of the routing; provenance adds the composition (policy, seed, drops).
  const TraceManifest& manifest() const override { return manifest_; }
  /// Records in the canonical order: microbatch 0 layer by layer, then microbatch 1, ...
  bool next(TraceRecord& record) override;

  /// The loads of layer position `layer_position` for `microbatch` (random access; next() returns these).
  LoadMatrix loads(size_t layer_position, int64_t microbatch) const;

  /// Complete microbatches composed.
  int64_t num_microbatches() const { return num_microbatches_; }
  /// Spans assigned to (microbatch, rank), in order.
  std::vector<TokenSpan> spans(int64_t microbatch, int rank) const;
  /// Tokens of (microbatch, rank).
  int64_t tokens(int64_t microbatch, int rank) const;
  /// Spans of the dropped tail (pack) or of the sequences of the unfinished last microbatch (whole).
  const std::vector<TokenSpan>& dropped() const { return dropped_; }
  /// Tokens in dropped().
  int64_t dropped_tokens() const;
  /// Sequence ids in the seeded order used.
  const std::vector<int64_t>& sequence_order() const { return order_; }
  /// The routing composed.
  const TokenRouting& routing() const { return *routing_; }

 private:
  std::shared_ptr<const TokenRouting> routing_;
  ComposeConfig config_;
  TraceManifest manifest_;
  std::vector<int64_t> order_;
  std::vector<TokenSpan> spans_;    // all assigned spans, slot by slot
  std::vector<size_t> slot_begin_;  // spans of slot (mb * N + r) are [slot_begin_[i], slot_begin_[i+1])
  std::vector<TokenSpan> dropped_;
  int64_t num_microbatches_ = 0;
  int64_t next_microbatch_ = 0;
  size_t next_layer_ = 0;
};

/// Composes per-token `routing` (a source without ranks) with options.num_ranks / tokens_per_rank / policy /
/// seed, both required (InputError("--ranks", ...) naming `format`), and reports the composition.
std::unique_ptr<RecordStream> compose_routing(TokenRouting routing, const ImportOptions& options,
                                              const std::string& format, ImportReport& report);

}  // namespace rackep
