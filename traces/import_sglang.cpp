#include "traces/import_sglang.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "traces/import_loads.hpp"
#include "traces/import_vllm.hpp"
#include "traces/pickle_reader.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Key = std::pair<int64_t, int>;                // (microbatch, layer)
using Table = std::map<Key, std::vector<int64_t>>;  // counts per logical expert

// One input file: its dump id (the {time} of its name), rank (-1: stat, global) and kind.
struct InputFile {
  std::string path;
  std::string dump;
  int rank = -1;
  bool csv = false;
};

int64_t stoi_field(const std::string& text, const std::string& where, const std::string& field) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size()) throw InputError(where, field, "'" + text + "' is not an integer");
  return v;
}

// The rank number in a file name: an integer of at most 2^20.
int rank_field(const std::string& text, const std::string& path) {
  const int64_t rank = stoi_field(text, path, "rank");
  if (rank > (1 << 20))
    throw InputError(path, "rank", std::to_string(rank) + " in the file name is out of range");
  return static_cast<int>(rank);
}

InputFile classify(const std::string& path) {
  static const std::regex csv_re(R"(expert_distribution_rank([0-9]+)_timestamp([0-9.]+)\.csv$)");
  static const std::regex rank_re(R"(expert_distribution_recorder_([0-9.]+)_([0-9]+)\.pt$)");
  static const std::regex stat_re(R"(expert_distribution_recorder_([0-9.]+)\.pt$)");
  InputFile f;
  f.path = path;
  const std::string name = fs::path(path).filename().string();
  std::smatch m;
  if (std::regex_search(name, m, csv_re)) {
    f.csv = true;
    f.rank = rank_field(m[1].str(), path);
    f.dump = m[2].str();
  } else if (fs::path(path).extension() == ".csv") {
    throw InputError(path, "rank", "expected expert_distribution_rank{r}_timestamp{t}.csv");
  } else if (std::regex_search(name, m, rank_re)) {
    f.dump = m[1].str();
    f.rank = rank_field(m[2].str(), path);
  } else if (std::regex_search(name, m, stat_re)) {
    f.dump = m[1].str();
  } else {
    f.dump = name;  // renamed by the user: a dump of its own
  }
  return f;
}

// A .pt must be torch.save's zip format: a legacy (non-zip) one gets an error that says so.
void check_zip_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "file", "cannot open");
  char head[4] = {0, 0, 0, 0};
  in.read(head, 4);
  if (in.gcount() >= 2 && static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 1 && head[1] <= 5)
    throw InputError(
        path, "format",
        "a legacy (non-zip) torch.save file (torch < 1.6, or _use_new_zipfile_serialization=False): "
        "re-save it with python -c \"import torch; torch.save(torch.load(P), P)\" and import again");
}

Table read_csv(const InputFile& in, int num_experts_hint, int& num_experts) {
  const std::string& path = in.path;
  std::ifstream is(path);
  if (!is) throw InputError(path, "file", "cannot open");
  std::string line;
  if (!std::getline(is, line) || (line != "layer_id,expert_id,count" && line != "layer_id,expert_id,count\r"))
    throw InputError(path + ":1", "header", "expected 'layer_id,expert_id,count'");
  std::vector<std::tuple<int, int, int64_t>> rows;
  int max_expert = -1;
  for (int64_t no = 2; std::getline(is, line); ++no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(no);
    std::stringstream ss(line);
    std::string a, b, c;
    if (!std::getline(ss, a, ',') || !std::getline(ss, b, ',') || !std::getline(ss, c, ',') ||
        ss.rdbuf()->in_avail())
      throw InputError(where, "count", "expected three comma-separated integers");
    const int64_t layer = stoi_field(a, where, "layer_id"), e = stoi_field(b, where, "expert_id"),
                  n = stoi_field(c, where, "count");
    if (layer < 0 || layer > 100000) throw InputError(where, "layer_id", "out of range");
    if (e < 0 || (num_experts_hint > 0 && e >= num_experts_hint) || e > 65535)
      throw InputError(where, "expert_id", std::to_string(e) + " is outside [0, E)");
    if (n < 0) throw InputError(where, "count", "negative");
    max_expert = std::max(max_expert, static_cast<int>(e));
    rows.emplace_back(static_cast<int>(layer), static_cast<int>(e), n);
  }
  num_experts = num_experts_hint > 0 ? num_experts_hint : max_expert + 1;
  Table t;
  for (const auto& [layer, e, n] : rows) {
    auto& v = t[{0, layer}];
    v.resize(static_cast<size_t>(num_experts), 0);
    v[e] += n;
  }
  return t;
}

