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
#include "traces/composer.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

struct Triple {
  int row = 0;
  int expert = 0;
  int64_t count = 0;
};

// One parsed object without origin_rows: its tokens' ids [T][k], to compose.
struct TokenBatch {
  int layer = 0;
  int64_t batch_id = 0;
  int64_t tokens = 0;
  std::vector<int64_t> ids;
  std::string where;
};

// What pass 1 learns from the objects with origin_rows (pass 2 re-reads each line with a scratch copy).
struct Stats {
  int top_k = 0, max_row = -1, max_expert = -1;
  int64_t padding = 0, weights_seen = 0, empty_rows = 0, max_tokens = 0;
  std::set<std::string> requests;
  std::map<int64_t, int64_t> batch_tokens;  // tokens of each batch (counted once, not per layer)
};

// Validates one object with origin_rows and returns its sparse (row, expert) counts.
std::vector<Triple> count_pairs(const Json& obj, int64_t batch_id, const std::string& where,
                                const ImportOptions& o, Stats& st) {
  std::vector<Triple> out;
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
    ++st.weights_seen;
  }
  if (obj.contains("request_id")) st.requests.insert(obj["request_id"].dump());
  std::vector<uint64_t> pairs;
  std::map<int, int64_t> row_tokens;
  for (size_t t = 0; t < rows.size(); ++t) {
    if (!rows[t].is_number_integer() || rows[t].get<int64_t>() < 0 ||
        (o.num_ranks > 0 && rows[t].get<int64_t>() >= o.num_ranks) || rows[t].get<int64_t>() > 1000000)
      throw InputError(where, "origin_rows",
                       "token " + std::to_string(t) + ": " + rows[t].dump() + " is not a source row in [0, " +
                           (o.num_ranks > 0 ? std::to_string(o.num_ranks) : std::string("10^6")) + ")");
    const int row = rows[t].get<int>();
    st.max_row = std::max(st.max_row, row);
    ++row_tokens[row];
    const Json& tok = experts[t];
    if (!tok.is_array() || tok.empty())
      throw InputError(where, "topk_experts", "token " + std::to_string(t) + " is not a non-empty list");
    if (st.top_k == 0) st.top_k = static_cast<int>(tok.size());
    if (static_cast<int>(tok.size()) != st.top_k)
      throw InputError(where, "topk_experts",
                       "token " + std::to_string(t) + " has " + std::to_string(tok.size()) +
                           " experts, earlier tokens " + std::to_string(st.top_k));
    bool all_zero = st.top_k >= 2;
    for (const Json& e : tok) all_zero = all_zero && e == 0;
    if (all_zero) {  // a capture row without routing (dense layer, uncaptured token): no pair
      ++st.empty_rows;
      continue;
    }
    for (size_t i = 0; i < tok.size(); ++i) {
      const int64_t e = tok[i].is_number_integer() ? tok[i].get<int64_t>() : -2;
      const int64_t limit = o.num_experts > 0 ? o.num_experts : 65536;
      if (e < -1 || e >= limit)
        throw InputError(where, "topk_experts",
                         "token " + std::to_string(t) + ": " + tok[i].dump() +
                             " is not an expert id in [-1, " + std::to_string(limit) + ")");
      if (e == -1) {
        ++st.padding;
        continue;
      }
      for (size_t j = 0; j < i; ++j)
        if (tok[j] == tok[i])
          throw InputError(where, "topk_experts",
                           "token " + std::to_string(t) + " selects expert " + std::to_string(e) + " twice");
      st.max_expert = std::max(st.max_expert, static_cast<int>(e));
      pairs.push_back((static_cast<uint64_t>(row) << 32) | static_cast<uint64_t>(e));
    }
  }
  for (const auto& [row, n] : row_tokens) st.max_tokens = std::max(st.max_tokens, n);
  st.batch_tokens[batch_id] = std::max<int64_t>(st.batch_tokens[batch_id], static_cast<int64_t>(rows.size()));
  std::sort(pairs.begin(), pairs.end());
  for (size_t i = 0; i < pairs.size();) {
    size_t j = i;
    while (j < pairs.size() && pairs[j] == pairs[i]) ++j;
    out.push_back({static_cast<int>(pairs[i] >> 32), static_cast<int>(pairs[i] & 0xffffffffu),
                   static_cast<int64_t>(j - i)});
    i = j;
  }
  return out;
}

