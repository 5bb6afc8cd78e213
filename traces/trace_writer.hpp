// File: traces/trace_writer.hpp
// TraceWriter: streams records into a new canonical trace directory (format in traces/trace_format.hpp).
// Records are buffered for one chunk only, written as two .npy files every `records_per_chunk` records, and
// manifest.json is written by close(). The writer never overwrites: the output directory must not exist.
// Usage:
//   rackep::TraceWriter w("out/trace", manifest, {/*records_per_chunk=*/256});
//   for (const auto& r : records) w.append(r);
//   const rackep::TraceManifest& done = w.close();
//   // or, from any RecordStream:  rackep::write_trace(stream, "out/trace");
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "traces/trace_format.hpp"

namespace rackep {

/// Options of TraceWriter.
struct TraceWriterOptions {
  int64_t records_per_chunk = 256;  ///< records per chunk file pair (> 0); memory use is one chunk
};

/// Writes a new canonical trace directory chunk by chunk (see the file banner).
class TraceWriter {
 public:
  /// Creates directory `dir` (and missing parents). `manifest` describes the records to come; its chunks
  /// and num_records are filled in by the writer. Throws InputError(dir, "output", ...) if `dir` already
  /// exists or cannot be created, InputError(dir, "records_per_chunk", ...) for a non-positive chunk size,
  /// and the errors of TraceManifest::validate.
  TraceWriter(std::string dir, TraceManifest manifest, TraceWriterOptions options = {});
  /// Without close() (e.g. after an exception) the directory keeps its chunk files but gets no manifest.json,
  /// so readers reject it as incomplete.
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  /// Appends one record. Throws InputError(dir, field, ...) when its shape differs from the manifest
  /// ("loads"), a count is negative ("loads"), a source rank routes more than tokens_per_rank * top_k tokens
  /// ("loads"), the layer is not in manifest.layers ("layer"), or it breaks the canonical order
  /// ("microbatch").
  void append(const TraceRecord& record);

  /// Writes an extra file next to the manifest (e.g. the license notice of the data a trace derives from).
  /// `name` must be a plain file name that is not yet present.
  void add_side_file(const std::string& name, const std::string& contents);

  /// Flushes the last chunk and writes manifest.json; returns the final manifest. Call once.
  const TraceManifest& close();

  /// Bytes written so far (chunk files, side files and, after close(), the manifest).
  int64_t bytes_written() const { return bytes_written_; }
  /// The output directory.
  const std::string& dir() const { return dir_; }

 private:
  void flush_chunk();
  void write_file(const std::string& name, const std::string& header, const void* data, size_t bytes);

  std::string dir_;
  TraceManifest manifest_;
  TraceWriterOptions options_;
  std::vector<int32_t> loads_;  // buffered records of the open chunk, n * N * L
  std::vector<int64_t> index_;  // n * 2
  int64_t last_microbatch_ = -1;
  int last_position_ = -1;
  int64_t bytes_written_ = 0;
  bool closed_ = false;
};

/// Writes every record of `in` (and `side_files`, name -> contents) into a new trace directory `dir` and
/// returns its manifest (the stream's manifest plus chunks). Written through OutputDir
/// (core/output_file.hpp): into a hidden temporary beside `dir`, renamed when complete, removed on error or
/// SIGINT/SIGTERM, so `dir` either does not exist or is a complete trace. `dir` must not exist. Throws like
/// TraceWriter and like in.next(), naming `dir` (never the temporary).
TraceManifest write_trace(RecordStream& in, const std::string& dir, TraceWriterOptions options = {},
                          const std::vector<std::pair<std::string, std::string>>& side_files = {});

}  // namespace rackep
