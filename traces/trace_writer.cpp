#include "traces/trace_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "traces/npy.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

std::string chunk_name(size_t chunk, const char* kind) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "chunk-%06zu.%s.npy", chunk, kind);
  return buf;
}

}  // namespace

TraceWriter::TraceWriter(std::string dir, TraceManifest manifest, TraceWriterOptions options)
    : dir_(std::move(dir)), manifest_(std::move(manifest)), options_(options) {
  if (options_.records_per_chunk <= 0)
    throw InputError(dir_, "records_per_chunk",
                     "must be positive, got " + std::to_string(options_.records_per_chunk));
  manifest_.chunks.clear();
  manifest_.num_records = 0;
  if (manifest_.provenance_json.empty()) manifest_.provenance_json = "{}";
  manifest_.validate(dir_);
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dir_, ec)))
    throw InputError(dir_, "output", "already exists; refusing to overwrite (choose a new path)");
  const fs::path parent = fs::path(dir_).parent_path();
  if (!parent.empty()) {
    fs::create_directories(parent, ec);
    if (ec) throw InputError(dir_, "output", "cannot create parent directory: " + ec.message());
  }
  // NOTE: create_directory is the atomic existence check; a racing writer loses here, never overwrites.
  if (!fs::create_directory(dir_, ec) || ec)
    throw InputError(dir_, "output", ec ? "cannot create directory: " + ec.message() : "already exists");
  // Reserve one chunk up front, at most 2^26 values (256 MiB); larger chunks grow on demand.
  const int64_t record_values = static_cast<int64_t>(manifest_.num_ranks) * manifest_.num_experts;
  const int64_t reserve_records =
      std::min<int64_t>(options_.records_per_chunk, (int64_t{1} << 26) / record_values);
  loads_.reserve(static_cast<size_t>(std::max<int64_t>(reserve_records, 1) * record_values));
}

TraceWriter::~TraceWriter() = default;

void TraceWriter::append(const TraceRecord& r) {
  RACKEP_CHECK(!closed_, "TraceWriter::append after close");
  const TraceManifest& m = manifest_;
  if (r.loads.num_ranks() != m.num_ranks || r.loads.num_experts() != m.num_experts)
    throw InputError(dir_, "loads",
                     "record has shape " + std::to_string(r.loads.num_ranks()) + " x " +
                         std::to_string(r.loads.num_experts()) + ", the manifest says " +
                         std::to_string(m.num_ranks) + " x " + std::to_string(m.num_experts));
  const int pos = m.layer_position(r.layer);
  if (pos < 0)
    throw InputError(dir_, "layer", "layer " + std::to_string(r.layer) + " is not in the manifest");
  if (r.microbatch < 0) throw InputError(dir_, "microbatch", "must be non-negative");
  if (r.microbatch < last_microbatch_ || (r.microbatch == last_microbatch_ && pos <= last_position_))
    throw InputError(dir_, "microbatch",
                     "record (layer " + std::to_string(r.layer) + ", microbatch " +
                         std::to_string(r.microbatch) +
                         ") breaks the order: microbatch-major, then layer in manifest order");
  r.loads.validate(dir_);
  const int64_t cap = m.tokens_per_rank * m.top_k;
  const std::vector<int64_t> rows = r.loads.source_totals();
  for (size_t s = 0; s < rows.size(); ++s)
    if (rows[s] > cap)
      throw InputError(dir_, "loads",
                       "source rank " + std::to_string(s) + " routes " + std::to_string(rows[s]) +
                           " tokens, more than tokens_per_rank * top_k = " + std::to_string(cap));
  last_microbatch_ = r.microbatch;
  last_position_ = pos;
  loads_.insert(loads_.end(), r.loads.values().begin(), r.loads.values().end());
  index_.push_back(r.layer);
  index_.push_back(r.microbatch);
  if (static_cast<int64_t>(index_.size() / 2) >= options_.records_per_chunk) flush_chunk();
}

void TraceWriter::write_file(const std::string& name, const std::string& header, const void* data,
                             size_t bytes) {
  const std::string path = (fs::path(dir_) / name).string();
  // "x": fail if the file exists (C11 exclusive create); nothing is overwritten.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "wbx"), &std::fclose);
  if (!f) throw InputError(path, "output", std::string("cannot create: ") + std::strerror(errno));
  bool ok = std::fwrite(header.data(), 1, header.size(), f.get()) == header.size();
  if (ok && bytes > 0) ok = std::fwrite(data, 1, bytes, f.get()) == bytes;
  const int close_rc = std::fclose(f.release());
  if (!ok || close_rc != 0)
    throw InputError(path, "output", std::string("write failed: ") + std::strerror(errno));
  bytes_written_ += static_cast<int64_t>(header.size() + bytes);
}

void TraceWriter::flush_chunk() {
  const int64_t n = static_cast<int64_t>(index_.size() / 2);
  if (n == 0) return;
  TraceChunk c;
  c.loads_file = chunk_name(manifest_.chunks.size(), "loads");
  c.index_file = chunk_name(manifest_.chunks.size(), "index");
  c.num_records = n;
  write_file(c.loads_file, npy_header(NpyDtype::kInt32, {n, manifest_.num_ranks, manifest_.num_experts}),
             loads_.data(), loads_.size() * sizeof(int32_t));
  write_file(c.index_file, npy_header(NpyDtype::kInt64, {n, 2}), index_.data(),
             index_.size() * sizeof(int64_t));
  manifest_.chunks.push_back(c);
  manifest_.num_records += n;
  loads_.clear();
  index_.clear();
}

void TraceWriter::add_side_file(const std::string& name, const std::string& contents) {
  if (name.empty() || name.find('/') != std::string::npos || name == kManifestFile || name == "." ||
      name == "..")
    throw InputError(dir_, "side file", "'" + name + "' is not an allowed file name");
  write_file(name, contents, nullptr, 0);
}

const TraceManifest& TraceWriter::close() {
  RACKEP_CHECK(!closed_, "TraceWriter::close called twice");
  flush_chunk();
  manifest_.validate(dir_);
  const std::string text = manifest_to_json(manifest_);
  write_file(kManifestFile, text, nullptr, 0);
  closed_ = true;
  return manifest_;
}

TraceManifest write_trace(RecordStream& in, const std::string& dir, TraceWriterOptions options,
                          const std::vector<std::pair<std::string, std::string>>& side_files) {
  OutputDir out(dir, "--out", /*force=*/false);
  TraceManifest done;
  try {
    TraceWriter w(out.temp_path(), in.manifest(), options);
    for (const auto& [name, text] : side_files) w.add_side_file(name, text);
    TraceRecord r;
    while (in.next(r)) w.append(r);
    done = w.close();
  } catch (const InputError& e) {
    out.rethrow(e);
  }
  RACKEP_CHECK(done.num_records == in.manifest().num_records, "stream produced a different record count");
  out.commit();
  return done;
}

}  // namespace rackep
