#include "traces/import_trtllm.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "core/output_file.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::ordered_json;
using Key = std::pair<int64_t, int>;  // (iteration, layer)

// One tensor of a safetensors file: where its E counts start and how wide each is.
struct TensorRef {
  size_t offset = 0;  // absolute byte offset in the file
  int elem_bytes = 8;
};

// A rank file: its header, and a descriptor from which records are read with pread (memory: one row).
struct RankFile {
  std::string path;
  int fd = -1;
  std::map<Key, TensorRef> tensors;
  RankFile() = default;
  RankFile(RankFile&& o) noexcept : path(std::move(o.path)), fd(o.fd), tensors(std::move(o.tensors)) {
    o.fd = -1;
  }
  RankFile(const RankFile&) = delete;
  RankFile& operator=(const RankFile&) = delete;
  RankFile& operator=(RankFile&&) = delete;
  ~RankFile() {
    if (fd >= 0) ::close(fd);
  }
};

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool parse_key(const std::string& key, Key& out) {
  static const std::regex re("^([0-9]{1,12})_([0-9]{1,6})$");
  std::smatch m;
  if (!std::regex_match(key, m, re)) return false;
  out = {std::stoll(m[1].str()), std::stoi(m[2].str())};
  return true;
}

// Parses and checks the header of one rank file; every tensor must be an int64/int32 vector of E counts.
std::map<Key, TensorRef> parse_safetensors(const MappedFile& f, int num_experts) {
  const std::string& path = f.path();
  if (f.size() < 8)
    throw InputError(path, "header",
                     "truncated: " + std::to_string(f.size()) +
                         " bytes, a safetensors file starts with an "
                         "8-byte header length");
  const uint64_t header_bytes = read_le64(f.data());
  if (header_bytes > f.size() - 8)
    throw InputError(path, "header",
                     "header length " + std::to_string(header_bytes) + " runs past the end of the file (" +
                         std::to_string(f.size()) + " bytes): truncated or not safetensors");
  const char* hb = reinterpret_cast<const char*>(f.data()) + 8;
  // NOTE: nlohmann::json (std::map), not ordered_json, whose linear key search makes thousands of keys
  // O(n^2).
  check_json_depth(std::string_view(hb, static_cast<size_t>(header_bytes)), path);
  const nlohmann::json header =
      nlohmann::json::parse(hb, hb + header_bytes, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    throw InputError(path, "header", "the header is not a JSON object");
  const size_t data_start = 8 + static_cast<size_t>(header_bytes);
  const size_t data_bytes = f.size() - data_start;
  std::map<Key, TensorRef> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, t] : header.items()) {
    if (name == "__metadata__") continue;
    Key key;
    if (!parse_key(name, key)) throw InputError(path, "key", "'" + name + "' is not \"{iteration}_{layer}\"");
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
      throw InputError(path, name, "needs dtype, shape and data_offsets");
    const auto& dtype = t["dtype"];
    int elem = 0;
    if (dtype == "I64") elem = 8;
    if (dtype == "I32") elem = 4;
    if (elem == 0) throw InputError(path, name, "dtype " + dtype.dump() + ", expected \"I64\" (or \"I32\")");
    const auto& shape = t["shape"];
    if (!shape.is_array() || shape.size() != 1 || !shape[0].is_number_integer() || shape[0] != num_experts)
      throw InputError(path, name,
                       "shape " + shape.dump() + ", expected [" + std::to_string(num_experts) +
                           "] (num_experts of meta_info.json)");
    const auto& off = t["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(path, name, "data_offsets " + off.dump() + " is not [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (e < b || e - b != static_cast<uint64_t>(num_experts) * elem)
      throw InputError(path, name,
                       "data_offsets " + off.dump() + " hold " + std::to_string(e - b) + " bytes, expected " +
                           std::to_string(static_cast<uint64_t>(num_experts) * elem));
    if (e > data_bytes)
      throw InputError(path, name,
                       "data_offsets end " + std::to_string(e) + " is past the data (" +
                           std::to_string(data_bytes) + " bytes): truncated file");
    ranges.emplace_back(b, e);
    if (!out.emplace(key, TensorRef{data_start + static_cast<size_t>(b), elem}).second)
      throw InputError(path, "key", "'" + name + "' names an (iteration, layer) already present");
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw InputError(path, "data_offsets",
                       "two tensors overlap at byte " + std::to_string(ranges[i].first));
  return out;
}

int64_t read_count(const unsigned char* p, int elem) {
  if (elem == 8) return static_cast<int64_t>(read_le64(p));
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return static_cast<int32_t>(v);
}

std::string key_name(const Key& k) {
  return std::to_string(k.first) + "_" + std::to_string(k.second);
}

class TrtllmStream final : public RecordStream {
 public:
  TrtllmStream(const std::string& dir, const ImportOptions& options, ImportReport& report);
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override;

 private:
  // Reads row `rank` of record `key` into `row`, checking every count; returns the row sum.
  int64_t read_row(size_t rank, const Key& key, int32_t* row) const;

  std::vector<RankFile> ranks_;
  std::vector<Key> keys_;  // records in canonical order
  int replication_ = 1;
  TraceManifest manifest_;
  size_t next_ = 0;
  std::vector<int32_t> scratch_;
  mutable std::vector<uint64_t> raw_;  // one row as read (8-byte aligned)
};

int64_t TrtllmStream::read_row(size_t rank, const Key& key, int32_t* row) const {
  const RankFile& rf = ranks_[rank];
  const auto it = rf.tensors.find(key);
  if (it == rf.tensors.end())
    throw InputError(rf.path, "key",
                     "'" + key_name(key) + "' is missing here but present in " + ranks_[0].path);
  const int elem = it->second.elem_bytes;
  const int num_experts = manifest_.num_experts;
  const size_t bytes = static_cast<size_t>(num_experts) * elem;
  raw_.resize(bytes / 8 + 1);
  unsigned char* buf = reinterpret_cast<unsigned char*>(raw_.data());
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(rf.fd, buf + done, bytes - done, static_cast<off_t>(it->second.offset + done));
    if (n <= 0) throw InputError(rf.path, key_name(key), "short read: the file changed or was truncated");
    done += static_cast<size_t>(n);
  }
  // NOTE: safetensors data is little-endian (as is every host rackep targets); a plain loop the compiler
  // vectorises converts it, and only a row with a bad count is re-scanned for the message.
  int64_t sum = 0;
  bool bad = false;
  if (elem == 8) {
    const int64_t* v = reinterpret_cast<const int64_t*>(buf);
    for (int e = 0; e < num_experts; ++e) {
      bad |= static_cast<uint64_t>(v[e]) > static_cast<uint64_t>(INT32_MAX);
      row[e] = static_cast<int32_t>(v[e]);
      sum += row[e];  // a bad count throws below; summing v[e] could overflow first
    }
  } else {
    const int32_t* v = reinterpret_cast<const int32_t*>(buf);
    for (int e = 0; e < num_experts; ++e) {
      bad |= v[e] < 0;
      row[e] = v[e];
      sum += v[e];
    }
  }
  if (bad)
    for (int e = 0; e < num_experts; ++e) {
      const int64_t v = read_count(buf + static_cast<size_t>(e) * elem, elem);
      if (v < 0 || v > INT32_MAX)
        throw InputError(
            rf.path, key_name(key),
            "expert " + std::to_string(e) + " count " + std::to_string(v) + " is outside [0, 2^31)");
    }
  return sum;
}

TrtllmStream::TrtllmStream(const std::string& dir, const ImportOptions& o, ImportReport& report) {
  report.format = "trtllm";
  const std::string meta_path = (fs::path(dir) / "meta_info.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(dir, "directory", "no such directory (EXPERT_STATISTIC_PATH of the recording)");
  if (!fs::exists(meta_path, ec))
    throw InputError(meta_path, "meta_info.json", "missing (rank 0 writes it next to rank{r}.safetensors)");
  const std::string meta_text = read_file_text(meta_path);
  check_json_depth(meta_text, meta_path);
  const Json meta = Json::parse(meta_text, nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    throw InputError(meta_path, "meta_info.json", "not a JSON object");
  auto positive = [&](const char* field) {
    if (!meta.contains(field) || !meta[field].is_number_integer() || meta[field].get<int64_t>() <= 0 ||
        meta[field].get<int64_t>() > 65536)
      throw InputError(meta_path, field, "must be a positive integer (at most 65536)");
    return meta[field].get<int>();
  };
  const int num_experts = positive("num_experts");
  const int top_k = positive("num_experts_per_token");
  if (top_k > num_experts) throw InputError(meta_path, "num_experts_per_token", "exceeds num_experts");

  std::map<int, std::string> files;
  static const std::regex rank_re("^rank([0-9]{1,6})\\.safetensors$");
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, rank_re)) files[std::stoi(m[1].str())] = entry.path().string();
  }
  if (files.empty()) throw InputError(dir, "rank files", "no rank{r}.safetensors in the directory");
  const int num_files = static_cast<int>(files.size());
  if (files.rbegin()->first != num_files - 1)
    throw InputError(dir, "rank files",
                     "rank ids must be 0.." + std::to_string(num_files - 1) + ", found rank" +
                         std::to_string(files.rbegin()->first) + ".safetensors");
  if (meta.contains("ep_size") && (!meta["ep_size"].is_number_integer() || meta["ep_size"] != num_files))
    throw InputError(
        meta_path, "ep_size",
        meta["ep_size"].dump() + ", but the directory holds " + std::to_string(num_files) + " rank files");
  for (const auto& [r, path] : files) {
    RankFile rf;
    rf.path = path;
    {
      const MappedFile mapped(path);  // only the header is touched; unmapped at the end of the scope
      rf.tensors = parse_safetensors(mapped, num_experts);
    }
    rf.fd = ::open(path.c_str(), O_RDONLY);
    if (rf.fd < 0) throw InputError(path, "file", "cannot open");
    ranks_.push_back(std::move(rf));
  }
  for (size_t r = 1; r < ranks_.size(); ++r) {
    if (ranks_[r].tensors.size() != ranks_[0].tensors.size()) {
      for (const auto& [key, ref] : ranks_[0].tensors)
        if (!ranks_[r].tensors.count(key))
          throw InputError(ranks_[r].path, "key",
                           "'" + key_name(key) + "' is missing here but present in " + ranks_[0].path);
      throw InputError(ranks_[r].path, "key",
                       std::to_string(ranks_[r].tensors.size()) + " keys, but " + ranks_[0].path + " has " +
                           std::to_string(ranks_[0].tensors.size()));
    }
  }
  // Optional token counts (EXPERT_STATISTIC_DUMP_DISPATCH=1).
  std::vector<std::map<Key, int64_t>> numtokens(ranks_.size());
  bool have_numtokens = true;
  for (size_t r = 0; r < ranks_.size(); ++r) {
    const std::string p = (fs::path(dir) / ("rank" + std::to_string(r) + "_numtokens.json")).string();
    if (!fs::exists(p, ec)) {
      have_numtokens = false;
      continue;
    }
    const std::string text = read_file_text(p);
    check_json_depth(text, p);
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);  // std::map: O(n log n)
    if (j.is_discarded() || !j.is_object()) throw InputError(p, "numtokens", "not a JSON object");
    for (const auto& [name, v] : j.items()) {
      Key key;
      if (!parse_key(name, key)) throw InputError(p, "key", "'" + name + "' is not \"{iteration}_{layer}\"");
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        throw InputError(p, name, "token count " + v.dump() + " is not a non-negative integer");
      numtokens[r][key] = v.get<int64_t>();
    }
  }

  replication_ = std::max(1, o.replication);
  if (num_files % replication_ != 0)
    throw InputError(
        "--replication", "--replication",
        std::to_string(num_files) + " rank files are not a multiple of " + std::to_string(replication_));
  manifest_.num_ranks = num_files / replication_;
  manifest_.num_experts = num_experts;
  manifest_.top_k = top_k;

  // Pass 1: validate every count, sum routed tokens per layer, find the largest row, detect replication.
  LayerFilter filter(o.layers);
  scratch_.assign(static_cast<size_t>(num_files) * num_experts, 0);
  int64_t max_row = 0, max_tokens = 0, tokens_total = 0;
  std::map<int64_t, int> first_layer_of_iter;
  bool all_rows_equal = num_files > 1;
  std::set<int64_t> iterations;
  for (const auto& [key, ref] : ranks_[0].tensors) {
    int64_t routed = 0;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      int32_t* row = scratch_.data() + r * num_experts;
      const int64_t sum = read_row(r, key, row);
      routed += sum;
      if (r % replication_ == 0) max_row = std::max(max_row, sum);
      if (r > 0 && std::memcmp(row, scratch_.data(), sizeof(int32_t) * num_experts) != 0) {
        all_rows_equal = false;
        if (static_cast<int>(r) % replication_ != 0 &&
            std::memcmp(row, row - num_experts, sizeof(int32_t) * num_experts) != 0)
          throw InputError(ranks_[r].path, key_name(key),
                           "differs from rank " + std::to_string(r - 1) + ", but --replication " +
                               std::to_string(replication_) + " says they hold the same tokens");
      }
      if (have_numtokens) {
        const auto it = numtokens[r].find(key);
        if (it == numtokens[r].end())
          throw InputError("rank" + std::to_string(r) + "_numtokens.json", "key",
                           "'" + key_name(key) + "' missing");
        if (sum > it->second * top_k)
          throw InputError(ranks_[r].path, key_name(key),
                           "routes " + std::to_string(sum) + " (token, expert) pairs, more than numtokens " +
                               std::to_string(it->second) + " x top-k " + std::to_string(top_k));
        if (r % replication_ == 0) {
          max_tokens = std::max(max_tokens, it->second);
          // Every MoE layer of an iteration sees the same tokens: count them once per (rank, iteration).
          if (!iterations.count(key.first) || key.second == first_layer_of_iter[key.first])
            tokens_total += it->second;
        }
      }
    }
    if (!iterations.count(key.first)) first_layer_of_iter[key.first] = key.second;
    filter.observe(key.second, routed, ranks_[0].path, "key " + key_name(key));
    iterations.insert(key.first);
  }
  const std::vector<int> layers = filter.kept(dir);
  for (const auto& [key, ref] : ranks_[0].tensors)
    if (std::find(layers.begin(), layers.end(), key.second) != layers.end()) keys_.push_back(key);
  std::stable_sort(keys_.begin(), keys_.end(), [&](const Key& a, const Key& b) {
    if (a.first != b.first) return a.first < b.first;
    return std::find(layers.begin(), layers.end(), a.second) <
           std::find(layers.begin(), layers.end(), b.second);
  });
  manifest_.layers = layers;
  manifest_.num_records = static_cast<int64_t>(keys_.size());
  manifest_.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank
                              : have_numtokens      ? std::max<int64_t>(1, max_tokens)
                                                    : tokens_for_row(max_row, top_k);
  manifest_.model = o.model.empty() ? "TensorRT-LLM expert statistics (" + dir + ")" : o.model;

  const int64_t iters = static_cast<int64_t>(iterations.size());
  report.found.push_back(std::to_string(num_files) + " rank files (rank0..rank" +
                         std::to_string(num_files - 1) + ".safetensors), " + std::to_string(num_experts) +
                         " experts, top-" + std::to_string(top_k) + " (meta_info.json)");
  report.found.push_back(std::to_string(iters) + " iterations (" + std::to_string(*iterations.begin()) +
                         ".." + std::to_string(*iterations.rbegin()) + "), " +
                         std::to_string(ranks_[0].tensors.size()) + " (iteration, layer) keys per rank");
  report.found.push_back("layers " + describe_ids(layers) + " (model layer ids), " +
                         std::to_string(keys_.size()) + " records");
  report.found.push_back(have_numtokens
                             ? "token counts: rank{r}_numtokens.json, " + std::to_string(tokens_total) +
                                   " tokens in all (per iteration, over ranks)"
                             : "token counts: not recorded (no rank{r}_numtokens.json)");
  if (!filter.dropped_empty().empty())
    report.assumed.push_back("layers " + describe_ids(filter.dropped_empty()) +
                             " route no token: dense layers, dropped");
  if (!filter.missing().empty())
    report.assumed.push_back("--layers " + describe_ids(filter.missing()) + " are not in the recording");
  if (keys_.size() != static_cast<size_t>(iters) * layers.size())
    report.assumed.push_back(
        std::to_string(static_cast<int64_t>(iters) * static_cast<int64_t>(layers.size()) -
                       static_cast<int64_t>(keys_.size())) +
        " (iteration, layer) pairs are not recorded and are left out");
  report.assumed.push_back(
      "microbatch id = TensorRT-LLM iteration; row r = the tokens on attention-DP rank r");
  report.assumed.push_back("T = " + std::to_string(manifest_.tokens_per_rank) +
                           (o.tokens_per_rank > 0 ? " (given by --tokens-per-rank)"
                            : have_numtokens
                                ? " (the largest per-rank token count of rank{r}_numtokens.json)"
                                : " (not recorded: the smallest T whose T x top-k holds the largest row)"));
  if (replication_ > 1)
    report.assumed.push_back("--replication " + std::to_string(replication_) + ": ranks " + "in groups of " +
                             std::to_string(replication_) + " hold the same tokens; one row kept per group");
  else if (all_rows_equal)
    report.assumed.push_back(
        "every rank file holds identical counts: probably TP attention (replicated "
        "tokens); consider --replication " +
        std::to_string(num_files));
  report.assumed.push_back("shared experts are not logged by TensorRT-LLM");

  Json p;
  p["recorded_by"] =
      "TensorRT-LLM expert statistics (EXPERT_STATISTIC_ITER_RANGE, tensorrt_llm/_torch/expert_statistic.py)";
  p["importer"] = "rackep trace import --from trtllm";
  p["source"] = dir;
  p["meta_info"] = meta;
  p["rank_files"] = num_files;
  p["iterations"] = iters;
  p["replication"] = replication_;
  p["tokens_per_rank"] = have_numtokens          ? "rank{r}_numtokens.json"
                         : o.tokens_per_rank > 0 ? "--tokens-per-rank"
                                                 : "derived from the largest row";
  p["dense_layers_dropped"] = filter.dropped_empty();
  p["shared_experts"] = "not logged";
  manifest_.provenance_json = p.dump();
  manifest_.validate(dir);
}