// One object with origin_rows: where it is (its counts are re-read in pass 2).
struct Batch {
  int layer = 0;
  int64_t batch_id = 0;
  std::vector<Triple> counts;
  std::string where;
  int64_t routed = 0;
  size_t file = 0;
  int64_t offset = 0;  // of its line
};

int64_t integer(const Json& obj, const char* field, const std::string& where) {
  if (!obj.contains(field)) throw InputError(where, field, "missing");
  const Json& v = obj[field];
  if (!v.is_number_integer()) throw InputError(where, field, v.dump() + " is not an integer");
  return v.get<int64_t>();
}

// Objects without origin_rows: batch b's tokens (in batch_id order) form sequence b; composed like vLLM.
std::unique_ptr<RecordStream> compose_token_batches(std::vector<TokenBatch>& batches,
                                                    const std::vector<std::string>& files,
                                                    const ImportOptions& o, ImportReport& report) {
  if (o.num_ranks <= 0 || o.tokens_per_rank <= 0)
    return compose_routing(TokenRouting{}, o, "JSONL without origin_rows", report);
  std::sort(batches.begin(), batches.end(), [](const TokenBatch& a, const TokenBatch& b) {
    return a.batch_id != b.batch_id ? a.batch_id < b.batch_id : a.layer < b.layer;
  });
  std::vector<int> layer_ids;
  for (const TokenBatch& b : batches)
    if (b.batch_id == batches.front().batch_id) layer_ids.push_back(b.layer);
  TokenRoutingBuilder builder(o.num_experts);
  const int k = static_cast<int>(batches.front().ids.size() / std::max<int64_t>(1, batches.front().tokens));
  std::vector<int64_t> rows;
  int64_t tokens = 0;
  for (size_t i = 0; i < batches.size();) {
    size_t j = i;
    while (j < batches.size() && batches[j].batch_id == batches[i].batch_id) ++j;
    std::vector<int> layers;
    for (size_t x = i; x < j; ++x) {
      layers.push_back(batches[x].layer);
      if (batches[x].tokens != batches[i].tokens)
        throw InputError(batches[x].where, "topk_experts",
                         std::to_string(batches[x].tokens) + " tokens, but layer " +
                             std::to_string(batches[i].layer) + " of batch " +
                             std::to_string(batches[i].batch_id) + " has " +
                             std::to_string(batches[i].tokens));
    }
    // [T][layers][k] from the per-layer [T][k] lists.
    const int64_t t_count = batches[i].tokens;
    rows.assign(static_cast<size_t>(t_count) * (j - i) * k, 0);
    for (size_t x = i; x < j; ++x)
      for (int64_t t = 0; t < t_count; ++t)
        std::copy_n(batches[x].ids.begin() + t * k, k,
                    rows.begin() + (t * static_cast<int64_t>(j - i) + (x - i)) * k);
    builder.add(rows.data(), t_count, layers, k, batches[i].where, "topk_experts");
    builder.close_sequence();
    tokens += t_count;
    for (size_t x = i; x < j; ++x)
      std::vector<int64_t>().swap(batches[x].ids);  // memory: once in the builder
    i = j;
  }
  TokenRouting r = builder.finish(o.layers, files.front(), report);
  r.model = o.model.empty() ? "per-token JSONL (" + files.front() + ")" : o.model;
  nlohmann::ordered_json p;
  p["recorded_by"] = "per-token JSONL without origin_rows: top-k experts per token, no source ranks";
  p["importer"] = "rackep trace import --from jsonl";
  p["files"] = files;
  p["tokens"] = tokens;
  r.provenance_json = p.dump();
  report.found.push_back(std::to_string(batches.size()) + " (layer, batch) objects without origin_rows: " +
                         std::to_string(r.num_sequences()) + " batches, " + std::to_string(tokens) +
                         " tokens, layers " + describe_ids(r.layers) + ", top-" + std::to_string(r.top_k));
  report.assumed.push_back("no origin_rows: each batch is one sequence, composed into ranks as for vLLM");
  return compose_routing(std::move(r), o, "JSONL without origin_rows", report);
}

