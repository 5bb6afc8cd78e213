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
#include <array>
#include <climits>
#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "traces/rng.hpp"

namespace rackep {
namespace fs = std::filesystem;

void LayerFilter::observe(int layer, int64_t routed) {
  seen_[layer] += routed;
}

std::vector<int> LayerFilter::kept(const std::string& source) const {
  std::vector<int> out;
  if (!model_layers_.empty()) {
    std::vector<int> missing;
    for (int l : model_layers_) (seen_.count(l) ? out : missing).push_back(l);
    if (!missing.empty()) {
      std::vector<int> present;
      for (const auto& [l, routed] : seen_) present.push_back(l);
      throw InputError("--layers", "--layers",
                       "layers " + describe_ids(missing) + " are not in " + source + " (it holds layers " +
                           describe_ids(present) + ", in the source's numbering)");
    }
  } else {
    for (const auto& [l, routed] : seen_)
      if (routed > 0) out.push_back(l);
  }
  if (out.empty()) throw InputError(source, "layers", "no layer routes any token");
  return out;
}

std::vector<int> LayerFilter::dropped_empty() const {
  std::vector<int> out;
  for (const auto& [l, routed] : seen_)
    if (routed == 0 && std::find(model_layers_.begin(), model_layers_.end(), l) == model_layers_.end())
      out.push_back(l);
  return out;
}

std::vector<int> LayerFilter::left_out() const {
  std::vector<int> out;
  if (model_layers_.empty()) return out;
  for (const auto& [l, routed] : seen_)
    if (routed > 0 && std::find(model_layers_.begin(), model_layers_.end(), l) == model_layers_.end())
      out.push_back(l);
  return out;
}

void LayerFilter::describe(ImportReport& report) const {
  if (!dropped_empty().empty())
    report.assumed.push_back("layers " + describe_ids(dropped_empty()) + " route no token: dense, dropped");
  if (!left_out().empty())
    report.assumed.push_back("layers " + describe_ids(left_out()) +
                             " route tokens but are not in --layers: left out");
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

std::string decode_base64(const std::string& text, const std::string& source, const std::string& field) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, pad = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    const int8_t v = table[c];
    if (v < 0 || pad > 0)
      throw InputError(
          source, field,
          "not base64: character " + std::to_string(i) + " is '" + std::string(1, text[i]) + "'");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (pad > 2 || bits >= 6) throw InputError(source, field, "not base64: truncated (bad length or padding)");
  return out;
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
