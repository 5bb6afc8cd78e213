#include "traces/import_loads.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "traces/npy.hpp"
#include "traces/pickle_reader.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

struct Matrix {
  std::vector<int64_t> shape;  // [S, L, E] (S = 1 for a 2-D input)
  std::vector<int64_t> values;
  std::string field;    // where in the file
  std::string written;  // what wrote it, for the report
};

void to_3d(Matrix& m, const std::string& path) {
  if (m.shape.size() == 2) m.shape.insert(m.shape.begin(), 1);
  if (m.shape.size() != 3 || m.shape[1] <= 0 || m.shape[2] <= 0)
    throw InputError(path, m.field,
                     "expected an integer matrix [layers, experts] or [steps, layers, experts]");
}

Matrix from_json(const std::string& path) {
  const std::string text = read_file_text(path);
  check_json_depth(text, path);
  const Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded()) throw InputError(path, "json", "not JSON");
  Matrix m;
  const Json* a = &j;
  m.field = "json";
  m.written = "a JSON nested list";
  if (j.is_object()) {
    for (const char* key : {"logical_count", "weight", "expert_load_view"})
      if (j.contains(key)) {
        a = &j[key];
        m.field = key;
        m.written = std::string(key) == "logical_count"
                        ? "SGLang --init-expert-location JSON {\"logical_count\"}"
                    : std::string(key) == "weight" ? "DeepSeek EPLB weight (JSON)"
                                                   : "expert_load_view (JSON)";
        break;
      }
    if (a == &j) throw InputError(path, "json", "an object without \"logical_count\" or \"weight\"");
  }
  // Shape from the nesting; every leaf an integer (floats with integer values accepted).
  const Json* cur = a;
  while (cur->is_array()) {
    m.shape.push_back(static_cast<int64_t>(cur->size()));
    if (cur->empty()) break;
    cur = &(*cur)[0];
  }
  std::vector<const Json*> stack{a};
  std::function<void(const Json&, size_t)> walk = [&](const Json& v, size_t depth) {
    if (depth == m.shape.size()) {
      double d = v.is_number() ? v.get<double>() : -1.0;
      if (!v.is_number() || d < 0 || d != std::floor(d) || d > 9.0e15)
        throw InputError(path, m.field, v.dump() + " is not a non-negative integer count");
      m.values.push_back(static_cast<int64_t>(d));
      return;
    }
    if (!v.is_array() || static_cast<int64_t>(v.size()) != m.shape[depth])
      throw InputError(path, m.field, "rows of different lengths (not a matrix)");
    for (const Json& x : v) walk(x, depth + 1);
  };
  walk(*a, 0);
  return m;
}

Matrix from_npy(const std::string& path) {
  const NpyArrayInfo info = read_npy_info(path);
  const std::string bytes = read_file_text(path);
  Matrix m;
  m.field = "weight";
  m.written = "DeepSeek EPLB weight (np.save .npy)";
  m.shape = info.shape;
  m.values.resize(static_cast<size_t>(info.num_elements));
  const char* p = bytes.data() + info.data_offset_bytes;
  for (int64_t i = 0; i < info.num_elements; ++i) {
    if (info.dtype == NpyDtype::kInt64) {
      int64_t v;
      std::memcpy(&v, p + i * 8, 8);
      m.values[static_cast<size_t>(i)] = v;
    } else {
      int32_t v;
      std::memcpy(&v, p + i * 4, 4);
      m.values[static_cast<size_t>(i)] = v;
    }
  }
  return m;
}

Matrix from_pt(const std::string& path) {
  TorchFile pt(path);
  const PyValue* t = &pt.root();
  Matrix m;
  m.field = "tensor";
  m.written = "torch.save of a load tensor (vLLM / vllm-ascend expert_load_view.pt)";
  if (t->kind == PyValue::Kind::kDict) {
    const PyValue* found = nullptr;
    for (const char* key : {"expert_load_view", "logical_count", "weight"})
      if (found == nullptr && (found = t->get(key)) != nullptr) m.field = key;
    if (found == nullptr)
      throw InputError(path, "pickle",
                       "a dict without \"expert_load_view\", \"logical_count\" or \"weight\"");
    t = found;
  }
  m.values = pt.tensor_values(*t, m.shape, m.field);
  return m;
}

}  // namespace

