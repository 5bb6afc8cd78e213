// File: traces/import_common.hpp
// What every importer of recorded routing shares (docs/TRACES.md, "Normalisations an importer must handle"):
//   ImportOptions    what the user says about the model (its MoE layer ids, top-k, replication, ranks, seed);
//   ImportReport     what an importer found and what it had to assume, printed by `rackep trace import`;
//   LayerFilter      what --layers means for every format: the layers to import (source ids); dense
//                    (all-zero) layers are dropped, unlisted ones left out, both reported;
//   RecordListStream a RecordStream over records held in memory (small formats);
//   write_trace_atomic  writes a trace into a hidden temporary directory beside the target and renames it at
//                    the end, so a failed import leaves nothing behind.
// Usage:
//   rackep::ImportReport report;
//   auto stream = rackep::open_trtllm_stats(dir, options, report);   // any importer
//   rackep::write_trace_atomic(*stream, "out/trace", {256}, report.side_files);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "traces/trace_format.hpp"
#include "traces/trace_writer.hpp"

namespace rackep {

/// What the user tells an importer about the model and the recording. Zero/empty means "derive from the
/// data".
struct ImportOptions {
  std::vector<int> layers;      ///< the model's MoE layer ids in the source's numbering; empty = as found
  int top_k = 0;                ///< experts per token, for formats that do not record it
  int num_experts = 0;          ///< logical experts, for formats that do not record it; 0 = max id + 1
  int num_ranks = 0;            ///< source ranks to spread global-only loads over (UltraEP profiler)
  int64_t tokens_per_rank = 0;  ///< T; 0 = the smallest T that holds the largest source row
  int replication = 1;          ///< R-fold replication under TP attention: counts are divided by it
  uint64_t seed = 0;            ///< seeds the spread of global loads and the order of composed sequences
  std::string policy = "pack";  ///< composition of per-token sequences (traces/composer.hpp): pack or whole
  std::string model;            ///< model name for the manifest; empty = the importer's default
  std::string dump;  ///< SGLang: the dump id (the {time} of its file names) to import; empty = the only one
  bool merge_dumps =
      false;  ///< SGLang: merge every dump of the inputs by (forward pass, rank), as its reader does
  std::string placement;  ///< TensorRT-LLM: the EP load balancer's placement (moe_load_balancer.yaml)
};

/// What an import found and assumed; `rackep trace import` prints both lists.
struct ImportReport {
  std::string format;                ///< e.g. "trtllm"
  std::vector<std::string> found;    ///< one line per fact read from the input
  std::vector<std::string> assumed;  ///< one line per assumption or loss
  std::vector<std::pair<std::string, std::string>>
      side_files;  ///< (name, contents) to copy next to the trace
};

/// What `--layers` means for every format: the MoE layers to import, by the ids the source uses (model-global
/// for SGLang, TensorRT-LLM, UltraEP, JSONL and vLLM's capture buffer; MoE-local for vLLM's legacy nested
/// lists). With a list, exactly the listed layers are kept, in list order; a listed layer the data does not
/// hold is InputError("--layers", "--layers", ...); layers that route tokens but are not listed are left out
/// and reported. Without a list, the layers with any routed token are kept (ascending). Layers that route no
/// token (dense layers: zero rows, all-zero capture buffers) are dropped and reported either way.
class LayerFilter {
 public:
  explicit LayerFilter(std::vector<int> model_layers) : model_layers_(std::move(model_layers)) {}
  /// Records that `layer` appears in the data, with `routed` tokens in total (0 = a dense/empty row).
  void observe(int layer, int64_t routed);
  /// The kept layer ids in record order. Throws InputError(source, "layers", ...) when none is left and
  /// InputError("--layers", ...) when a listed layer is not in the data.
  std::vector<int> kept(const std::string& source) const;
  /// Layers seen with no routed token and not listed (reported as dense), ascending.
  std::vector<int> dropped_empty() const;
  /// Layers that route tokens but are not listed in --layers (left out), ascending.
  std::vector<int> left_out() const;
  /// Appends the dense and left-out layers to report.assumed (nothing when there are none).
  void describe(ImportReport& report) const;

 private:
  std::vector<int> model_layers_;
  std::map<int, int64_t> seen_;  // layer -> routed tokens
};

/// A RecordStream over records in memory, in canonical order (checked by the writer).
class RecordListStream final : public RecordStream {
 public:
  RecordListStream(TraceManifest manifest, std::vector<TraceRecord> records);
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override;

 private:
  TraceManifest manifest_;
  std::vector<TraceRecord> records_;
  size_t next_ = 0;
};

/// Writes `in` as a canonical trace at `dir` (which must not exist) together with `side_files`: the same as
/// write_trace (traces/trace_writer.hpp), which writes through OutputDir (core/output_file.hpp) into a hidden
/// temporary beside `dir`, renamed only when complete; on an error or SIGINT/SIGTERM nothing partial is left.
TraceManifest write_trace_atomic(RecordStream& in, const std::string& dir, TraceWriterOptions options,
                                 const std::vector<std::pair<std::string, std::string>>& side_files = {});

/// A whole file mapped read-only (mmap); the pages are read on demand, so memory is what is touched.
class MappedFile {
 public:
  /// Maps `path`. Throws InputError(path, "file", ...) when it cannot be opened or mapped.
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

/// The whole file as a string; InputError(path, "file", ...) when it cannot be read.
std::string read_file_text(const std::string& path);

/// The smallest T with T * top_k >= max_row (at least 1).
int64_t tokens_for_row(int64_t max_row, int top_k);

/// Checked conversion of a count read from a file: InputError(source, field, ...) unless 0 <= v <= INT32_MAX.
int32_t checked_count(int64_t v, const std::string& source, const std::string& field);

/// "0..3, 5, 7..9" for a list of ints (for reports).
std::string describe_ids(const std::vector<int>& ids);

/// Decodes standard base64 (RFC 4648, '=' padding, whitespace ignored). Throws InputError(source, field, ...)
/// for any other character or a bad length.
std::string decode_base64(const std::string& text, const std::string& source, const std::string& field);

/// Spreads global per-expert loads `global` [L] evenly over the N rows of `out` (N x L): source rank s gets
/// floor(W/N), plus one when (s - o) mod N < W mod N, where the offset o = derive_seed(seed, kStreamTokens,
/// record, expert) mod N (a splitmix64 hash, cheap per element) spreads the remainders without favouring low
/// ranks. Column sums equal `global` exactly.
void spread_global_loads(const std::vector<int64_t>& global, uint64_t seed, int64_t record, LoadMatrix& out);

}  // namespace rackep