// ---- per_pass / per_token: streamed one forward pass at a time ------------------------------------------

// One rank's dump file, open: its records by forward pass and its physical-to-logical map.
struct RankDump {
  std::unique_ptr<TorchFile> pt;
  std::vector<int64_t> p2l;           // [L, P]
  std::map<int64_t, size_t> records;  // forward_pass_id -> index in "records"
  bool per_token = false, counted_from_topk = false;
};

class SglangPassStream final : public RecordStream {
 public:
  SglangPassStream(const std::vector<InputFile>& files, const ImportOptions& o, ImportReport& report);
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override;

 private:
  // Logical counts [L][E] of source rank `rank` in forward pass `pass` into counts_[rank].
  void read_pass(size_t rank, int64_t pass);
  const RankDump& dump_of(size_t rank, int64_t pass) const;

  std::vector<std::vector<RankDump>> ranks_;  // [rank][dump]
  std::vector<std::string> rank_path_;        // first file of each rank, for messages
  std::vector<int64_t> passes_;               // forward passes with tokens, in order
  int num_layers_ = 0, num_physical_ = 0, num_experts_ = 0, replication_ = 1;
  std::vector<std::vector<int64_t>> counts_;  // [rank][L * E] of the open pass
  std::vector<int64_t> scratch_;
  TraceManifest manifest_;
  size_t next_pass_ = 0, next_layer_ = 0;
};

const RankDump& SglangPassStream::dump_of(size_t rank, int64_t pass) const {
  for (const RankDump& d : ranks_[rank])
    if (d.records.count(pass)) return d;
  throw InputError(
      rank_path_[rank], "forward_pass_id",
      "forward pass " + std::to_string(pass) + " is missing here but present in " + rank_path_[0]);
}

void SglangPassStream::read_pass(size_t rank, int64_t pass) {
  const RankDump& d = dump_of(rank, pass);
  const TorchFile& pt = *d.pt;
  const PyValue& rec = *pt.root().get("records")->items[d.records.at(pass)];
  const std::string where = "records[" + std::to_string(d.records.at(pass)) + "]";
  std::vector<int64_t>& out = counts_[rank];
  out.assign(static_cast<size_t>(num_layers_) * num_experts_, 0);
  std::vector<int64_t> shape;
  const int64_t L = num_layers_, P = num_physical_;
  if (const PyValue* gpc = rec.get("global_physical_count")) {
    scratch_ = pt.tensor_values(*gpc, shape, "global_physical_count");
    if (shape.size() != 2 || shape[0] != L || shape[1] != P)
      throw InputError(pt.path(), "global_physical_count",
                       where + " is " + gpc->describe() + ", the physical-to-logical map is [" +
                           std::to_string(L) + ", " + std::to_string(P) + "]");
    int64_t neg = 0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t* c = scratch_.data() + l * P;
      const int64_t* map = d.p2l.data() + l * P;
      int64_t* o = out.data() + l * num_experts_;
      for (int64_t p = 0; p < P; ++p) {
        neg |= c[p];
        o[map[p]] += c[p];  // physical slot -> its logical expert (scatter-add)
      }
    }
    if (neg < 0) throw InputError(pt.path(), "global_physical_count", where + " holds a negative count");
    return;
  }
  // per_token dumps written before global_physical_count: count the physical ids of topk_ids_of_layer.
  const PyValue* topk = rec.get("topk_ids_of_layer");
  if (topk == nullptr)
    throw InputError(pt.path(), "global_physical_count",
                     where + " has neither global_physical_count nor topk_ids_of_layer");
  scratch_ = pt.tensor_values(*topk, shape, "topk_ids_of_layer");
  if (shape.size() != 3 || shape[0] != L)
    throw InputError(pt.path(), "topk_ids_of_layer",
                     where + " is " + topk->describe() + ", expected [" + std::to_string(L) + ", tokens, k]");
  const int64_t per_layer = shape[1] * shape[2];
  for (int64_t l = 0; l < L; ++l) {
    const int64_t* ids = scratch_.data() + l * per_layer;
    const int64_t* map = d.p2l.data() + l * P;
    int64_t* o = out.data() + l * num_experts_;
    for (int64_t i = 0; i < per_layer; ++i) {
      const int64_t p = ids[i];
      if (p == -1) continue;  // padding (k is fixed at 8; dense layers hold -1 rows)
      if (p < 0 || p >= P)
        throw InputError(
            pt.path(), "topk_ids_of_layer",
            where + ": physical id " + std::to_string(p) + " is outside [0, " + std::to_string(P) + ")");
      ++o[map[p]];
    }
  }
}

