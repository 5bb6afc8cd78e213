#include "traces/import_common.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "traces/rng.hpp"

namespace rackep {
namespace fs = std::filesystem;

void LayerFilter::observe(int layer, int64_t routed, const std::string& source, const std::string& field) {
  seen_[layer] += routed;
  if (routed > 0 && !model_layers_.empty() &&
      std::find(model_layers_.begin(), model_layers_.end(), layer) == model_layers_.end())
    throw InputError(source, field,
                     "layer " + std::to_string(layer) + " routes " + std::to_string(routed) +
                         " tokens but is outside the model's MoE layers (--layers " +
                         describe_ids(model_layers_) + ")");
}

std::vector<int> LayerFilter::kept(const std::string& source) const {
  std::vector<int> out;
  if (!model_layers_.empty()) {
    for (int l : model_layers_)
      if (seen_.count(l)) out.push_back(l);
  } else {
    for (const auto& [l, routed] : seen_)
      if (routed > 0) out.push_back(l);
  }
  if (out.empty())
    throw InputError(source, "layers",
                     model_layers_.empty() ? "no layer routes any token"
                                           : "none of the layers " + describe_ids(model_layers_) +
                                                 " given by --layers is in the data");
  return out;
}

std::vector<int> LayerFilter::dropped_empty() const {
  std::vector<int> out;
  for (const auto& [l, routed] : seen_)
    if (routed == 0 && std::find(model_layers_.begin(), model_layers_.end(), l) == model_layers_.end())
      out.push_back(l);
  return out;
}

std::vector<int> LayerFilter::missing() const {
  std::vector<int> out;
  for (int l : model_layers_)
    if (!seen_.count(l)) out.push_back(l);
  return out;
}

RecordListStream::RecordListStream(TraceManifest manifest, std::vector<TraceRecord> records)
    : manifest_(std::move(manifest)), records_(std::move(records)) {
  manifest_.num_records = static_cast<int64_t>(records_.size());
}

bool RecordListStream::next(TraceRecord& record) {
  if (next_ >= records_.size()) return false;
  record = records_[next_++];
  return true;
}

TraceManifest write_trace_atomic(RecordStream& in, const std::string& dir, TraceWriterOptions options,
                                 const std::vector<std::pair<std::string, std::string>>& side_files) {
  return write_trace(in, dir, options, side_files);
}

MappedFile::MappedFile(std::string path) : path_(std::move(path)) {
  const int fd = ::open(path_.c_str(), O_RDONLY);
  if (fd < 0) throw InputError(path_, "file", std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path_, "file", "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      throw InputError(path_, "file", std::string("cannot map: ") + std::strerror(errno));
    }
    data_ = static_cast<const unsigned char*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "file", "cannot open");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

int64_t tokens_for_row(int64_t max_row, int top_k) {
  return std::max<int64_t>(1, (max_row + top_k - 1) / top_k);
}

int32_t checked_count(int64_t v, const std::string& source, const std::string& field) {
  if (v < 0 || v > INT32_MAX)
    throw InputError(source, field, "count " + std::to_string(v) + " is outside [0, 2^31)");
  return static_cast<int32_t>(v);
}

std::string describe_ids(const std::vector<int>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ids[i]);
    if (j > i) out += ".." + std::to_string(ids[j]);
    i = j + 1;
  }
  return out.empty() ? "(none)" : out;
}

void spread_global_loads(const std::vector<int64_t>& global, uint64_t seed, int64_t record, LoadMatrix& out) {
  const int n = out.num_ranks();
  const int num_experts = out.num_experts();
  for (int e = 0; e < num_experts; ++e) {
    const int64_t w = global[static_cast<size_t>(e)];
    const int64_t base = w / n;
    const int rem = static_cast<int>(w - base * n);
    for (int s = 0; s < n; ++s) out.at(s, e) = static_cast<int32_t>(base);
    if (rem == 0) continue;
    // Ranks offset, offset + 1, ... (mod n) get the rem leftovers: (s - offset) mod n < rem.
    int s = static_cast<int>(
        derive_seed(seed, kStreamTokens, static_cast<uint64_t>(record), static_cast<uint64_t>(e)) %
        static_cast<uint64_t>(n));
    for (int j = 0; j < rem; ++j) {
      ++out.at(s, e);
      if (++s == n) s = 0;
    }
  }
}

}  // namespace rackep