// Pass 2: the objects in canonical order, each line re-read (seek to its offset) and counted again; memory is
// the object index (layer, batch, offset), not the counts.
class JsonlStream final : public RecordStream {
 public:
  JsonlStream(std::vector<std::string> files, ImportOptions options, Stats stats, TraceManifest manifest,
              std::vector<Batch> batches)
      : files_(std::move(files)),
        options_(std::move(options)),
        stats_(std::move(stats)),
        manifest_(std::move(manifest)),
        batches_(std::move(batches)) {}
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override {
    if (next_ >= batches_.size()) return false;
    const Batch& b = batches_[next_++];
    if (!in_.is_open() || open_ != b.file) {
      in_.close();
      in_.open(files_[b.file], std::ios::binary);
      open_ = b.file;
    }
    in_.clear();
    in_.seekg(b.offset);
    std::string line;
    if (!in_ || !std::getline(in_, line))
      throw InputError(b.where, "file", "cannot re-read: the file changed");
    check_json_depth(line, b.where);
    const Json obj = Json::parse(line, nullptr, false);
    if (obj.is_discarded() || !obj.is_object()) throw InputError(b.where, "file", "changed while importing");
    Stats scratch;
    scratch.top_k = stats_.top_k;
    record.layer = b.layer;
    record.microbatch = b.batch_id;
    record.loads = LoadMatrix(manifest_.num_ranks, manifest_.num_experts);
    for (const Triple& t : count_pairs(obj, b.batch_id, b.where, options_, scratch))
      record.loads.at(t.row, t.expert) = checked_count(t.count, b.where, "topk_experts");
    return true;
  }

 private:
  std::vector<std::string> files_;
  ImportOptions options_;
  Stats stats_;
  TraceManifest manifest_;
  std::vector<Batch> batches_;
  std::ifstream in_;
  size_t open_ = 0, next_ = 0;
};

}  // namespace

