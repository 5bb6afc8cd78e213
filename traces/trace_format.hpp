// File: traces/trace_format.hpp
// The canonical trace (docs/DESIGN.md "The canonical trace"): a sequence of records (layer, microbatch,
// N x L int32 loads per source rank) plus a manifest. On disk it is a directory:
//   manifest.json            TraceManifest as JSON (format "rackep-trace", format_version 1)
//   chunk-000000.loads.npy   int32 [n, N, L]: loads[i][s][l] = tokens of rank s routed to expert l
//   chunk-000000.index.npy   int64 [n, 2]: index[i] = (layer id, microbatch) of record i
//   chunk-000001.*.npy ...   further chunks, in order
// Record order (the same for files and for every RecordStream): microbatch-major, then layer in the
// order of manifest.layers; microbatch ids increase (they need not be contiguous), and a
// (layer, microbatch) pair appears at most once.
// Usage:
//   void consume(rackep::RecordStream& in) {
//     rackep::TraceRecord r;
//     while (in.next(r)) use(r.layer, r.microbatch, r.loads);
//   }
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/load_matrix.hpp"

namespace rackep {

/// The only trace format version this code reads and writes.
constexpr int kTraceFormatVersion = 1;

/// One chunk of a trace directory: two .npy files holding `num_records` consecutive records.
struct TraceChunk {
  std::string loads_file;   ///< file name inside the trace directory, e.g. "chunk-000000.loads.npy"
  std::string index_file;   ///< e.g. "chunk-000000.index.npy"
  int64_t num_records = 0;  ///< n, the first dimension of both arrays
};

/// What a trace is: shape of the loads, how many records, and how it was made.
struct TraceManifest {
  int format_version = kTraceFormatVersion;
  std::string model;            ///< free text, e.g. "deepseek-ai/ESFT-vanilla-lite" or "synthetic zipf"
  int num_ranks = 0;            ///< N: source ranks (rows of every load matrix)
  int num_experts = 0;          ///< L: logical experts (columns)
  int top_k = 0;                ///< k: experts per token
  int64_t tokens_per_rank = 0;  ///< T: tokens per source rank per microbatch (an upper bound where they vary)
  std::vector<int> layers;      ///< layer ids, in record order within a microbatch; distinct
  int64_t num_records = 0;      ///< records in the trace (for a file: the sum over chunks)
  std::string
      provenance_json;  ///< a JSON object saying how the trace was recorded and composed ("{}" if unknown)
  std::vector<TraceChunk> chunks;  ///< on-disk chunks; empty for in-memory streams

  /// Throws InputError(source, field, ...) unless N, L, k, T are positive, k <= L, layers are non-empty and
  /// distinct, num_records >= 0, provenance_json is a JSON object, chunk record counts are positive and sum
  /// to num_records, and chunk file names are plain names (no '/', not "." or "..").
  void validate(const std::string& source) const;

  /// Position of `layer` in `layers`, or -1.
  int layer_position(int layer) const;
};

/// One record: the loads of one MoE layer for one microbatch.
struct TraceRecord {
  int layer = 0;           ///< layer id (one of manifest.layers)
  int64_t microbatch = 0;  ///< microbatch id
  LoadMatrix loads;        ///< N x L; row s = tokens of source rank s per expert
};

/// A source of records in the canonical order. Implemented by TraceReader (files), SyntheticStream
/// (generators) and TokenComposer (per-token traces composed into microbatches), so that commands can plan
/// straight from any of them.
class RecordStream {
 public:
  /// Streams are owned through this interface.
  virtual ~RecordStream() = default;
  /// Describes the records; num_records is exact. Valid for the stream's lifetime.
  virtual const TraceManifest& manifest() const = 0;
  /// Writes the next record into `record` (reusing its storage) and returns true, or returns false at the
  /// end. Throws InputError when the underlying data is malformed.
  virtual bool next(TraceRecord& record) = 0;
};

/// Serialises `manifest` as the manifest.json text (keys in a fixed order, 2-space indent, trailing newline).
std::string manifest_to_json(const TraceManifest& manifest);

/// Parses manifest.json text. Every key of the format is required and no other key is allowed; wrong types,
/// an unknown "format" or "format_version" and the checks of TraceManifest::validate are InputError(source,
/// <key>, ...). `source` names the file in messages.
TraceManifest manifest_from_json(const std::string& text, const std::string& source);

/// The file name of manifest.json inside a trace directory.
constexpr const char* kManifestFile = "manifest.json";

}  // namespace rackep
