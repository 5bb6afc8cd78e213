#include "traces/import_ultraep.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string_view>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "traces/npy.hpp"
#include "traces/zip_reader.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::ordered_json;

// One chunk's arrays. The buffers are reused from chunk to chunk, so after the first chunk reading one
// allocates nothing.
struct Chunk {
  std::string path;
  int64_t n = 0;
  std::vector<int32_t> layers;
  std::vector<int64_t> microbatches;
  std::vector<int32_t> pre;   // n x E
  std::vector<int32_t> post;  // n x P
};

// Reads member `name`.npy of `zip` as a C-order array of `dtype` whose shape must be `shape` (-1: any) into
// `out`. A stored member is checked in place in the mapped archive and copied once, straight into `out`; a
// deflated one is inflated into `scratch` first.
template <typename T>
void read_array(const ZipReader& zip, const std::string& name, NpyDtype dtype, std::vector<int64_t> shape,
                int64_t& first_dim, std::string& scratch, std::vector<T>& out) {
  const std::string member = name + ".npy";
  const std::string_view bytes = zip.view(member, scratch);
  const std::string source = zip.path() + ":" + member;
  const NpyArrayInfo info = parse_npy_header(bytes.data(), bytes.size(), source);
  if (info.dtype != dtype)
    throw InputError(source, name,
                     std::string("dtype ") + npy_descr(info.dtype) + ", expected " + npy_descr(dtype));
  bool ok = info.shape.size() == shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || info.shape[i] == shape[i];
  if (!ok) {
    std::string want = "(", got = "(";
    for (int64_t s : shape) want += (s < 0 ? std::string("n") : std::to_string(s)) + ",";
    for (int64_t s : info.shape) got += std::to_string(s) + ",";
    throw InputError(source, name, "shape " + got + ") but expected " + want + ")");
  }
  if (first_dim < 0) first_dim = info.shape[0];
  if (info.shape[0] != first_dim)
    throw InputError(
        source, name,
        std::to_string(info.shape[0]) + " records, other arrays have " + std::to_string(first_dim));
  const int64_t want_bytes = checked_add(
      info.data_offset_bytes, checked_mul(info.num_elements, sizeof(T), source, name), source, name);
  if (static_cast<int64_t>(bytes.size()) != want_bytes)
    throw InputError(
        source, name,
        std::to_string(bytes.size()) + " bytes, the header implies " + std::to_string(want_bytes));
  out.resize(static_cast<size_t>(info.num_elements));
  if (!out.empty()) std::memcpy(out.data(), bytes.data() + info.data_offset_bytes, out.size() * sizeof(T));
}

// OR of all values: negative iff any value is (a branch-free scan the compiler vectorises).
template <typename T>
T or_all(const std::vector<T>& v) {
  T acc = 0;
  for (const T x : v) acc |= x;
  return acc;
}

class UltraepStream final : public RecordStream {
 public:
  UltraepStream(const std::string& input, const ImportOptions& options, ImportReport& report);
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override;

 private:
  // Reads chunk `index` into `c`; post_physical_loads only when `with_post` (pass 1 summarises it, pass 2
  // does not need it).
  void load(size_t index, bool with_post, Chunk& c);

  std::vector<std::string> chunk_paths_;
  int num_experts_ = 0, num_physical_ = 0;
  uint64_t seed_ = 0;
  TraceManifest manifest_;
  std::string scratch_;          // inflated deflate members
  std::vector<int64_t> global_;  // one record's global loads, for spread_global_loads
  // Records in canonical (microbatch, layer position) order, whatever order the chunks hold them in.
  struct Entry {
    int64_t microbatch;
    int32_t position;  // layer position in the manifest (pass 1: the layer id)
    uint32_t chunk, index;
  };
  std::vector<Entry> index_;
  size_t next_ = 0;
  // Chunks loaded for pass 2, least recently used first (memory: at most kCachedChunks chunks).
  static constexpr size_t kCachedChunks = 3;
  std::vector<std::pair<uint32_t, Chunk>> cache_;
  Chunk chunk_;  // pass 1
};

