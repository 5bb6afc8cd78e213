#include "traces/import_jsonl.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "core/output_file.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

struct Triple {
  int row = 0;
  int expert = 0;
  int64_t count = 0;
};

// One parsed object: its counts, sparse.
struct Batch {
  int layer = 0;
  int64_t batch_id = 0;
  std::vector<Triple> counts;
  std::string where;
};

int64_t integer(const Json& obj, const char* field, const std::string& where) {
  if (!obj.contains(field)) throw InputError(where, field, "missing");
  const Json& v = obj[field];
  if (!v.is_number_integer()) throw InputError(where, field, v.dump() + " is not an integer");
  return v.get<int64_t>();
}

}  // namespace

std::unique_ptr<RecordStream> open_token_jsonl(const std::vector<std::string>& files, const ImportOptions& o,
                                               ImportReport& report) {
  report.format = "jsonl";
  if (files.empty()) throw InputError("--from jsonl", "inputs", "give at least one .jsonl file");
  std::vector<Batch> batches;
  std::set<std::pair<int64_t, int>> seen;
  int top_k = 0, max_row = -1, max_expert = -1;
  int64_t tokens = 0, padding = 0, weights_seen = 0;
  int64_t max_tokens = 0;
  std::set<std::string> requests;
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "file", "cannot open");
    std::string line;
    int64_t line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = path + ":" + std::to_string(line_no);
      check_json_depth(line, where);
      const Json obj = Json::parse(line, nullptr, false);
      if (obj.is_discarded() || !obj.is_object()) throw InputError(where, "json", "not a JSON object");
      Batch b;
      b.where = where;
      const int64_t layer = integer(obj, "layer", where);
      if (layer < 0 || layer > 1000000)
        throw InputError(where, "layer", std::to_string(layer) + " is not a layer id");
      b.layer = static_cast<int>(layer);
      b.batch_id = integer(obj, "batch_id", where);
      if (b.batch_id < 0) throw InputError(where, "batch_id", "must be non-negative");
      if (!seen.insert({b.batch_id, b.layer}).second)
        throw InputError(where, "batch_id",
                         "(layer " + std::to_string(b.layer) + ", batch " + std::to_string(b.batch_id) +
                             ") appears twice");
      if (!obj.contains("origin_rows") || !obj["origin_rows"].is_array())
        throw InputError(where, "origin_rows", "missing or not an array");
      if (!obj.contains("topk_experts") || !obj["topk_experts"].is_array())
        throw InputError(where, "topk_experts", "missing or not an array");
      const Json& rows = obj["origin_rows"];
      const Json& experts = obj["topk_experts"];
      if (rows.size() != experts.size())
        throw InputError(
            where, "topk_experts",
            std::to_string(experts.size()) + " tokens, but origin_rows has " + std::to_string(rows.size()));
      if (obj.contains("topk_weights")) {
        const Json& w = obj["topk_weights"];
        if (!w.is_array() || w.size() != experts.size())
          throw InputError(where, "topk_weights", "must hold one list per token like topk_experts");
        ++weights_seen;
      }
      if (obj.contains("request_id")) requests.insert(obj["request_id"].dump());
      std::vector<uint64_t> pairs;
      std::map<int, int64_t> row_tokens;
      for (size_t t = 0; t < rows.size(); ++t) {
        if (!rows[t].is_number_integer() || rows[t].get<int64_t>() < 0 ||
            (o.num_ranks > 0 && rows[t].get<int64_t>() >= o.num_ranks) || rows[t].get<int64_t>() > 1000000)
          throw InputError(where, "origin_rows",
                           "token " + std::to_string(t) + ": " + rows[t].dump() +
                               " is not a source row in [0, " +
                               (o.num_ranks > 0 ? std::to_string(o.num_ranks) : std::string("10^6")) + ")");
        const int row = rows[t].get<int>();
        max_row = std::max(max_row, row);
        ++row_tokens[row];
        const Json& tok = experts[t];
        if (!tok.is_array() || tok.empty())
          throw InputError(where, "topk_experts", "token " + std::to_string(t) + " is not a non-empty list");
        if (top_k == 0) top_k = static_cast<int>(tok.size());
        if (static_cast<int>(tok.size()) != top_k)
          throw InputError(where, "topk_experts",
                           "token " + std::to_string(t) + " has " + std::to_string(tok.size()) +
                               " experts, earlier tokens " + std::to_string(top_k));
        for (size_t i = 0; i < tok.size(); ++i) {
          const int64_t e = tok[i].is_number_integer() ? tok[i].get<int64_t>() : -2;
          const int64_t limit = o.num_experts > 0 ? o.num_experts : 65536;
          if (e < -1 || e >= limit)
            throw InputError(where, "topk_experts",
                             "token " + std::to_string(t) + ": " + tok[i].dump() +
                                 " is not an expert id in [-1, " + std::to_string(limit) + ")");
          if (e == -1) {
            ++padding;
            continue;
          }
          for (size_t j = 0; j < i; ++j)
            if (tok[j] == tok[i])
              throw InputError(
                  where, "topk_experts",
                  "token " + std::to_string(t) + " selects expert " + std::to_string(e) + " twice");
          max_expert = std::max(max_expert, static_cast<int>(e));
          pairs.push_back((static_cast<uint64_t>(row) << 32) | static_cast<uint64_t>(e));
        }
      }
      for (const auto& [row, n] : row_tokens) max_tokens = std::max(max_tokens, n);
      tokens += static_cast<int64_t>(rows.size());
      std::sort(pairs.begin(), pairs.end());
      for (size_t i = 0; i < pairs.size();) {
        size_t j = i;
        while (j < pairs.size() && pairs[j] == pairs[i]) ++j;
        b.counts.push_back({static_cast<int>(pairs[i] >> 32), static_cast<int>(pairs[i] & 0xffffffffu),
                            static_cast<int64_t>(j - i)});
        i = j;
      }
      batches.push_back(std::move(b));
    }
    if (in.bad()) throw InputError(path, "file", "read error");
  }
  if (batches.empty()) throw InputError(files.front(), "json", "no (layer, batch) object in the input");
  if (top_k == 0) throw InputError(files.front(), "topk_experts", "no token in the input");

  LayerFilter filter(o.layers);
  for (const Batch& b : batches) {
    int64_t routed = 0;
    for (const Triple& t : b.counts) routed += t.count;
    filter.observe(b.layer, routed, b.where, "layer");
  }
  const std::vector<int> layers = filter.kept(files.front());
  TraceManifest m;
  m.provenance_json = "{}";  // set below; the shape is validated before any record is allocated
  m.num_ranks = o.num_ranks > 0 ? o.num_ranks : max_row + 1;
  m.num_experts = o.num_experts > 0 ? o.num_experts : max_expert + 1;
  m.top_k = top_k;
  if (m.top_k > m.num_experts)
    throw InputError(files.front(), "topk_experts",
                     "top-" + std::to_string(top_k) + " but only " + std::to_string(m.num_experts) +
                         " experts (give --experts)");
  m.layers = layers;
  m.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : std::max<int64_t>(1, max_tokens);
  m.model = o.model.empty() ? "per-token JSONL (" + files.front() + ")" : o.model;
  m.validate(files.front());

  std::vector<size_t> order;
  for (size_t i = 0; i < batches.size(); ++i)
    if (std::find(layers.begin(), layers.end(), batches[i].layer) != layers.end()) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (batches[a].batch_id != batches[b].batch_id) return batches[a].batch_id < batches[b].batch_id;
    return m.layer_position(batches[a].layer) < m.layer_position(batches[b].layer);
  });
  std::vector<TraceRecord> records;
  std::set<int64_t> batch_ids;
  for (size_t i : order) {
    TraceRecord r;
    r.layer = batches[i].layer;
    r.microbatch = batches[i].batch_id;
    batch_ids.insert(r.microbatch);
    r.loads = LoadMatrix(m.num_ranks, m.num_experts);
    for (const Triple& t : batches[i].counts)
      r.loads.at(t.row, t.expert) = checked_count(t.count, batches[i].where, "topk_experts");
    records.push_back(std::move(r));
  }

  report.found.push_back(std::to_string(batches.size()) + " (layer, batch) objects in " +
                         std::to_string(files.size()) + " file(s), " + std::to_string(tokens) + " tokens, " +
                         std::to_string(batch_ids.size()) + " batches");
  report.found.push_back("layers " + describe_ids(layers) + ", top-" + std::to_string(top_k) +
                         ", source rows 0.." + std::to_string(max_row) + ", expert ids 0.." +
                         std::to_string(max_expert));
  report.found.push_back(std::to_string(records.size()) + " records" +
                         (weights_seen > 0 ? "; gate weights present (validated, not used)" : "") +
                         (requests.empty() ? "" : "; " + std::to_string(requests.size()) + " request ids"));
  report.assumed.push_back(o.num_experts > 0
                               ? "E = " + std::to_string(m.num_experts) + " (--experts)"
                               : "E = largest expert id + 1 = " + std::to_string(m.num_experts) +
                                     " (not recorded; give --experts for the model's count)");
  report.assumed.push_back(o.num_ranks > 0 ? "N = " + std::to_string(m.num_ranks) + " (--ranks)"
                                           : "N = largest origin row + 1 = " + std::to_string(m.num_ranks));
  report.assumed.push_back(
      "microbatch id = batch_id; T = " + std::to_string(m.tokens_per_rank) +
      (o.tokens_per_rank > 0 ? " (--tokens-per-rank)" : " (the most tokens of one row in a batch)"));
  if (padding > 0) report.assumed.push_back(std::to_string(padding) + " expert slots of -1 padding dropped");
  if (!filter.dropped_empty().empty())
    report.assumed.push_back("layers " + describe_ids(filter.dropped_empty()) +
                             " route no token: dense, dropped");
  if (!filter.missing().empty())
    report.assumed.push_back("--layers " + describe_ids(filter.missing()) + " are not in the input");
  nlohmann::ordered_json p;
  p["recorded_by"] =
      "per-token JSONL (moe-balance sim/trace_format.md): origin row and top-k experts per token";
  p["importer"] = "rackep trace import --from jsonl";
  p["files"] = files;
  p["tokens"] = tokens;
  p["padding_dropped"] = padding;
  p["num_experts"] = o.num_experts > 0 ? "--experts" : "largest id + 1";
  p["dense_layers_dropped"] = filter.dropped_empty();
  m.provenance_json = p.dump();
  m.num_records = static_cast<int64_t>(records.size());
  m.validate(files.front());
  return std::make_unique<RecordListStream>(std::move(m), std::move(records));
}

