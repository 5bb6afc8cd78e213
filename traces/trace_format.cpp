#include "traces/trace_format.hpp"

#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "traces/json_input.hpp"

namespace rackep {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kFormatName = "rackep-trace";
constexpr const char* kRecordOrder = "microbatch-major, then layer in the order of 'layers'";

bool plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos;
}

// Reads one object strictly: every key in `keys` is required, nothing else is allowed.
void check_keys(const Json& obj, const std::vector<std::string>& keys, const std::string& source,
                const std::string& prefix) {
  if (!obj.is_object())
    throw InputError(source, prefix.empty() ? "manifest" : prefix, "must be a JSON object");
  for (const auto& k : keys)
    if (!obj.contains(k)) throw InputError(source, prefix + k, "missing required key");
  const std::set<std::string> known(keys.begin(), keys.end());
  for (const auto& item : obj.items())
    if (known.count(item.key()) == 0) throw InputError(source, prefix + item.key(), "unknown key");
}

int64_t get_int(const Json& v, int64_t lo, int64_t hi, const std::string& source, const std::string& field) {
  if (!v.is_number_integer()) throw InputError(source, field, "must be an integer, got " + v.dump());
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw InputError(source, field, "out of range: " + v.dump());
    x = static_cast<int64_t>(u);
  } else {
    x = v.get<int64_t>();
  }
  if (x < lo || x > hi)
    throw InputError(source, field,
                     "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v.dump());
  return x;
}

std::string get_string(const Json& v, const std::string& source, const std::string& field) {
  if (!v.is_string()) throw InputError(source, field, "must be a string, got " + v.dump());
  return v.get<std::string>();
}

}  // namespace

void TraceManifest::validate(const std::string& source) const {
  if (format_version != kTraceFormatVersion)
    throw InputError(source, "format_version", "unsupported version " + std::to_string(format_version));
  if (num_ranks <= 0)
    throw InputError(source, "num_ranks", "must be positive, got " + std::to_string(num_ranks));
  if (num_experts <= 0)
    throw InputError(source, "num_experts", "must be positive, got " + std::to_string(num_experts));
  if (top_k <= 0 || top_k > num_experts)
    throw InputError(source, "top_k", "must be in [1, num_experts], got " + std::to_string(top_k));
  if (tokens_per_rank <= 0)
    throw InputError(source, "tokens_per_rank", "must be positive, got " + std::to_string(tokens_per_rank));
  if (tokens_per_rank > std::numeric_limits<int32_t>::max() / top_k)
    throw InputError(source, "tokens_per_rank", "tokens_per_rank * top_k must fit in int32");
  if (static_cast<int64_t>(num_ranks) * num_experts > (int64_t{1} << 28))
    throw InputError(source, "num_experts",
                     "num_ranks * num_experts is too large for one load matrix (at most 2^28)");
  if (layers.empty()) throw InputError(source, "layers", "must list at least one layer");
  std::set<int> seen;
  for (int l : layers)
    if (!seen.insert(l).second)
      throw InputError(source, "layers", "layer " + std::to_string(l) + " appears twice");
  if (num_records < 0) throw InputError(source, "num_records", "must be non-negative");
  const Json prov = Json::parse(provenance_json, nullptr, /*allow_exceptions=*/false);
  if (!prov.is_object()) throw InputError(source, "provenance", "must be a JSON object");
  if (!chunks.empty()) {
    int64_t sum = 0;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const std::string f = "chunks[" + std::to_string(i) + "]";
      if (chunks[i].num_records <= 0) throw InputError(source, f + ".records", "must be positive");
      if (!plain_file_name(chunks[i].loads_file))
        throw InputError(source, f + ".loads", "must be a file name inside the trace directory");
      if (!plain_file_name(chunks[i].index_file))
        throw InputError(source, f + ".index", "must be a file name inside the trace directory");
      sum = checked_add(sum, chunks[i].num_records, source, f + ".records");
    }
    if (sum != num_records)
      throw InputError(source, "num_records",
                       std::to_string(num_records) + " but the chunks hold " + std::to_string(sum));
  }
}