std::unique_ptr<RecordStream> open_token_jsonl(const std::vector<std::string>& files, const ImportOptions& o,
                                               ImportReport& report) {
  report.format = "jsonl";
  if (files.empty()) throw InputError("--from jsonl", "inputs", "give at least one .jsonl file");
  std::vector<Batch> batches;
  std::vector<TokenBatch> token_batches;
  int composed = -1;  // 1: objects without origin_rows
  std::set<std::pair<int64_t, int>> seen;
  Stats st;
  for (size_t file_index = 0; file_index < files.size(); ++file_index) {
    const std::string& path = files[file_index];
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "file", "cannot open");
    std::string line;
    int64_t line_no = 0, next_offset = 0;
    while (std::getline(in, line)) {
      ++line_no;
      const int64_t line_offset = next_offset;
      next_offset += static_cast<int64_t>(line.size()) + 1;
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
      const bool has_rows = obj.contains("origin_rows");
      if (composed < 0) composed = has_rows ? 0 : 1;
      if (has_rows != (composed == 0))
        throw InputError(
            where, "origin_rows",
            composed ? "present here but absent from the first object" : "missing (earlier objects have it)");
      if (has_rows && !obj["origin_rows"].is_array()) throw InputError(where, "origin_rows", "not an array");
      if (!obj.contains("topk_experts") || !obj["topk_experts"].is_array())
        throw InputError(where, "topk_experts", "missing or not an array");
      if (composed) {  // no source ranks: keep the tokens, composed into ranks below (as for vLLM)
        const Json& experts = obj["topk_experts"];
        TokenBatch tb;
        tb.layer = b.layer;
        tb.batch_id = b.batch_id;
        tb.where = where;
        tb.tokens = static_cast<int64_t>(experts.size());
        for (size_t t = 0; t < experts.size(); ++t) {
          const Json& tok = experts[t];
          if (!tok.is_array() || tok.empty())
            throw InputError(where, "topk_experts",
                             "token " + std::to_string(t) + " is not a non-empty list");
          if (st.top_k == 0) st.top_k = static_cast<int>(tok.size());
          if (static_cast<int>(tok.size()) != st.top_k)
            throw InputError(where, "topk_experts",
                             "token " + std::to_string(t) + " has " + std::to_string(tok.size()) +
                                 " experts, earlier tokens " + std::to_string(st.top_k));
          for (const Json& e : tok) tb.ids.push_back(e.is_number_integer() ? e.get<int64_t>() : -2);
        }
        token_batches.push_back(std::move(tb));
        continue;
      }
      b.counts = count_pairs(obj, b.batch_id, where, o, st);
      for (const Triple& t : b.counts) b.routed += t.count;
      b.counts.clear();
      b.counts.shrink_to_fit();  // memory: pass 2 re-reads the line (offset below)
      b.file = file_index;
      b.offset = line_offset;
      batches.push_back(std::move(b));
    }
    if (in.bad()) throw InputError(path, "file", "read error");
  }
  if (batches.empty() && token_batches.empty())
    throw InputError(files.front(), "json", "no (layer, batch) object in the input");
  if (st.top_k == 0) throw InputError(files.front(), "topk_experts", "no token in the input");
  if (composed == 1) return compose_token_batches(token_batches, files, o, report);
  int64_t tokens = 0;
  for (const auto& [id, n] : st.batch_tokens) tokens += n;

  LayerFilter filter(o.layers);
  for (const Batch& b : batches) filter.observe(b.layer, b.routed);
  const std::vector<int> layers = filter.kept(files.front());
  TraceManifest m;
  m.provenance_json = "{}";  // set below; the shape is validated before any record is allocated
  m.num_ranks = o.num_ranks > 0 ? o.num_ranks : st.max_row + 1;
  m.num_experts = o.num_experts > 0 ? o.num_experts : st.max_expert + 1;
  m.top_k = st.top_k;
  if (m.top_k > m.num_experts)
    throw InputError(files.front(), "topk_experts",
                     "top-" + std::to_string(st.top_k) + " but only " + std::to_string(m.num_experts) +
                         " experts (give --experts)");
  m.layers = layers;
  m.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : std::max<int64_t>(1, st.max_tokens);
  m.model = o.model.empty() ? "per-token JSONL (" + files.front() + ")" : o.model;
  m.validate(files.front());

  std::vector<size_t> order;
  for (size_t i = 0; i < batches.size(); ++i)
    if (std::find(layers.begin(), layers.end(), batches[i].layer) != layers.end()) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (batches[a].batch_id != batches[b].batch_id) return batches[a].batch_id < batches[b].batch_id;
    return m.layer_position(batches[a].layer) < m.layer_position(batches[b].layer);
  });
  std::set<int64_t> batch_ids;
  for (const Batch& b : batches) batch_ids.insert(b.batch_id);
  std::vector<Batch> kept;
  kept.reserve(order.size());
  for (size_t i : order) kept.push_back(std::move(batches[i]));
  const size_t num_objects = batches.size();
  std::vector<Batch>().swap(batches);

  report.found.push_back(std::to_string(num_objects) + " (layer, batch) objects in " +
                         std::to_string(files.size()) + " file(s), " + std::to_string(tokens) + " tokens, " +
                         std::to_string(batch_ids.size()) + " batches");
  report.found.push_back("layers " + describe_ids(layers) + ", top-" + std::to_string(st.top_k) +
                         ", source rows 0.." + std::to_string(st.max_row) + ", expert ids 0.." +
                         std::to_string(st.max_expert));
  report.found.push_back(
      std::to_string(kept.size()) + " records" +
      (st.weights_seen > 0 ? "; gate weights present (validated, not used)" : "") +
      (st.requests.empty() ? "" : "; " + std::to_string(st.requests.size()) + " request ids"));
  report.assumed.push_back(o.num_experts > 0
                               ? "E = " + std::to_string(m.num_experts) + " (--experts)"
                               : "E = largest expert id + 1 = " + std::to_string(m.num_experts) +
                                     " (not recorded; give --experts for the model's count)");
  report.assumed.push_back(o.num_ranks > 0 ? "N = " + std::to_string(m.num_ranks) + " (--ranks)"
                                           : "N = largest origin row + 1 = " + std::to_string(m.num_ranks));
  report.assumed.push_back(
      "microbatch id = batch_id; T = " + std::to_string(m.tokens_per_rank) +
      (o.tokens_per_rank > 0 ? " (--tokens-per-rank)" : " (the most tokens of one row in a batch)"));
  if (st.padding > 0)
    report.assumed.push_back(std::to_string(st.padding) + " expert slots of -1 padding dropped");
  if (st.empty_rows > 0)
    report.assumed.push_back(std::to_string(st.empty_rows) +
                             " token rows of all-zero ids (capture rows without routing) "
                             "counted for no expert");
  filter.describe(report);
  nlohmann::ordered_json p;
  p["recorded_by"] =
      "per-token JSONL (moe-balance sim/trace_format.md): origin row and top-k experts per token";
  p["importer"] = "rackep trace import --from jsonl";
  p["files"] = files;
  p["tokens"] = tokens;
  p["padding_dropped"] = st.padding;
  p["num_experts"] = o.num_experts > 0 ? "--experts" : "largest id + 1";
  p["dense_layers_dropped"] = filter.dropped_empty();
  m.provenance_json = p.dump();
  m.num_records = static_cast<int64_t>(kept.size());
  m.validate(files.front());
  return std::make_unique<JsonlStream>(files, o, st, std::move(m), std::move(kept));
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
