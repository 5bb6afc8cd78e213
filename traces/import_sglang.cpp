#include "traces/import_sglang.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "traces/pickle_reader.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Key = std::pair<int64_t, int>;                // (microbatch, layer)
using Table = std::map<Key, std::vector<int64_t>>;  // counts per logical expert

// What one input file holds: per-source-rank counts of one rank, or global counts.
struct FileData {
  std::string path;
  int rank = -1;  // -1: global (stat)
  Table counts;
  int num_experts = 0;  // columns of every vector
  std::string mode;
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

FileData read_csv(const std::string& path, int num_experts_hint) {
  static const std::regex name_re(R"(expert_distribution_rank([0-9]+)_timestamp[0-9.]+\.csv$)");
  std::smatch m;
  const std::string fname = fs::path(path).filename().string();
  if (!std::regex_search(fname, m, name_re))
    throw InputError(path, "rank", "expected expert_distribution_rank{r}_timestamp{t}.csv");
  FileData f;
  f.path = path;
  f.mode = "legacy csv";
  const int64_t rank = stoi_field(m[1].str(), path, "rank");
  if (rank > (1 << 20))
    throw InputError(path, "rank", std::to_string(rank) + " in the file name is out of range");
  f.rank = static_cast<int>(rank);
  std::ifstream in(path);
  if (!in) throw InputError(path, "file", "cannot open");
  std::string line;
  if (!std::getline(in, line) || (line != "layer_id,expert_id,count" && line != "layer_id,expert_id,count\r"))
    throw InputError(path + ":1", "header", "expected 'layer_id,expert_id,count'");
  std::vector<std::tuple<int, int, int64_t>> rows;
  int max_expert = -1;
  for (int64_t no = 2; std::getline(in, line); ++no) {
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
  f.num_experts = num_experts_hint > 0 ? num_experts_hint : max_expert + 1;
  for (const auto& [layer, e, n] : rows) {
    auto& v = f.counts[{0, layer}];
    v.resize(static_cast<size_t>(f.num_experts), 0);
    v[e] += n;
  }
  return f;
}

// A 2-D integer tensor as rows.
std::vector<int64_t> tensor2d(const TorchFile& pt, const PyValue* t, const std::string& field, int64_t& rows,
                              int64_t& cols, int dims = 2) {
  if (t == nullptr) throw InputError(pt.path(), field, "missing");
  std::vector<int64_t> shape;
  std::vector<int64_t> v = pt.tensor_values(*t, shape, field);
  if (static_cast<int>(shape.size()) != dims)
    throw InputError(pt.path(), field, t->describe() + ", expected " + std::to_string(dims) + " dimensions");
  rows = shape[0];
  cols = shape.back();
  return v;
}

FileData read_pt(const std::string& path, int num_experts_hint) {
  TorchFile pt(path);
  const PyValue& root = pt.root();
  if (root.kind != PyValue::Kind::kDict)
    throw InputError(path, "pickle", "expected a dict, got " + root.describe());
  FileData f;
  f.path = path;
  if (const PyValue* lc = root.get("logical_count")) {  // stat / stat_approx: [S, L, E], summed over ranks
    f.mode = "stat";
    std::vector<int64_t> shape;
    const std::vector<int64_t> v = pt.tensor_values(*lc, shape, "logical_count");
    if (shape.size() != 3)
      throw InputError(path, "logical_count", lc->describe() + ", expected [steps, layers, experts]");
    f.num_experts = static_cast<int>(shape[2]);
    if (num_experts_hint > 0 && num_experts_hint != f.num_experts)
      throw InputError(
          path, "logical_count",
          "has " + std::to_string(shape[2]) + " experts, --experts says " + std::to_string(num_experts_hint));
    for (int64_t s = 0; s < shape[0]; ++s)
      for (int64_t l = 0; l < shape[1]; ++l) {
        const auto* row = v.data() + (s * shape[1] + l) * shape[2];
        f.counts[{s, static_cast<int>(l)}].assign(row, row + shape[2]);
      }
    return f;
  }
  const PyValue* records = root.get("records");
  if (records == nullptr || records->kind != PyValue::Kind::kList)
    throw InputError(path, "records",
                     "neither 'logical_count' (stat) nor a 'records' list (per_pass/per_token)");
  f.mode = "per_pass";
  int64_t map_layers = 0, physical = 0;
  const std::vector<int64_t> p2l = tensor2d(pt, root.get("last_physical_to_logical_map"),
                                            "last_physical_to_logical_map", map_layers, physical);
  int64_t max_logical = -1;
  for (int64_t x : p2l) max_logical = std::max(max_logical, x);
  f.num_experts = num_experts_hint > 0 ? num_experts_hint : static_cast<int>(max_logical + 1);
  for (int64_t x : p2l)
    if (x < 0 || x >= f.num_experts)
      throw InputError(
          path, "last_physical_to_logical_map",
          "logical id " + std::to_string(x) + " is outside [0, " + std::to_string(f.num_experts) + ")");
  for (size_t i = 0; i < records->items.size(); ++i) {
    const PyValue& rec = *records->items[i];
    const std::string where = "records[" + std::to_string(i) + "]";
    const PyValue* id = rec.get("forward_pass_id");
    const PyValue* rank = rec.get("rank");
    if (id == nullptr || id->kind != PyValue::Kind::kInt || rank == nullptr ||
        rank->kind != PyValue::Kind::kInt)
      throw InputError(path, where, "needs integer forward_pass_id and rank");
    if (rec.get("topk_ids_of_layer") != nullptr) f.mode = "per_token";
    if (f.rank >= 0 && rank->i != f.rank)
      throw InputError(
          path, "rank",
          where + " has rank " + std::to_string(rank->i) + ", earlier records " + std::to_string(f.rank));
    f.rank = static_cast<int>(rank->i);
    int64_t layers = 0, cols = 0;
    const std::vector<int64_t> c =
        tensor2d(pt, rec.get("global_physical_count"), "global_physical_count", layers, cols);
    if (layers != map_layers || cols != physical)
      throw InputError(path, "global_physical_count",
                       where + " is [" + std::to_string(layers) + ", " + std::to_string(cols) +
                           "], the physical-to-logical map is [" + std::to_string(map_layers) + ", " +
                           std::to_string(physical) + "]");
    for (int64_t l = 0; l < layers; ++l) {
      std::vector<int64_t>& out = f.counts[{id->i, static_cast<int>(l)}];
      if (!out.empty())
        throw InputError(path, "forward_pass_id", "forward pass " + std::to_string(id->i) + " twice");
      out.assign(static_cast<size_t>(f.num_experts), 0);
      for (int64_t p = 0; p < physical; ++p) {
        const int64_t n = c[l * physical + p];
        if (n < 0) throw InputError(path, "global_physical_count", where + " holds a negative count");
        out[p2l[l * physical + p]] += n;  // physical slot -> its logical expert (scatter-add)
      }
    }
  }
  if (f.rank < 0) throw InputError(path, "records", "no record");
  return f;
}

}  // namespace

std::unique_ptr<RecordStream> open_sglang_recording(const std::vector<std::string>& inputs,
                                                    const ImportOptions& o, ImportReport& report) {
  report.format = "sglang";
  std::vector<std::string> files;
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
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);
    }
  }
  if (files.empty()) throw InputError("--from sglang", "inputs", "give the recorder's files or directory");
  std::vector<FileData> data;
  for (const std::string& f : files)
    data.push_back(fs::path(f).extension() == ".csv" ? read_csv(f, o.num_experts)
                                                     : read_pt(f, o.num_experts));
  const std::string mode = data[0].mode;
  for (const FileData& d : data) {
    if ((d.mode == "stat") != (mode == "stat") || (d.mode == "legacy csv") != (mode == "legacy csv"))
      throw InputError(d.path, "inputs",
                       "recorded in mode " + d.mode + ", but " + data[0].path + " in " + mode);
    if (d.num_experts != data[0].num_experts)
      throw InputError(d.path, "num_experts",
                       std::to_string(d.num_experts) + " experts, " + data[0].path + " has " +
                           std::to_string(data[0].num_experts) + " (give --experts)");
  }
  const int E = data[0].num_experts;
  if (o.top_k <= 0)
    throw InputError("--top-k", "--top-k",
                     "the SGLang recorder does not record top-k: give the model's --top-k");
  if (o.top_k > E) throw InputError("--top-k", "--top-k", "exceeds the number of experts");
  const int R = std::max(1, o.replication);
  const bool global = mode == "stat";

  // Rows: global -> one table (summed over stat files); per-rank -> one table per rank, in rank order.
  std::vector<const FileData*> by_rank;
  Table summed;
  if (global) {
    if (data.size() != 1)
      throw InputError(data[1].path, "inputs", "stat mode writes one file; import them one by one");
    if (o.num_ranks <= 0)
      throw InputError(
          "--ranks", "--ranks",
          "stat counts are summed over ranks: give --ranks N to spread them over N source ranks");
    summed = data[0].counts;
    for (auto& [key, v] : summed)
      for (int64_t& x : v) {
        if (x < 0) throw InputError(data[0].path, "logical_count", "negative count");
        if (x % R != 0)
          throw InputError("--replication", "--replication",
                           "count " + std::to_string(x) + " of " + data[0].path + " is not divisible by " +
                               std::to_string(R));
        x /= R;
      }
  } else {
    std::map<int, const FileData*> ranks;
    for (const FileData& d : data)
      if (!ranks.emplace(d.rank, &d).second)
        throw InputError(d.path, "rank", "rank " + std::to_string(d.rank) + " twice");
    if (ranks.rbegin()->first != static_cast<int>(ranks.size()) - 1)
      throw InputError(data[0].path, "rank",
                       "rank files must cover ranks 0.." + std::to_string(ranks.size() - 1));
    if (ranks.size() % R != 0)
      throw InputError(
          "--replication", "--replication",
          std::to_string(ranks.size()) + " rank files are not a multiple of " + std::to_string(R));
    for (const auto& [r, d] : ranks) {
      if (d->counts.size() != ranks.begin()->second->counts.size() ||
          !std::equal(d->counts.begin(), d->counts.end(), ranks.begin()->second->counts.begin(),
                      [](const auto& a, const auto& b) { return a.first == b.first; }))
        throw InputError(d->path, "forward_pass_id",
                         "holds other forward passes than " + ranks.begin()->second->path);
      if (r % R != 0 && d->counts != ranks.at(r - r % R)->counts)
        throw InputError(d->path, "--replication",
                         "differs from rank " + std::to_string(r - r % R) + ", but --replication " +
                             std::to_string(R) + " says they hold the same tokens");
      if (r % R == 0) by_rank.push_back(d);
    }
  }
  const Table& keys = global ? summed : by_rank[0]->counts;
  const int N = global ? o.num_ranks : static_cast<int>(by_rank.size());

  LayerFilter filter(o.layers);
  std::set<int64_t> steps, empty_steps;
  std::map<int64_t, int64_t> step_total;
  for (const auto& [key, v] : keys) {
    int64_t routed = 0;
    if (global) {
      for (int64_t x : v) routed += x;
    } else {
      for (const FileData* d : by_rank)
        for (int64_t x : d->counts.at(key)) routed += x;
    }
    filter.observe(key.second, routed, global ? data[0].path : by_rank[0]->path, "layers");
    step_total[key.first] += routed;
  }
  for (const auto& [s, t] : step_total) (t > 0 ? steps : empty_steps).insert(s);
  const std::vector<int> layers = filter.kept(files.front());
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
          const std::vector<int64_t>& v = by_rank[row]->counts.at(it->first);
          for (int e = 0; e < E; ++e) r.loads.at(row, e) = checked_count(v[e], by_rank[row]->path, "count");
        }
      }
      for (int64_t x : r.loads.source_totals()) max_row = std::max(max_row, x);
      records.push_back(std::move(r));
    }
  m.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : tokens_for_row(max_row, o.top_k);
  m.model = o.model.empty() ? "SGLang expert distribution (" + mode + ", " + files.front() + ")" : o.model;

  report.found.push_back(std::to_string(files.size()) + " file(s) in mode " + mode + ", " +
                         std::to_string(E) + " logical experts, " + std::to_string(steps.size()) +
                         " forward passes with tokens");
  report.found.push_back("layers " + describe_ids(layers) + " route tokens; " +
                         std::to_string(records.size()) + " records");
  if (!global)
    report.found.push_back("per-source-rank counts of " + std::to_string(data.size()) + " rank files");
  if (global)
    report.assumed.push_back("stat counts are SUMMED over ranks (global only): spread evenly over " +
                             std::to_string(N) + " source ranks, seeded remainders (seed " +
                             std::to_string(o.seed) + ")");
  if (mode == "per_pass" || mode == "per_token")
    report.assumed.push_back(
        "physical slots mapped to logical experts through last_physical_to_logical_map; "
        "with DeepEP low_latency the counts are per destination, not per source");
  if (mode == "per_token")
    report.assumed.push_back("per_token extras (input_ids, topk_ids_of_layer) are not used");
  if (!empty_steps.empty())
    report.assumed.push_back(std::to_string(empty_steps.size()) +
                             " forward passes route no token (unused "
                             "circular-buffer rows or idle passes): dropped");
  if (!filter.dropped_empty().empty())
    report.assumed.push_back("layers " + describe_ids(filter.dropped_empty()) +
                             " route no token: dense, dropped");
  if (R > 1) report.assumed.push_back("--replication " + std::to_string(R) + " (TP attention) folded");
  report.assumed.push_back("top-k " + std::to_string(o.top_k) +
                           " (--top-k); T = " + std::to_string(m.tokens_per_rank) +
                           " (smallest T holding the largest row); microbatch id = "
                           "forward pass / step; shared experts are not logged");
  nlohmann::ordered_json p;
  p["recorded_by"] = "SGLang expert distribution recorder, mode " + mode;
  p["importer"] = "rackep trace import --from sglang";
  p["files"] = files;
  p["source_ranks"] =
      global ? "not recorded (summed): spread evenly, seeded" : "one rank file per source rank";
  p["replication"] = R;
  p["dense_layers_dropped"] = filter.dropped_empty();
  m.provenance_json = p.dump();
  m.num_records = static_cast<int64_t>(records.size());
  m.validate(files.front());
  return std::make_unique<RecordListStream>(std::move(m), std::move(records));
}

}  // namespace rackep