bool TrtllmStream::next(TraceRecord& record) {
  if (next_ >= keys_.size()) return false;
  const Key& key = keys_[next_++];
  record.layer = key.second;
  record.microbatch = key.first;
  if (record.loads.num_ranks() != manifest_.num_ranks || record.loads.num_experts() != manifest_.num_experts)
    record.loads = LoadMatrix(manifest_.num_ranks, manifest_.num_experts);
  for (int s = 0; s < manifest_.num_ranks; ++s)
    read_row(static_cast<size_t>(s) * replication_, key, record.loads.row(s));
  return true;
}

void write_le64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

std::unique_ptr<RecordStream> open_trtllm_stats(const std::string& dir, const ImportOptions& options,
                                                ImportReport& report) {
  return std::make_unique<TrtllmStream>(dir, options, report);
}

void write_trtllm_stats(RecordStream& in, const std::string& dir) {
  const TraceManifest& m = in.manifest();
  std::error_code ec;
  OutputDir target(dir, "--out", /*force=*/false);  // written beside `dir`, renamed when complete
  const fs::path temp(target.temp_path());
  {
    fs::create_directories(temp, ec);
    if (ec) throw InputError(dir, "--out", "cannot create: " + ec.message());
    // Data first (one raw file per rank, appended record by record), then each header + data.
    std::vector<std::unique_ptr<std::FILE, int (*)(std::FILE*)>> raw;
    for (int r = 0; r < m.num_ranks; ++r) {
      const std::string p = (temp / ("rank" + std::to_string(r) + ".raw")).string();
      raw.emplace_back(std::fopen(p.c_str(), "wb"), &std::fclose);
      if (!raw.back()) throw InputError(dir, "--out", std::string("cannot create: ") + std::strerror(errno));
    }
    std::vector<std::string> keys;
    std::vector<int64_t> row(static_cast<size_t>(m.num_experts));
    TraceRecord rec;
    while (in.next(rec)) {
      keys.push_back(std::to_string(rec.microbatch) + "_" + std::to_string(rec.layer));
      for (int r = 0; r < m.num_ranks; ++r) {
        for (int e = 0; e < m.num_experts; ++e) row[e] = rec.loads.at(r, e);  // little-endian host
        if (std::fwrite(row.data(), sizeof(int64_t), row.size(), raw[r].get()) != row.size())
          throw InputError(dir, "--out", std::string("write failed: ") + std::strerror(errno));
      }
    }
    for (auto& f : raw)
      if (std::fclose(f.release()) != 0)
        throw InputError(dir, "--out", std::string("write failed: ") + std::strerror(errno));
    raw.clear();
    const uint64_t tensor_bytes = static_cast<uint64_t>(m.num_experts) * 8;
    for (int r = 0; r < m.num_ranks; ++r) {
      Json header;
      header["__metadata__"] = {{"format", "pt"}};
      for (size_t i = 0; i < keys.size(); ++i)
        header[keys[i]] = {{"dtype", "I64"},
                           {"shape", {m.num_experts}},
                           {"data_offsets", {i * tensor_bytes, (i + 1) * tensor_bytes}}};
      std::string text = header.dump();
      while (text.size() % 8 != 0) text.push_back(' ');
      std::string head;
      write_le64(head, text.size());
      head += text;
      const fs::path raw_path = temp / ("rank" + std::to_string(r) + ".raw");
      const std::string out_path = (temp / ("rank" + std::to_string(r) + ".safetensors")).string();
      std::ofstream out(out_path, std::ios::binary);
      std::ifstream data(raw_path, std::ios::binary);
      out.write(head.data(), static_cast<std::streamsize>(head.size()));
      if (!keys.empty()) out << data.rdbuf();
      out.close();
      if (!out) throw InputError(dir, "--out", std::string("write failed: ") + std::strerror(errno));
      fs::remove(raw_path, ec);
    }
    Json meta;
    meta["num_experts"] = m.num_experts;
    meta["num_experts_per_token"] = m.top_k;
    meta["ep_size"] = m.num_ranks;
    if (m.num_experts % m.num_ranks == 0) meta["experts_per_rank"] = m.num_experts / m.num_ranks;
    std::ofstream meta_out(temp / "meta_info.json");
    meta_out << meta.dump() << "\n";
    meta_out.close();
    if (!meta_out) throw InputError(dir, "--out", std::string("write failed: ") + std::strerror(errno));
  }
  target.commit();
}

}  // namespace rackep
