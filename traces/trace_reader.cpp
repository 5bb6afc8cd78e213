#include "traces/trace_reader.hpp"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"
#include "traces/npy.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

NpyArrayInfo check_array(const std::string& path, NpyDtype dtype, const std::vector<int64_t>& shape) {
  const NpyArrayInfo info = read_npy_info(path);
  if (info.dtype != dtype)
    throw InputError(path, "descr",
                     std::string("expected '") + npy_descr(dtype) + "', got '" + npy_descr(info.dtype) + "'");
  if (info.shape != shape) {
    auto show = [](const std::vector<int64_t>& s) {
      std::string t = "(";
      for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
      return t + ")";
    };
    throw InputError(path, "shape",
                     "expected " + show(shape) + " from the manifest, got " + show(info.shape));
  }
  return info;
}

}  // namespace

TraceReader::TraceReader(std::string dir) : dir_(std::move(dir)), loads_file_(nullptr, &std::fclose) {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec))
    throw InputError(dir_, "trace", "not a trace directory (no such directory)");
  const std::string manifest_path = (fs::path(dir_) / kManifestFile).string();
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in)
    throw InputError(manifest_path, "manifest",
                     "missing: not a trace directory, or the writer did not finish (no close())");
  std::ostringstream text;
  text << in.rdbuf();
  manifest_ = manifest_from_json(text.str(), manifest_path);
  for (const TraceChunk& c : manifest_.chunks) {
    check_array((fs::path(dir_) / c.loads_file).string(), NpyDtype::kInt32,
                {c.num_records, manifest_.num_ranks, manifest_.num_experts});
    check_array((fs::path(dir_) / c.index_file).string(), NpyDtype::kInt64, {c.num_records, 2});
  }
}

TraceReader::~TraceReader() = default;

void TraceReader::open_chunk(size_t chunk) {
  const TraceChunk& c = manifest_.chunks[chunk];
  const std::string index_path = (fs::path(dir_) / c.index_file).string();
  const NpyArrayInfo index_info = check_array(index_path, NpyDtype::kInt64, {c.num_records, 2});
  {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(index_path.c_str(), "rb"), &std::fclose);
    if (!f) throw InputError(index_path, "file", "cannot open for reading");
    index_.resize(static_cast<size_t>(c.num_records) * 2);
    if (std::fseek(f.get(), index_info.data_offset_bytes, SEEK_SET) != 0 ||
        std::fread(index_.data(), sizeof(int64_t), index_.size(), f.get()) != index_.size())
      throw InputError(index_path, "size", "file ends before its data (truncated)");
  }
  index_path_ = index_path;
  loads_path_ = (fs::path(dir_) / c.loads_file).string();
  const NpyArrayInfo loads_info =
      check_array(loads_path_, NpyDtype::kInt32, {c.num_records, manifest_.num_ranks, manifest_.num_experts});
  loads_file_.reset(std::fopen(loads_path_.c_str(), "rb"));
  if (!loads_file_) throw InputError(loads_path_, "file", "cannot open for reading");
  if (std::fseek(loads_file_.get(), loads_info.data_offset_bytes, SEEK_SET) != 0)
    throw InputError(loads_path_, "size", "cannot seek to the data");
  chunk_ = chunk;
  record_in_chunk_ = 0;
}

bool TraceReader::next(TraceRecord& record) {
  if (!loads_file_ || record_in_chunk_ >= manifest_.chunks[chunk_].num_records) {
    loads_file_.reset();
    if (next_chunk_ >= manifest_.chunks.size()) return false;
    open_chunk(next_chunk_++);
  }
  const size_t i = static_cast<size_t>(record_in_chunk_);
  const int64_t layer = index_[2 * i];
  const int64_t microbatch = index_[2 * i + 1];
  auto where = [&] { return "record " + std::to_string(i) + ": "; };
  const int pos =
      (layer < INT32_MIN || layer > INT32_MAX) ? -1 : manifest_.layer_position(static_cast<int>(layer));
  if (pos < 0)
    throw InputError(index_path_, "index",
                     where() + "layer " + std::to_string(layer) + " is not in the manifest");
  if (microbatch < 0) throw InputError(index_path_, "index", where() + "negative microbatch");
  if (microbatch < last_microbatch_ || (microbatch == last_microbatch_ && pos <= last_position_))
    throw InputError(index_path_, "index",
                     where() + "(layer " + std::to_string(layer) + ", microbatch " +
                         std::to_string(microbatch) +
                         ") breaks the order: microbatch-major, then layer in manifest order");
  last_microbatch_ = microbatch;
  last_position_ = pos;

  if (record.loads.num_ranks() != manifest_.num_ranks || record.loads.num_experts() != manifest_.num_experts)
    record.loads = LoadMatrix(manifest_.num_ranks, manifest_.num_experts);
  std::vector<int32_t>& v = record.loads.values();
  if (std::fread(v.data(), sizeof(int32_t), v.size(), loads_file_.get()) != v.size())
    throw InputError(loads_path_, "size", "file ends before record " + std::to_string(i) + " (truncated)");
  record.layer = static_cast<int>(layer);
  record.microbatch = microbatch;
  ++record_in_chunk_;

  const int64_t cap = manifest_.tokens_per_rank * manifest_.top_k;
  for (int s = 0; s < manifest_.num_ranks; ++s) {
    const int32_t* row = record.loads.row(s);
    int64_t sum = 0;
    int32_t min_value = 0;
    for (int l = 0; l < manifest_.num_experts; ++l) {
      sum += row[l];
      min_value = std::min(min_value, row[l]);
    }
    if (min_value < 0) record.loads.validate(loads_path_ + " " + where().substr(0, where().size() - 2));
    if (sum > cap)
      throw InputError(loads_path_, "loads",
                       where() + "source rank " + std::to_string(s) + " routes " + std::to_string(sum) +
                           " tokens, more than tokens_per_rank * top_k = " + std::to_string(cap));
  }
  return true;
}

}  // namespace rackep