bool is_global_loads_json(const std::string& path) {
  std::ifstream in(path);
  std::string head(4096, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  return head.find("\"logical_count\"") != std::string::npos || head.find("\"weight\"") != std::string::npos;
}

std::unique_ptr<RecordStream> open_global_loads(const std::vector<std::string>& inputs,
                                                const ImportOptions& o, ImportReport& report) {
  if (report.format.empty()) report.format = "loads";
  if (inputs.size() != 1)
    throw InputError("--from loads", "inputs",
                     "one load matrix file at a time, got " + std::to_string(inputs.size()));
  const std::string& path = inputs.front();
  const std::string ext = fs::path(path).extension().string();
  Matrix m = ext == ".npy" ? from_npy(path) : ext == ".pt" || ext == ".pth" ? from_pt(path) : from_json(path);
  to_3d(m, path);
  const int64_t S = m.shape[0], L = m.shape[1];
  const int E = static_cast<int>(m.shape[2]);
  if (o.num_experts > 0 && o.num_experts != E)
    throw InputError(
        path, m.field,
        "has " + std::to_string(E) + " experts, --experts says " + std::to_string(o.num_experts));
  if (o.num_ranks <= 0)
    throw InputError("--ranks", "--ranks",
                     "the loads are global (summed over ranks): give --ranks N to spread them");
  if (o.top_k <= 0 || o.top_k > E)
    throw InputError("--top-k", "--top-k",
                     "load matrices do not record top-k: give the model's --top-k (at most E)");
  const int R = std::max(1, o.replication);
  LayerFilter filter(o.layers);
  for (int64_t l = 0; l < L; ++l) {
    int64_t routed = 0;
    for (int64_t s = 0; s < S; ++s)
      for (int e = 0; e < E; ++e) {
        int64_t& x = m.values[static_cast<size_t>((s * L + l) * E + e)];
        if (x < 0) throw InputError(path, m.field, "negative count at layer " + std::to_string(l));
        if (x % R != 0)
          throw InputError(
              "--replication", "--replication",
              "count " + std::to_string(x) + " of " + path + " is not divisible by " + std::to_string(R));
        x /= R;
        routed += x;
      }
    filter.observe(static_cast<int>(l), routed);
  }
  const std::vector<int> layers = filter.kept(path);
  TraceManifest man;
  man.num_ranks = o.num_ranks;
  man.num_experts = E;
  man.top_k = o.top_k;
  man.layers = layers;
  std::vector<TraceRecord> records;
  int64_t max_row = 0, empty_steps = 0;
  std::vector<int64_t> global(static_cast<size_t>(E));
  for (int64_t s = 0; s < S; ++s) {
    int64_t step_total = 0;
    for (int layer : layers)
      for (int e = 0; e < E; ++e) step_total += m.values[static_cast<size_t>((s * L + layer) * E + e)];
    if (step_total == 0) {
      ++empty_steps;
      continue;
    }
    for (int layer : layers) {
      TraceRecord r;
      r.microbatch = s;
      r.layer = layer;
      r.loads = LoadMatrix(o.num_ranks, E);
      for (int e = 0; e < E; ++e) {
        global[static_cast<size_t>(e)] = m.values[static_cast<size_t>((s * L + layer) * E + e)];
        checked_count(global[static_cast<size_t>(e)], path, m.field);
      }
      spread_global_loads(global, o.seed, s * 1000003 + layer, r.loads);
      for (int64_t x : r.loads.source_totals()) max_row = std::max(max_row, x);
      records.push_back(std::move(r));
    }
  }
  if (records.empty()) throw InputError(path, m.field, "no step routes a token");
  man.tokens_per_rank = o.tokens_per_rank > 0 ? o.tokens_per_rank : tokens_for_row(max_row, o.top_k);
  man.model = o.model.empty() ? "global expert loads (" + path + ")" : o.model;
  report.found.push_back(m.written + ": [" + (S > 1 ? std::to_string(S) + ", " : std::string()) +
                         std::to_string(L) + ", " + std::to_string(E) + "] (\"" + m.field + "\")");
  report.found.push_back("layers " + describe_ids(layers) + " kept; " + std::to_string(records.size()) +
                         " records");
  report.assumed.push_back("the loads are GLOBAL (summed over source ranks): spread evenly over " +
                           std::to_string(o.num_ranks) + " source ranks, seeded remainders (seed " +
                           std::to_string(o.seed) + ")");
  report.assumed.push_back("layer id = row index (the source's numbering); top-k " + std::to_string(o.top_k) +
                           " (--top-k); T = " + std::to_string(man.tokens_per_rank));
  if (empty_steps > 0) report.assumed.push_back(std::to_string(empty_steps) + " all-zero steps dropped");
  filter.describe(report);
  nlohmann::ordered_json p;
  p["recorded_by"] = m.written;
  p["importer"] = "rackep trace import --from " + report.format;
  p["file"] = path;
  p["source_ranks"] = "not recorded (global loads): spread evenly, seeded";
  p["seed"] = o.seed;
  p["replication"] = R;
  p["dense_layers_dropped"] = filter.dropped_empty();
  man.provenance_json = p.dump();
  man.num_records = static_cast<int64_t>(records.size());
  man.validate(path);
  return std::make_unique<RecordListStream>(std::move(man), std::move(records));
}

}  // namespace rackep