SglangPassStream::SglangPassStream(const std::vector<InputFile>& files, const ImportOptions& o,
                                   ImportReport& report) {
  report.format = "sglang";
  std::map<int, std::vector<const InputFile*>> by_rank;
  for (const InputFile& f : files) by_rank[f.rank].push_back(&f);
  if (by_rank.rbegin()->first != static_cast<int>(by_rank.size()) - 1)
    throw InputError(files.front().path, "rank",
                     "rank files must cover ranks 0.." + std::to_string(by_rank.size() - 1) +
                         ", found rank " + std::to_string(by_rank.rbegin()->first));
  int max_logical = -1;
  bool per_token = false, from_topk = false;
  for (const auto& [r, list] : by_rank) {
    rank_path_.push_back(list.front()->path);
    ranks_.emplace_back();
    for (const InputFile* f : list) {
      RankDump d;
      d.pt = std::make_unique<TorchFile>(f->path);
      const TorchFile& pt = *d.pt;
      if (pt.root().kind != PyValue::Kind::kDict)
        throw InputError(f->path, "pickle", "expected a dict, got " + pt.root().describe());
      const PyValue* records = pt.root().get("records");
      if (records == nullptr || records->kind != PyValue::Kind::kList)
        throw InputError(f->path, "records", "no 'records' list (per_pass/per_token)");
      const PyValue* map = pt.root().get("last_physical_to_logical_map");
      if (map == nullptr) throw InputError(f->path, "last_physical_to_logical_map", "missing");
      std::vector<int64_t> shape;
      d.p2l = pt.tensor_values(*map, shape, "last_physical_to_logical_map");
      if (shape.size() != 2)
        throw InputError(f->path, "last_physical_to_logical_map",
                         map->describe() + ", expected [layers, physical]");
      if (num_layers_ == 0)
        num_layers_ = static_cast<int>(shape[0]), num_physical_ = static_cast<int>(shape[1]);
      if (shape[0] != num_layers_ || shape[1] != num_physical_)
        throw InputError(f->path, "last_physical_to_logical_map",
                         map->describe() + ", but " + rank_path_[0] + " has [" + std::to_string(num_layers_) +
                             ", " + std::to_string(num_physical_) + "]");
      for (int64_t x : d.p2l)
        max_logical = std::max<int>(max_logical, static_cast<int>(std::min<int64_t>(x, 1 << 20)));
      for (size_t i = 0; i < records->items.size(); ++i) {
        const PyValue& rec = *records->items[i];
        const std::string where = "records[" + std::to_string(i) + "]";
        const PyValue* id = rec.get("forward_pass_id");
        const PyValue* rank = rec.get("rank");
        if (id == nullptr || id->kind != PyValue::Kind::kInt || rank == nullptr ||
            rank->kind != PyValue::Kind::kInt)
          throw InputError(f->path, where, "needs integer forward_pass_id and rank");
        if (rank->i != r)
          throw InputError(
              f->path, "rank",
              where + " has rank " + std::to_string(rank->i) + ", the file name says " + std::to_string(r));
        if (rec.get("topk_ids_of_layer") != nullptr) per_token = true;
        if (rec.get("global_physical_count") == nullptr) from_topk = true;
        bool twice = !d.records.emplace(id->i, i).second;
        for (const RankDump& other : ranks_.back()) twice = twice || other.records.count(id->i);
        if (twice)
          throw InputError(f->path, "forward_pass_id",
                           "forward pass " + std::to_string(id->i) + " of rank " + std::to_string(r) +
                               " twice (Duplicated forward_pass_id and rank)");
      }
      ranks_.back().push_back(std::move(d));
    }
  }
  num_experts_ = o.num_experts > 0 ? o.num_experts : max_logical + 1;
  for (size_t r = 0; r < ranks_.size(); ++r)
    for (const RankDump& d : ranks_[r])
      for (int64_t x : d.p2l)
        if (x < 0 || x >= num_experts_)
          throw InputError(
              d.pt->path(), "last_physical_to_logical_map",
              "logical id " + std::to_string(x) + " is outside [0, " + std::to_string(num_experts_) + ")");
  if (o.top_k <= 0)
    throw InputError("--top-k", "--top-k",
                     "the SGLang recorder does not record top-k: give the model's --top-k");
  if (o.top_k > num_experts_) throw InputError("--top-k", "--top-k", "exceeds the number of experts");
  replication_ = std::max(1, o.replication);
  const int num_files = static_cast<int>(ranks_.size());
  if (num_files % replication_ != 0)
    throw InputError(
        "--replication", "--replication",
        std::to_string(num_files) + " rank files are not a multiple of " + std::to_string(replication_));
  // Every rank must hold the same forward passes.
  std::set<int64_t> all;
  for (const RankDump& d : ranks_[0])
    for (const auto& [id, i] : d.records) all.insert(id);
  for (size_t r = 1; r < ranks_.size(); ++r) {
    size_t n = 0;
    for (const RankDump& d : ranks_[r]) n += d.records.size();
    if (n != all.size()) {
      for (int64_t id : all) dump_of(r, id);  // names the first missing pass
      throw InputError(rank_path_[r], "forward_pass_id", "holds other forward passes than " + rank_path_[0]);
    }
  }
  if (all.empty()) throw InputError(rank_path_[0], "records", "no record");

  // Pass 1, one forward pass at a time: routed tokens per layer, the largest row, replicas, empty passes.
  counts_.assign(ranks_.size(), {});
  std::vector<int64_t> routed(static_cast<size_t>(num_layers_), 0),
      max_row(static_cast<size_t>(num_layers_), 0);
  int64_t empty_passes = 0;
  for (int64_t pass : all) {
    int64_t total = 0;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      read_pass(r, pass);
      const size_t base = r - r % static_cast<size_t>(replication_);
      if (r != base && counts_[r] != counts_[base])
        throw InputError(dump_of(r, pass).pt->path(), "--replication",
                         "differs from rank " + std::to_string(base) + " in forward pass " +
                             std::to_string(pass) + ", but --replication " + std::to_string(replication_) +
                             " says they hold the same tokens");
      if (r != base) continue;
      for (int l = 0; l < num_layers_; ++l) {
        int64_t row = 0;
        for (int e = 0; e < num_experts_; ++e) row += counts_[r][static_cast<size_t>(l) * num_experts_ + e];
        routed[l] += row;
        max_row[l] = std::max(max_row[l], row);
        total += row;
      }
    }
    if (total > 0)
      passes_.push_back(pass);
    else
      ++empty_passes;
  }
  LayerFilter filter(o.layers);
  for (int l = 0; l < num_layers_; ++l) filter.observe(l, routed[l]);
  const std::vector<int> layers = filter.kept(rank_path_[0]);
  int64_t row_bound = 0;
  for (int l : layers) row_bound = std::max(row_bound, max_row[l]);
  if (passes_.empty()) throw InputError(rank_path_[0], "records", "no forward pass routes a token");

  const int N = num_files / replication_;
  manifest_.num_ranks = N;
  manifest_.num_experts = num_experts_;
  manifest_.top_k = o.top_k;
  manifest_.layers = layers;
  manifest_.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : tokens_for_row(row_bound, o.top_k);
  manifest_.num_records = static_cast<int64_t>(passes_.size() * layers.size());
  const std::string mode = per_token ? "per_token" : "per_pass";
  manifest_.model =
      o.model.empty() ? "SGLang expert distribution (" + mode + ", " + rank_path_[0] + ")" : o.model;
  size_t dumps = 0;
  for (const auto& r : ranks_) dumps = std::max(dumps, r.size());
  report.found.push_back(
      std::to_string(files.size()) + " file(s) in mode " + mode + " (" + std::to_string(num_files) +
      " ranks" + (dumps > 1 ? ", " + std::to_string(dumps) + " dumps merged" : std::string()) + "), " +
      std::to_string(num_physical_) + " physical slots -> " + std::to_string(num_experts_) +
      " logical experts, " + std::to_string(passes_.size()) + " forward passes with tokens");
  report.found.push_back("layers " + describe_ids(layers) + " route tokens; " +
                         std::to_string(manifest_.num_records) + " records");
  report.assumed.push_back(
      "physical slots mapped to logical experts through last_physical_to_logical_map; with DeepEP "
      "low_latency the counts are per destination, not per source");
  if (from_topk)
    report.assumed.push_back(
        "records without global_physical_count (per_token dumps of older SGLang): counted from "
        "topk_ids_of_layer (physical ids, -1 padding skipped)");
  else if (per_token)
    report.assumed.push_back("per_token extras (input_ids, topk_ids_of_layer) are not used");
  if (empty_passes > 0)
    report.assumed.push_back(std::to_string(empty_passes) +
                             " forward passes route no token (idle passes): dropped");
  filter.describe(report);
  if (replication_ > 1)
    report.assumed.push_back("--replication " + std::to_string(replication_) + " (TP attention) folded");
  report.assumed.push_back(
      "top-k " + std::to_string(o.top_k) + " (--top-k); T = " + std::to_string(manifest_.tokens_per_rank) +
      (o.tokens_per_rank > 0 ? " (--tokens-per-rank)" : " (smallest T holding the largest row)") +
      "; microbatch id = forward pass; shared experts are not logged");
  nlohmann::ordered_json p;
  p["recorded_by"] = "SGLang expert distribution recorder, mode " + mode;
  p["importer"] = "rackep trace import --from sglang";
  std::vector<std::string> names;
  for (const InputFile& f : files) names.push_back(f.path);
  p["files"] = names;
  p["source_ranks"] = "one rank file per source rank";
  p["replication"] = replication_;
  p["dense_layers_dropped"] = filter.dropped_empty();
  manifest_.provenance_json = p.dump();
  manifest_.validate(rank_path_[0]);
}

