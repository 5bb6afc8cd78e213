// File: traces/trace_reader.hpp
// TraceReader: streams the records of a canonical trace directory (format in traces/trace_format.hpp) one by
// one. It reads each record straight from its chunk file into the caller's LoadMatrix, so memory stays at one
// record plus one chunk's index, whatever the size of the trace. Everything is validated as it is read.
// Usage:
//   rackep::TraceReader reader("traces/esft-ep8");
//   rackep::TraceRecord r;
//   while (reader.next(r)) { /* r.layer, r.microbatch, r.loads */ }
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "traces/trace_format.hpp"

namespace rackep {

/// Streams a canonical trace directory record by record (see the file banner).
class TraceReader final : public RecordStream {
 public:
  /// Opens trace directory `dir`: parses manifest.json strictly and checks every chunk's .npy headers and
  /// file sizes (shapes (n, N, L) int32 and (n, 2) int64 with n = the chunk's record count). Throws
  /// InputError naming the file and field (a missing manifest means an incomplete or wrong directory).
  explicit TraceReader(std::string dir);
  ~TraceReader() override;

  /// The parsed manifest.json.
  const TraceManifest& manifest() const override { return manifest_; }

  /// Reads the next record. Throws InputError(chunk file, field, ...) for a layer not in the manifest
  /// ("index"), records out of the canonical order ("index"), negative counts ("loads") or a source rank
  /// routing more than tokens_per_rank * top_k tokens ("loads").
  bool next(TraceRecord& record) override;

  /// The trace directory.
  const std::string& dir() const { return dir_; }

 private:
  void open_chunk(size_t chunk);

  std::string dir_;
  TraceManifest manifest_;
  size_t chunk_ = 0;             // index of the open chunk
  size_t next_chunk_ = 0;        // index of the chunk to open next
  int64_t record_in_chunk_ = 0;  // next record within it
  std::vector<int64_t> index_;   // the open chunk's index, n * 2
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> loads_file_;
  std::string loads_path_;
  std::string index_path_;
  int64_t last_microbatch_ = -1;
  int last_position_ = -1;
};

}  // namespace rackep