void UltraepStream::load(size_t index, bool with_post, Chunk& c) {
  c.path = chunk_paths_[index];
  ZipReader zip(c.path);
  int64_t n = -1;
  read_array(zip, "layers", NpyDtype::kInt32, {-1}, n, scratch_, c.layers);
  read_array(zip, "microbatches", NpyDtype::kInt64, {-1}, n, scratch_, c.microbatches);
  read_array(zip, "pre_logical_loads", NpyDtype::kInt32, {-1, num_experts_}, n, scratch_, c.pre);
  if (with_post)
    read_array(zip, "post_physical_loads", NpyDtype::kInt32, {-1, num_physical_}, n, scratch_, c.post);
  else
    c.post.clear();
  c.n = n;
  if (or_all(c.layers) >= 0 && or_all(c.microbatches) >= 0 && or_all(c.pre) >= 0) return;
  // Something is negative: find the first offender in record order.
  for (int64_t i = 0; i < n; ++i) {
    if (c.layers[i] < 0)
      throw InputError(c.path, "layers", "record " + std::to_string(i) + " has a negative layer id");
    if (c.microbatches[i] < 0)
      throw InputError(c.path, "microbatches", "record " + std::to_string(i) + " has a negative microbatch");
    for (int e = 0; e < num_experts_; ++e)
      if (c.pre[i * num_experts_ + e] < 0)
        throw InputError(c.path, "pre_logical_loads",
                         "record " + std::to_string(i) + ", expert " + std::to_string(e) + " is negative");
  }
}