bool SglangPassStream::next(TraceRecord& record) {
  if (next_pass_ >= passes_.size()) return false;
  const int64_t pass = passes_[next_pass_];
  if (next_layer_ == 0)
    for (size_t r = 0; r < ranks_.size(); r += static_cast<size_t>(replication_)) read_pass(r, pass);
  const int layer = manifest_.layers[next_layer_];
  record.microbatch = pass;
  record.layer = layer;
  if (record.loads.num_ranks() != manifest_.num_ranks || record.loads.num_experts() != num_experts_)
    record.loads = LoadMatrix(manifest_.num_ranks, num_experts_);
  for (int s = 0; s < manifest_.num_ranks; ++s) {
    const int64_t* c =
        counts_[static_cast<size_t>(s) * replication_].data() + static_cast<size_t>(layer) * num_experts_;
    for (int e = 0; e < num_experts_; ++e)
      record.loads.at(s, e) = checked_count(c[e], rank_path_[s * replication_], "count");
  }
  if (++next_layer_ == manifest_.layers.size()) {
    next_layer_ = 0;
    ++next_pass_;
  }
  return true;
}

// ---- stat (global, one tensor) and the legacy CSV: small, held in memory
// ------------------------------------

std::unique_ptr<RecordStream> open_small(const std::vector<InputFile>& files, const ImportOptions& o,
                                         ImportReport& report) {
  const bool csv = files.front().csv;
  const bool global = !csv;
  int E = 0;
  std::vector<Table> tables;  // per rank (CSV) or the one stat table
  std::vector<std::string> paths;
  for (const InputFile& f : files) {
    paths.push_back(f.path);
    if (f.csv != csv || (global && files.size() > 1))
      throw InputError(f.path, "inputs", "mixes recorder modes (stat writes one file; import it on its own)");
  }
  if (csv) {
    std::map<int, const InputFile*> ranks;
    for (const InputFile& f : files)
      if (!ranks.emplace(f.rank, &f).second)
        throw InputError(f.path, "rank", "rank " + std::to_string(f.rank) + " twice");
    if (ranks.rbegin()->first != static_cast<int>(ranks.size()) - 1)
      throw InputError(files.front().path, "rank",
                       "rank files must cover ranks 0.." + std::to_string(ranks.size() - 1));
    for (const auto& [r, f] : ranks) {
      int e = 0;
      tables.push_back(read_csv(*f, o.num_experts, e));
      if (E != 0 && e != E)
        throw InputError(
            f->path, "num_experts",
            std::to_string(e) + " experts, rank 0 has " + std::to_string(E) + " (give --experts)");
      E = e;
    }
  } else {
    const std::string& path = files.front().path;
    check_zip_format(path);
    TorchFile pt(path);
    const PyValue* lc = pt.root().kind == PyValue::Kind::kDict ? pt.root().get("logical_count") : nullptr;
    if (lc == nullptr) {
      if (pt.root().kind == PyValue::Kind::kDict && pt.root().get("records") != nullptr)
        throw InputError(path, "rank", "a per_pass/per_token dump whose name does not end in _{rank}.pt");
      throw InputError(path, "logical_count",
                       "neither 'logical_count' (stat) nor a 'records' list (per_pass/per_token)");
    }
    std::vector<int64_t> shape;
    const std::vector<int64_t> v = pt.tensor_values(*lc, shape, "logical_count");
    if (shape.size() != 3)
      throw InputError(path, "logical_count", lc->describe() + ", expected [steps, layers, experts]");
    E = static_cast<int>(shape[2]);
    if (o.num_experts > 0 && o.num_experts != E)
      throw InputError(
          path, "logical_count",
          "has " + std::to_string(E) + " experts, --experts says " + std::to_string(o.num_experts));
    tables.emplace_back();
    for (int64_t s = 0; s < shape[0]; ++s)
      for (int64_t l = 0; l < shape[1]; ++l) {
        const auto* row = v.data() + (s * shape[1] + l) * shape[2];
        tables[0][{s, static_cast<int>(l)}].assign(row, row + shape[2]);
      }
  }
  if (o.top_k <= 0)
    throw InputError("--top-k", "--top-k",
                     "the SGLang recorder does not record top-k: give the model's --top-k");
  if (o.top_k > E) throw InputError("--top-k", "--top-k", "exceeds the number of experts");
  const int R = std::max(1, o.replication);
  std::vector<const Table*> by_rank;
  if (global) {
    if (o.num_ranks <= 0)
      throw InputError(
          "--ranks", "--ranks",
          "stat counts are summed over ranks: give --ranks N to spread them over N source ranks");
    for (auto& [key, v] : tables[0])
      for (int64_t& x : v) {
        if (x < 0) throw InputError(paths[0], "logical_count", "negative count");
        if (x % R != 0)
          throw InputError(
              "--replication", "--replication",
              "count " + std::to_string(x) + " of " + paths[0] + " is not divisible by " + std::to_string(R));
        x /= R;
      }
    by_rank.push_back(&tables[0]);
  } else {
    if (tables.size() % R != 0)
      throw InputError(
          "--replication", "--replication",
          std::to_string(tables.size()) + " rank files are not a multiple of " + std::to_string(R));
    for (size_t r = 0; r < tables.size(); ++r) {
      if (r % R != 0 && tables[r] != tables[r - r % R])
        throw InputError(paths[r], "--replication",
                         "differs from rank " + std::to_string(r - r % R) + ", but --replication " +
                             std::to_string(R) + " says they hold the same tokens");
      if (r % R == 0) by_rank.push_back(&tables[r]);
    }
  }
  const Table& keys = *by_rank[0];
  const int N = global ? o.num_ranks : static_cast<int>(by_rank.size());
  LayerFilter filter(o.layers);
  std::set<int64_t> steps, empty_steps;
  std::map<int64_t, int64_t> step_total;
  for (const auto& [key, v] : keys) {
    int64_t routed = 0;
    for (const Table* t : by_rank) {
      const auto it = t->find(key);
      if (it != t->end())
        for (int64_t x : it->second) routed += x;
    }
    filter.observe(key.second, routed);
    step_total[key.first] += routed;
  }
  for (const auto& [s, t] : step_total) (t > 0 ? steps : empty_steps).insert(s);
  const std::vector<int> layers = filter.kept(paths.front());
  TraceManifest m;
  m.num_ranks = N;
  m.num_experts = E;
  m.top_k = o.top_k;
  m.layers = layers;
  std::vector<TraceRecord> records;
  int64_t max_row = 0;
  for (int64_t s : steps)
    for (int layer : layers) {
      const auto it = keys.find({s, layer});
      if (it == keys.end()) continue;
      TraceRecord r;
      r.microbatch = s;
      r.layer = layer;
      r.loads = LoadMatrix(N, E);
      if (global) {
        spread_global_loads(it->second, o.seed, s * 1000003 + layer, r.loads);
      } else {
        for (int row = 0; row < N; ++row) {
          const auto found = by_rank[row]->find(it->first);
          if (found == by_rank[row]->end()) continue;
          for (int e = 0; e < E; ++e)
            r.loads.at(row, e) = checked_count(found->second[e], paths[row * R], "count");
        }
      }
      for (int64_t x : r.loads.source_totals()) max_row = std::max(max_row, x);
      records.push_back(std::move(r));
    }
  const std::string mode = csv ? "legacy csv" : "stat";
  m.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : tokens_for_row(max_row, o.top_k);
  m.model = o.model.empty() ? "SGLang expert distribution (" + mode + ", " + paths.front() + ")" : o.model;
  report.found.push_back(std::to_string(files.size()) + " file(s) in mode " + mode + ", " +
                         std::to_string(E) + " logical experts, " + std::to_string(steps.size()) +
                         " forward passes with tokens");
  report.found.push_back("layers " + describe_ids(layers) + " route tokens; " +
                         std::to_string(records.size()) + " records");
  if (global)
    report.assumed.push_back("stat counts are SUMMED over ranks (global only): spread evenly over " +
                             std::to_string(N) + " source ranks, seeded remainders (seed " +
                             std::to_string(o.seed) + ")");
  else
    report.found.push_back("per-source-rank counts of " + std::to_string(files.size()) + " rank files");
  if (!empty_steps.empty())
    report.assumed.push_back(
        std::to_string(empty_steps.size()) +
        " forward passes route no token (unused circular-buffer rows or idle passes): dropped");
  filter.describe(report);
  if (R > 1) report.assumed.push_back("--replication " + std::to_string(R) + " (TP attention) folded");
  report.assumed.push_back(
      "top-k " + std::to_string(o.top_k) + " (--top-k); T = " + std::to_string(m.tokens_per_rank) +
      " (smallest T holding the largest row); microbatch id = step; shared experts are not logged");
  nlohmann::ordered_json p;
  p["recorded_by"] = "SGLang expert distribution recorder, mode " + mode;
  p["importer"] = "rackep trace import --from sglang";
  p["files"] = paths;
  p["source_ranks"] =
      global ? "not recorded (summed): spread evenly, seeded" : "one rank file per source rank";
  p["replication"] = R;
  p["dense_layers_dropped"] = filter.dropped_empty();
  m.provenance_json = p.dump();
  m.num_records = static_cast<int64_t>(records.size());
  m.validate(paths.front());
  return std::make_unique<RecordListStream>(std::move(m), std::move(records));
}

}  // namespace