int TraceManifest::layer_position(int layer) const {
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i] == layer) return static_cast<int>(i);
  return -1;
}

std::string manifest_to_json(const TraceManifest& m) {
  Json j;
  j["format"] = kFormatName;
  j["format_version"] = m.format_version;
  j["model"] = m.model;
  j["num_ranks"] = m.num_ranks;
  j["num_experts"] = m.num_experts;
  j["top_k"] = m.top_k;
  j["tokens_per_rank"] = m.tokens_per_rank;
  j["layers"] = m.layers;
  j["record_order"] = kRecordOrder;
  j["num_records"] = m.num_records;
  j["provenance"] = Json::parse(m.provenance_json.empty() ? "{}" : m.provenance_json);
  j["chunks"] = Json::array();
  for (const TraceChunk& c : m.chunks)
    j["chunks"].push_back(Json{{"loads", c.loads_file}, {"index", c.index_file}, {"records", c.num_records}});
  return j.dump(2) + "\n";
}

TraceManifest manifest_from_json(const std::string& text, const std::string& source) {
  const Json j = parse_json_input<Json>(text, source);
  check_keys(j,
             {"format", "format_version", "model", "num_ranks", "num_experts", "top_k", "tokens_per_rank",
              "layers", "record_order", "num_records", "provenance", "chunks"},
             source, "");
  if (get_string(j["format"], source, "format") != kFormatName)
    throw InputError(source, "format", "expected \"" + std::string(kFormatName) + "\"");
  TraceManifest m;
  m.format_version = static_cast<int>(get_int(j["format_version"], 0, 1 << 30, source, "format_version"));
  if (m.format_version != kTraceFormatVersion)
    throw InputError(source, "format_version",
                     "unsupported version " + std::to_string(m.format_version) + " (this build reads " +
                         std::to_string(kTraceFormatVersion) + ")");
  if (get_string(j["record_order"], source, "record_order") != kRecordOrder)
    throw InputError(source, "record_order", std::string("must be \"") + kRecordOrder + "\"");
  constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();
  m.model = get_string(j["model"], source, "model");
  m.num_ranks = static_cast<int>(get_int(j["num_ranks"], 1, kIntMax, source, "num_ranks"));
  m.num_experts = static_cast<int>(get_int(j["num_experts"], 1, kIntMax, source, "num_experts"));
  m.top_k = static_cast<int>(get_int(j["top_k"], 1, kIntMax, source, "top_k"));
  m.tokens_per_rank = get_int(j["tokens_per_rank"], 1, kIntMax, source, "tokens_per_rank");
  if (!j["layers"].is_array()) throw InputError(source, "layers", "must be an array of integers");
  for (size_t i = 0; i < j["layers"].size(); ++i)
    m.layers.push_back(static_cast<int>(
        get_int(j["layers"][i], std::numeric_limits<int32_t>::min(), kIntMax, source, "layers")));
  m.num_records = get_int(j["num_records"], 0, std::numeric_limits<int64_t>::max(), source, "num_records");
  if (!j["provenance"].is_object()) throw InputError(source, "provenance", "must be a JSON object");
  m.provenance_json = j["provenance"].dump();
  if (!j["chunks"].is_array()) throw InputError(source, "chunks", "must be an array");
  for (size_t i = 0; i < j["chunks"].size(); ++i) {
    const std::string f = "chunks[" + std::to_string(i) + "].";
    const Json& c = j["chunks"][i];
    check_keys(c, {"loads", "index", "records"}, source, f);
    TraceChunk chunk;
    chunk.loads_file = get_string(c["loads"], source, f + "loads");
    chunk.index_file = get_string(c["index"], source, f + "index");
    chunk.num_records = get_int(c["records"], 1, std::numeric_limits<int64_t>::max(), source, f + "records");
    m.chunks.push_back(chunk);
  }
  if (m.chunks.empty() && m.num_records != 0)
    throw InputError(source, "chunks", "a trace with records must list its chunks");
  m.validate(source);
  return m;
}

}  // namespace rackep