UltraepStream::UltraepStream(const std::string& input, const ImportOptions& o, ImportReport& report) {
  report.format = "ultraep";
  std::error_code ec;
  std::string manifest_path = input;
  if (fs::is_directory(input, ec)) {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(input)) {
      const std::string name = entry.path().filename().string();
      if (name.size() > 14 && name.compare(name.size() - 14, 14, ".manifest.json") == 0)
        found.push_back(entry.path().string());
    }
    if (found.size() != 1)
      throw InputError(input, "manifest",
                       std::to_string(found.size()) + " *.manifest.json files; give the one to import");
    manifest_path = found.front();
  }
  const std::string fname = fs::path(manifest_path).filename().string();
  if (fname.size() <= 14 || fname.compare(fname.size() - 14, 14, ".manifest.json") != 0)
    throw InputError(manifest_path, "manifest", "expected {trace_id}.manifest.json");
  const std::string trace_id = fname.substr(0, fname.size() - 14);
  const std::string man_text = read_file_text(manifest_path);
  check_json_depth(man_text, manifest_path);
  const Json man = Json::parse(man_text, nullptr, false);
  if (man.is_discarded() || !man.is_object())
    throw InputError(manifest_path, "manifest", "not a JSON object");
  if (!man.contains("schema") || man["schema"] != "ultra_ep_trace_v1")
    throw InputError(manifest_path, "schema", "expected \"ultra_ep_trace_v1\"");
  auto positive = [&](const char* field) {
    if (!man.contains(field) || !man[field].is_number_integer() || man[field].get<int64_t>() <= 0 ||
        man[field].get<int64_t>() > (1 << 20))
      throw InputError(manifest_path, field, "must be a positive integer");
    return man[field].get<int>();
  };
  const int ep_size = positive("ep_size");
  const int masters = positive("num_local_master_experts");
  const int local_physical = positive("num_local_physical_experts");
  num_experts_ = positive("num_global_logical_experts");
  num_physical_ = positive("num_global_physical_experts");
  const int64_t logical = int64_t{masters} * ep_size, physical = int64_t{local_physical} * ep_size;
  if (num_experts_ != logical)
    throw InputError(manifest_path, "num_global_logical_experts",
                     std::to_string(num_experts_) +
                         ", expected num_local_master_experts x ep_size = " + std::to_string(logical));
  if (num_physical_ != physical)
    throw InputError(manifest_path, "num_global_physical_experts",
                     std::to_string(num_physical_) +
                         ", expected num_local_physical_experts x ep_size = " + std::to_string(physical));
  if (o.top_k <= 0)
    throw InputError("--top-k", "--top-k",
                     "the UltraEP profiler does not record top-k: give the model's --top-k");
  if (o.top_k > num_experts_) throw InputError("--top-k", "--top-k", "exceeds the number of experts");
  seed_ = o.seed;

  const fs::path dir = fs::path(manifest_path).parent_path();
  const std::regex chunk_re("^" +
                            std::regex_replace(trace_id, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                            R"(\.chunk([0-9]{6})\.npz$)");
  std::map<int, std::string> chunks;
  for (const auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, chunk_re)) chunks[std::stoi(m[1].str())] = entry.path().string();
  }
  if (chunks.empty())
    throw InputError(manifest_path, "chunks", "no " + trace_id + ".chunk*.npz next to the manifest");
  if (chunks.rbegin()->first != static_cast<int>(chunks.size()) - 1)
    throw InputError(manifest_path, "chunks",
                     "chunk files are not numbered 0.." + std::to_string(chunks.size() - 1));
  for (const auto& [i, p] : chunks) chunk_paths_.push_back(p);
  const int64_t declared =
      man.contains("chunks") && man["chunks"].is_number_integer() ? man["chunks"].get<int64_t>() : -1;

  const int n_ranks = o.num_ranks > 0 ? o.num_ranks : ep_size;
  // Pass 1 reads every chunk once for what the manifest and its provenance need before the first record is
  // written: layers, record count, the recorded imbalance and, without --tokens-per-rank, the row bound.
  const bool need_row_bound = o.tokens_per_rank <= 0;
  const uint32_t ceil_add = static_cast<uint32_t>(n_ranks - 1), ceil_div = static_cast<uint32_t>(n_ranks);
  std::vector<int64_t> pre_rank(ep_size), post_rank(ep_size);
  LayerFilter filter(o.layers);
  int64_t records = 0, max_row = 0, routed_total = 0;
  double pre_imb = 0, post_imb = 0, pre_max = 0, post_max = 0;
  Chunk& c = chunk_;
  for (size_t ci = 0; ci < chunk_paths_.size(); ++ci) {
    load(ci, true, c);
    if (ci == 0)  // chunks are equally full (the profiler's flush interval)
      index_.reserve(chunk_paths_.size() * static_cast<size_t>(c.n));
    for (int64_t i = 0; i < c.n; ++i, ++records) {
      index_.push_back({c.microbatches[i], c.layers[i], static_cast<uint32_t>(ci), static_cast<uint32_t>(i)});
      int64_t routed = 0, row_bound = 0;
      const int32_t* pre = c.pre.data() + i * num_experts_;
      const int32_t* post = c.post.data() + i * num_physical_;
      for (int r = 0; r < ep_size; ++r) {  // expert e = r * masters + m is mastered by rank r
        int64_t sum = 0;
        for (int m = 0; m < masters; ++m) sum += pre[r * masters + m];
        pre_rank[r] = sum;
        routed += sum;
      }
      if (need_row_bound) {
        // Sum over experts of ceil(W/N), the bound on every spread row. W < 2^31 and N <= 2^20, so the
        // unsigned 32-bit arithmetic is exact.
        if (n_ranks == 1) {
          row_bound = routed;
        } else {
          for (int e = 0; e < num_experts_; ++e)
            row_bound += (static_cast<uint32_t>(pre[e]) + ceil_add) / ceil_div;
        }
      }
      for (int r = 0; r < ep_size; ++r) {
        int64_t sum = 0;
        for (int q = 0; q < local_physical; ++q) sum += post[r * local_physical + q];
        post_rank[r] = sum;
      }
      filter.observe(c.layers[i], routed);
      routed_total += routed;
      const double a = imbalance(pre_rank), b = imbalance(post_rank);
      pre_imb += a, post_imb += b, pre_max = std::max(pre_max, a), post_max = std::max(post_max, b);
      max_row = std::max(max_row, row_bound);
    }
  }
  // Pass 2 (next()) does not need post_physical_loads: give its memory back.
  std::vector<int32_t>().swap(c.post);
  const std::vector<int> layers = filter.kept(manifest_path);
  manifest_.num_ranks = n_ranks;
  manifest_.num_experts = num_experts_;
  manifest_.top_k = o.top_k;
  manifest_.layers = layers;
  manifest_.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : tokens_for_row(max_row, o.top_k);
  manifest_.model = o.model.empty() ? "UltraEP load profile " + trace_id : o.model;
  // Order by (microbatch, layer position): interleaved pipeline schedules and device copies that complete
  // late (across a flush) put records out of order; the order in the files carries no meaning.
  int64_t out_of_order = 0;
  for (size_t i = 1; i < index_.size(); ++i) out_of_order += index_[i].microbatch < index_[i - 1].microbatch;
  std::stable_sort(index_.begin(), index_.end(), [](const Entry& a, const Entry& b) {
    return a.microbatch != b.microbatch ? a.microbatch < b.microbatch : a.position < b.position;
  });
  for (size_t i = 1; i < index_.size(); ++i)
    if (index_[i].microbatch == index_[i - 1].microbatch && index_[i].position == index_[i - 1].position)
      throw InputError(chunk_paths_[index_[i].chunk], "microbatches",
                       "(layer " + std::to_string(index_[i].position) + ", microbatch " +
                           std::to_string(index_[i].microbatch) + ") is recorded twice");
  index_.erase(std::remove_if(index_.begin(), index_.end(),
                              [&](Entry& e) {
                                e.position = manifest_.layer_position(e.position);
                                return e.position < 0;
                              }),
               index_.end());
  std::stable_sort(index_.begin(), index_.end(), [](const Entry& a, const Entry& b) {
    return a.microbatch != b.microbatch ? a.microbatch < b.microbatch : a.position < b.position;
  });
  const int64_t kept = static_cast<int64_t>(index_.size());
  manifest_.num_records = kept;

  const int64_t dropped = man.contains("dropped_records") && man["dropped_records"].is_number_integer()
                              ? man["dropped_records"].get<int64_t>()
                              : 0;
  auto fmt = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f", v);
    return std::string(b);
  };
  const double n_rec = std::max<int64_t>(1, records);
  report.found.push_back("trace " + trace_id + ": ep_size " + std::to_string(ep_size) + ", " +
                         std::to_string(num_experts_) + " logical / " + std::to_string(num_physical_) +
                         " physical experts, " + std::to_string(chunk_paths_.size()) + " chunks, " +
                         std::to_string(records) + " records, " + std::to_string(routed_total) +
                         " routed pairs");
  report.found.push_back("layers " + describe_ids(layers) + " (" + std::to_string(kept) + " records kept); " +
                         std::to_string(dropped) + " records dropped by the profiler (dropped_records)");
  report.found.push_back("recorded rank imbalance (viewer convention): before " + fmt(pre_imb / n_rec) +
                         " mean / " + fmt(pre_max) + " max, after UltraEP's reroute " +
                         fmt(post_imb / n_rec) + " mean / " + fmt(post_max) + " max");
  report.assumed.push_back(
      "the profiler writes GLOBAL loads only (pre_logical_loads, summed over source ranks): "
      "per-source rows are NOT recorded");
  report.assumed.push_back("each expert's global load is spread evenly over " + std::to_string(n_ranks) +
                           " source ranks, remainders at a seeded offset (seed " + std::to_string(o.seed) +
                           "); column sums are exact");
  report.assumed.push_back(
      "top-k " + std::to_string(o.top_k) + " (--top-k); T = " + std::to_string(manifest_.tokens_per_rank) +
      (o.tokens_per_rank > 0 ? " (--tokens-per-rank)"
                             : " (smallest T holding sum_e ceil(W_e / N), a bound on every spread row)"));
  report.assumed.push_back(
      "microbatch id = the profiler's per-layer microbatch counter; post_physical_loads kept "
      "only as the imbalance summary");
  if (out_of_order > 0)
    report.assumed.push_back(
        std::to_string(out_of_order) +
        " records follow a later microbatch in the files (interleaved schedules, late device "
        "copies): ordered by (microbatch, layer)");
  if (declared >= 0 && declared != static_cast<int64_t>(chunk_paths_.size()))
    report.assumed.push_back("the manifest says " + std::to_string(declared) + " chunks but " +
                             std::to_string(chunk_paths_.size()) + " were found (recording not closed?)");
  filter.describe(report);
  Json p;
  p["recorded_by"] = "UltraEP load profiler (ultra_ep/profiling.py, ultra_ep_trace_v1)";
  p["importer"] = "rackep trace import --from ultraep";
  p["manifest"] = man;
  p["source_ranks"] = "not recorded: global loads spread evenly, seeded remainder offsets";
  p["seed"] = o.seed;
  p["recorded_imbalance"] = {{"pre_mean", pre_imb / n_rec},
                             {"pre_max", pre_max},
                             {"post_mean", post_imb / n_rec},
                             {"post_max", post_max}};
  manifest_.provenance_json = p.dump();
  manifest_.validate(manifest_path);
}