void write_token_jsonl(RecordStream& in, const std::string& path) {
  OutputFile file(path, "--out", /*force=*/false);  // written beside `path`, renamed when complete
  std::ostream& out = file.stream();
  {
    const int k = in.manifest().top_k;
    TraceRecord r;
    std::vector<int> pairs;
    while (in.next(r)) {
      std::string rows = "[", experts = "[";
      for (int s = 0; s < r.loads.num_ranks(); ++s) {
        pairs.clear();
        for (int e = 0; e < r.loads.num_experts(); ++e) pairs.insert(pairs.end(), r.loads.at(s, e), e);
        const int64_t n = static_cast<int64_t>(pairs.size()) / k;
        bool ok = static_cast<int64_t>(pairs.size()) % k == 0;
        for (int e = 0; ok && e < r.loads.num_experts(); ++e) ok = r.loads.at(s, e) <= n;
        if (!ok)
          throw InputError(path, "loads",
                           "record (layer " + std::to_string(r.layer) + ", microbatch " +
                               std::to_string(r.microbatch) + ") source rank " + std::to_string(s) +
                               " is not a set of whole top-" + std::to_string(k) + " tokens");
        // Column-wise deal: token t takes pairs t, t + n, ..., so its k experts are distinct (no run > n).
        for (int64_t t = 0; t < n; ++t) {
          if (rows.size() > 1) rows += ",", experts += ",";
          rows += std::to_string(s);
          experts += "[";
          for (int i = 0; i < k; ++i) experts += (i ? "," : "") + std::to_string(pairs[t + i * n]);
          experts += "]";
        }
      }
      out << "{\"layer\":" << r.layer << ",\"batch_id\":" << r.microbatch << ",\"origin_rows\":" << rows
          << "],\"topk_experts\":" << experts << "]}\n";
    }
  }
  file.commit();
}

}  // namespace rackep