std::unique_ptr<RecordStream> open_sglang_recording(const std::vector<std::string>& inputs,
                                                    const ImportOptions& o, ImportReport& report) {
  report.format = "sglang";
  std::vector<std::string> paths;
  for (const std::string& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(in)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("expert_distribution_", 0) == 0 &&
            (e.path().extension() == ".pt" || e.path().extension() == ".csv"))
          found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) throw InputError(in, "inputs", "no expert_distribution_*.pt or *.csv files");
      paths.insert(paths.end(), found.begin(), found.end());
    } else {
      paths.push_back(in);
    }
  }
  if (paths.empty()) throw InputError("--from sglang", "inputs", "give the recorder's files or directory");
  // Saved /generate responses (return_routed_experts) and --init-expert-location JSON are other inputs.
  const std::string ext = fs::path(paths.front()).extension().string();
  if (ext == ".jsonl" || ext == ".json") {
    if (ext == ".json" && is_global_loads_json(paths.front())) return open_global_loads(paths, o, report);
    auto s = open_vllm_routed_experts(paths, o, report);
    report.format = "sglang";
    return s;
  }
  std::vector<InputFile> files;
  for (const std::string& p : paths) {
    files.push_back(classify(p));
    if (!files.back().csv) check_zip_format(p);
  }
  std::set<std::string> dumps;
  for (const InputFile& f : files) dumps.insert(f.dump);
  if (!o.dump.empty()) {
    if (!dumps.count(o.dump)) {
      std::string ids;
      for (const std::string& d : dumps) ids += (ids.empty() ? "" : ", ") + d;
      throw InputError("--dump", "--dump", "no dump '" + o.dump + "' in the inputs (dumps: " + ids + ")");
    }
    files.erase(
        std::remove_if(files.begin(), files.end(), [&](const InputFile& f) { return f.dump != o.dump; }),
        files.end());
  } else if (dumps.size() > 1 && !o.merge_dumps) {
    std::string ids;
    for (const std::string& d : dumps) ids += (ids.empty() ? "" : ", ") + d;
    throw InputError(
        files.front().path, "dump",
        std::to_string(dumps.size()) + " dumps in the inputs (ids " + ids +
            "): give --dump ID to import one, or --merge-dumps to merge them by (forward pass, rank) "
            "as SGLang's reader does");
  }
  if (!files.front().csv && files.front().rank >= 0) {
    for (const InputFile& f : files)
      if (f.csv || f.rank < 0)
        throw InputError(f.path, "inputs", "mixes recorder modes with " + files.front().path);
    return std::make_unique<SglangPassStream>(files, o, report);
  }
  if (o.merge_dumps && dumps.size() > 1)
    throw InputError("--merge-dumps", "--merge-dumps",
                     "only per_pass/per_token dumps merge; import stat or CSV dumps one by one");
  return open_small(files, o, report);
}

}  // namespace rackep