bool UltraepStream::next(TraceRecord& record) {
  if (next_ >= index_.size()) return false;
  const Entry& entry = index_[next_++];
  auto hit =
      std::find_if(cache_.begin(), cache_.end(), [&](const auto& c) { return c.first == entry.chunk; });
  if (hit == cache_.end()) {
    Chunk reuse;  // the least recently used chunk's buffers, when the cache is full
    if (cache_.size() == kCachedChunks) {
      reuse = std::move(cache_.front().second);
      cache_.erase(cache_.begin());
    }
    cache_.emplace_back(entry.chunk, std::move(reuse));
    load(entry.chunk, false, cache_.back().second);
    hit = cache_.end() - 1;
  } else if (hit != cache_.end() - 1) {
    std::rotate(hit, hit + 1, cache_.end());  // most recently used last
    hit = cache_.end() - 1;
  }
  const Chunk& c = hit->second;
  const int64_t i = entry.index;
  record.layer = c.layers[i];
  record.microbatch = c.microbatches[i];
  if (record.loads.num_ranks() != manifest_.num_ranks || record.loads.num_experts() != num_experts_)
    record.loads = LoadMatrix(manifest_.num_ranks, num_experts_);
  const int32_t* pre = c.pre.data() + i * num_experts_;
  if (manifest_.num_ranks == 1) {
    // One source rank: the spread is the global row itself (floor(W/1) = W, no remainder).
    std::memcpy(record.loads.row(0), pre, static_cast<size_t>(num_experts_) * sizeof(int32_t));
  } else {
    global_.assign(pre, pre + num_experts_);
    spread_global_loads(global_, seed_, record.microbatch * 1000003 + record.layer, record.loads);
  }
  return true;
}

}  // namespace

std::unique_ptr<RecordStream> open_ultraep_profile(const std::string& manifest_or_dir,
                                                   const ImportOptions& options, ImportReport& report) {
  return std::make_unique<UltraepStream>(manifest_or_dir, options, report);
}

}  // namespace rackep
