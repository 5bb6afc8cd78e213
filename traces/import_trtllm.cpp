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
#include <sstream>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "core/output_file.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::ordered_json;
using Key = std::pair<int64_t, int>;  // (iteration, layer)

// One tensor of a safetensors file: where its data starts, how wide each element is, how many elements.
struct TensorRef {
  uint64_t offset = 0;  // absolute byte offset in the file
  uint32_t elements = 0;
  uint8_t elem_bytes = 8;
  bool operator==(const TensorRef& o) const {
    return offset == o.offset && elements == o.elements && elem_bytes == o.elem_bytes;
  }
};

// A rank file's header as a sorted index. Memory: rank 0's index, plus one for each rank whose layout differs
// from rank 0's (the recorder writes every rank's keys in the same order, so usually none).
struct RankFile {
  std::string path;
  int fd = -1;
  std::vector<std::pair<Key, TensorRef>> own;  // empty: same layout as rank 0 (shared_)
  RankFile() = default;
  RankFile(RankFile&& o) noexcept : path(std::move(o.path)), fd(o.fd), own(std::move(o.own)) { o.fd = -1; }
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
  // "{iteration}_{layer}", digits only (hand-parsed: a std::regex per key is slow on large headers).
  const size_t us = key.find('_');
  if (us == std::string::npos || us == 0 || us > 12 || key.size() - us - 1 == 0 || key.size() - us - 1 > 6)
    return false;
  int64_t it = 0, layer = 0;
  for (size_t i = 0; i < key.size(); ++i) {
    if (i == us) continue;
    if (key[i] < '0' || key[i] > '9') return false;
    (i < us ? it : layer) = (i < us ? it : layer) * 10 + (key[i] - '0');
  }
  out = {it, static_cast<int>(layer)};
  return true;
}

std::string key_name(const Key& k) {
  return std::to_string(k.first) + "_" + std::to_string(k.second);
}

// Parses and checks the header of one rank file. Counts files (raw = false) hold one I64/I32 vector of
// `width` counts per key; raw files (rank{r}_raw.safetensors) one I32/I64 [tokens, k] matrix of expert ids.
// Sorted by key.
std::vector<std::pair<Key, TensorRef>> parse_safetensors(const MappedFile& f, bool raw, int64_t& width) {
  const std::string& path = f.path();
  if (f.size() < 8)
    throw InputError(path, "header",
                     "truncated: " + std::to_string(f.size()) +
                         " bytes, a safetensors file starts with an 8-byte header length");
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
  const uint64_t data_start = 8 + header_bytes;
  const uint64_t data_bytes = f.size() - data_start;
  std::vector<std::pair<Key, TensorRef>> out;
  out.reserve(header.size());
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
    bool ok = shape.is_array() && shape.size() == (raw ? 2u : 1u);
    for (size_t d = 0; ok && d < shape.size(); ++d)
      ok = shape[d].is_number_unsigned() && shape[d].get<uint64_t>() < (uint64_t{1} << 31);
    if (!raw && ok && width < 0) width = shape[0].get<int64_t>();
    if (!ok || (!raw && shape[0].get<int64_t>() != width))
      throw InputError(path, name,
                       "shape " + shape.dump() +
                           (raw ? ", expected [tokens, k] (raw token_selected_experts)"
                                : ", expected [" + std::to_string(width) +
                                      "] (num_experts of meta_info.json, or "
                                      "num_slots of the placement)"));
    const uint64_t elements =
        raw ? shape[0].get<uint64_t>() * shape[1].get<uint64_t>() : shape[0].get<uint64_t>();
    if (raw && shape[0].get<uint64_t>() > 0 && shape[1].get<int64_t>() != width) {
      if (width < 0) width = shape[1].get<int64_t>();
      if (shape[1].get<int64_t>() != width)
        throw InputError(
            path, name,
            "shape " + shape.dump() + ": k differs from other keys (" + std::to_string(width) + ")");
    }
    const auto& off = t["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(path, name, "data_offsets " + off.dump() + " is not [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (e < b || e - b != elements * elem)
      throw InputError(path, name,
                       "data_offsets " + off.dump() + " hold " + std::to_string(e - b) + " bytes, expected " +
                           std::to_string(elements * elem));
    if (e > data_bytes)
      throw InputError(path, name,
                       "data_offsets end " + std::to_string(e) + " is past the data (" +
                           std::to_string(data_bytes) + " bytes): truncated file");
    ranges.emplace_back(b, e);
    out.push_back(
        {key, TensorRef{data_start + b, static_cast<uint32_t>(elements), static_cast<uint8_t>(elem)}});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].first == out[i - 1].first)
      throw InputError(path, "key",
                       "'" + key_name(out[i].first) + "' names an (iteration, layer) already present");
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      throw InputError(path, "data_offsets",
                       "two tensors overlap at byte " + std::to_string(ranges[i].first));
  return out;
}

// The EP load balancer's placement (moe_load_balancer.yaml, or the load_balancer section of the LLM API
// options; JSON accepted): slot s of layer l holds logical expert assignments[l][s].
struct Placement {
  std::map<int, std::vector<int>> assignments;
  int64_t num_slots = -1, updates_per_iter = 0;
};

// An integer of a placement file (a layer id, num_slots), at most 2^31 - 1.
int placement_int(const std::string& text, const std::string& where, const std::string& field) {
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || v < 0 || v > INT32_MAX)
    throw InputError(where, field, "'" + text + "' is not a non-negative integer");
  return static_cast<int>(v);
}

Placement read_placement(const std::string& path) {
  const std::string text = read_file_text(path);
  Placement p;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '{') {  // JSON
    check_json_depth(text, path);
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    const nlohmann::json* lb = &j;
    if (!j.is_discarded() && j.is_object() && j.contains("moe_config")) {
      const nlohmann::json& mc = j["moe_config"];
      if (!mc.is_object() || !mc.contains("load_balancer"))
        throw InputError(path, "moe_config", "has no load_balancer (not a load balancer placement)");
      lb = &mc["load_balancer"];
    }
    if (j.is_discarded() || !lb->is_object() || !lb->contains("initial_global_assignments"))
      throw InputError(path, "initial_global_assignments", "missing (not a load balancer placement)");
    for (const auto& [layer, slots] : (*lb)["initial_global_assignments"].items()) {
      std::vector<int>& v = p.assignments[placement_int(layer, path, "initial_global_assignments")];
      if (!slots.is_array())
        throw InputError(path, "initial_global_assignments", "layer " + layer + ": not a list");
      for (const auto& e : slots)
        v.push_back(e.is_number_integer() && e.get<int64_t>() >= 0 && e.get<int64_t>() < kMaxExperts
                        ? e.get<int>()
                        : -1);
    }
    try {
      p.num_slots = lb->value("num_slots", int64_t{-1});
      p.updates_per_iter = lb->value("layer_updates_per_iter", int64_t{0});
    } catch (const nlohmann::json::exception&) {
      throw InputError(path, "num_slots", "num_slots and layer_updates_per_iter must be integers");
    }
  } else {  // the YAML yaml.safe_dump writes: block or flow lists under initial_global_assignments
    std::istringstream in(text);
    std::string line;
    int section_indent = -1;
    std::vector<int>* cur = nullptr;
    for (int64_t no = 1; std::getline(in, line); ++no) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const size_t ind = line.find_first_not_of(' ');
      if (ind == std::string::npos || line[ind] == '#') continue;
      const std::string body = line.substr(ind);
      auto value_of = [&](const std::string& k) {
        std::string t = body.substr(k.size() + 1);
        t.erase(0, t.find_first_not_of(' '));
        return placement_int(t, path + ":" + std::to_string(no), k);
      };
      if (body.rfind("num_slots:", 0) == 0) {
        p.num_slots = value_of("num_slots");
        section_indent = -1;
      } else if (body.rfind("layer_updates_per_iter:", 0) == 0) {
        p.updates_per_iter = value_of("layer_updates_per_iter");
        section_indent = -1;
      } else if (body.rfind("initial_global_assignments:", 0) == 0) {
        section_indent = static_cast<int>(ind);
      } else if (section_indent >= 0 && static_cast<int>(ind) > section_indent) {
        const std::string where = path + ":" + std::to_string(no);
        auto parse_int = [&](std::string t) {
          t.erase(0, t.find_first_not_of(" -"));
          t.erase(t.find_last_not_of(" ,") + 1);
          size_t used = 0;
          int v = -1;
          try {
            v = std::stoi(t, &used);
          } catch (const std::exception&) {
            used = 0;
          }
          if (t.empty() || used != t.size())
            throw InputError(where, "initial_global_assignments", "'" + t + "' is not an expert id");
          return v;
        };
        if (body[0] == '-') {
          if (cur == nullptr)
            throw InputError(where, "initial_global_assignments", "a list item before a layer id");
          cur->push_back(parse_int(body));
        } else {
          const size_t colon = body.find(':');
          if (colon == std::string::npos)
            throw InputError(where, "initial_global_assignments", "expected 'layer: [ids]'");
          cur = &p.assignments[parse_int(body.substr(0, colon))];
          const std::string rest = body.substr(colon + 1);
          const size_t lb = rest.find('['), rb = rest.find(']');
          if (lb != std::string::npos) {
            if (rb == std::string::npos)
              throw InputError(where, "initial_global_assignments", "a flow list must end on its line");
            std::stringstream items(rest.substr(lb + 1, rb - lb - 1));
            for (std::string item; std::getline(items, item, ',');)
              if (item.find_first_not_of(' ') != std::string::npos) cur->push_back(parse_int(item));
          }
        }
      } else {
        section_indent = -1;
      }
    }
  }
  if (p.assignments.empty())
    throw InputError(path, "initial_global_assignments", "missing or empty (not a load balancer placement)");
  for (const auto& [layer, slots] : p.assignments) {
    if (p.num_slots < 0) p.num_slots = static_cast<int64_t>(slots.size());
    if (static_cast<int64_t>(slots.size()) != p.num_slots)
      throw InputError(path, "initial_global_assignments",
                       "layer " + std::to_string(layer) + " places " + std::to_string(slots.size()) +
                           " slots, num_slots is " + std::to_string(p.num_slots));
    for (int e : slots)
      if (e < 0 || e >= kMaxExperts)
        throw InputError(path, "initial_global_assignments",
                         "layer " + std::to_string(layer) + " holds an expert id outside [0, " +
                             std::to_string(kMaxExperts) + ")");
  }
  return p;
}

class TrtllmStream final : public RecordStream {
 public:
  TrtllmStream(const std::string& dir, const ImportOptions& options, ImportReport& report);
  const TraceManifest& manifest() const override { return manifest_; }
  bool next(TraceRecord& record) override;

 private:
  // Reads row `rank` of record `key` (logical experts, slots mapped) into `row`, checking every value;
  // returns the row sum. `tokens` gets the raw file's token count (raw input only).
  int64_t read_row(size_t rank, const Key& key, int32_t* row, int64_t* tokens = nullptr) const;
  const TensorRef& ref(size_t rank, const Key& key) const;

  std::vector<RankFile> ranks_;
  std::vector<std::pair<Key, TensorRef>> shared_;  // rank 0's index (and every rank with its layout)
  std::vector<Key> keys_;                          // records in canonical order
  bool raw_ = false;
  int64_t width_ = -1;  // counts: experts or slots per row; raw: k
  Placement placement_;
  bool slots_ = false;
  int replication_ = 1;
  TraceManifest manifest_;
  size_t next_ = 0;
  mutable std::vector<uint64_t> buf_;  // one row as read (8-byte aligned)
  mutable std::vector<int64_t> wide_;  // slot or raw counts before mapping
};

const TensorRef& TrtllmStream::ref(size_t rank, const Key& key) const {
  const auto& index = ranks_[rank].own.empty() ? shared_ : ranks_[rank].own;
  const auto it =
      std::lower_bound(index.begin(), index.end(), key,
                       [](const std::pair<Key, TensorRef>& a, const Key& k) { return a.first < k; });
  if (it == index.end() || it->first != key)
    throw InputError(ranks_[rank].path, "key",
                     "'" + key_name(key) + "' is missing here but present in " + ranks_[0].path);
  return it->second;
}

int64_t TrtllmStream::read_row(size_t rank, const Key& key, int32_t* row, int64_t* tokens) const {
  const RankFile& rf = ranks_[rank];
  const TensorRef& t = ref(rank, key);
  const int elem = t.elem_bytes;
  const size_t bytes = static_cast<size_t>(t.elements) * elem;
  buf_.resize(bytes / 8 + 1);
  unsigned char* buf = reinterpret_cast<unsigned char*>(buf_.data());
  size_t done = 0;
  while (done < bytes) {
    const ssize_t n = ::pread(rf.fd, buf + done, bytes - done, static_cast<off_t>(t.offset + done));
    if (n <= 0) throw InputError(rf.path, key_name(key), "short read: the file changed or was truncated");
    done += static_cast<size_t>(n);
  }
  const int num_experts = manifest_.num_experts;
  // NOTE: safetensors data is little-endian (as is every host rackep targets); plain loops the compiler
  // vectorises convert it, and only a row with a bad value is re-scanned for the message.
  auto value = [&](size_t i) -> int64_t {
    if (elem == 8) return reinterpret_cast<const int64_t*>(buf)[i];
    return reinterpret_cast<const int32_t*>(buf)[i];
  };
  if (raw_) {  // token_selected_experts [tokens, k]: bincount, -1 padding skipped
    if (tokens != nullptr) *tokens = width_ > 0 ? t.elements / width_ : 0;
    wide_.assign(static_cast<size_t>(slots_ ? placement_.num_slots : num_experts), 0);
    const int64_t limit = static_cast<int64_t>(wide_.size());
    for (size_t i = 0; i < t.elements; ++i) {
      const int64_t e = value(i);
      if (e == -1) continue;
      if (e < 0 || e >= limit)
        throw InputError(rf.path, key_name(key),
                         "id " + std::to_string(e) + " is outside [0, " + std::to_string(limit) + ")" +
                             (slots_ ? " (slots of the placement)" : " (num_experts of meta_info.json)"));
      ++wide_[static_cast<size_t>(e)];
    }
  } else if (!slots_) {
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
      for (int e = 0; e < num_experts; ++e)
        checked_count(value(static_cast<size_t>(e)), rf.path, key_name(key) + " expert " + std::to_string(e));
    return sum;
  } else {
    wide_.resize(t.elements);
    for (size_t i = 0; i < t.elements; ++i) wide_[i] = value(i);
  }
  // Slots -> logical experts through the placement (scatter-add); raw counts straight.
  std::fill(row, row + num_experts, 0);
  const std::vector<int>* map = nullptr;
  if (slots_) {
    const auto it = placement_.assignments.find(key.second);
    if (it == placement_.assignments.end())
      throw InputError(
          rf.path, key_name(key),
          "layer " + std::to_string(key.second) + " has no initial_global_assignments in the placement");
    map = &it->second;
  }
  int64_t sum = 0;
  std::vector<int64_t> logical(static_cast<size_t>(num_experts), 0);
  for (size_t s = 0; s < wide_.size(); ++s) {
    if (wide_[s] < 0) checked_count(wide_[s], rf.path, key_name(key));
    int64_t& l = logical[static_cast<size_t>(map ? (*map)[s] : static_cast<int>(s))];
    l = checked_add(l, wide_[s], rf.path, key_name(key));
  }
  for (int e = 0; e < num_experts; ++e) {
    row[e] = checked_count(logical[static_cast<size_t>(e)], rf.path, key_name(key));
    sum += row[e];
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
  const int meta_experts = positive("num_experts");
  const int top_k = positive("num_experts_per_token");
  if (top_k > meta_experts) throw InputError(meta_path, "num_experts_per_token", "exceeds num_experts");
  if (o.top_k > 0 && o.top_k != top_k)
    throw InputError(
        "--top-k", "--top-k",
        "meta_info.json records top-" + std::to_string(top_k) + ", --top-k says " + std::to_string(o.top_k));

  std::map<int, std::string> files, raw_files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    int r = -1;
    char tail[32] = {0};
    if (std::sscanf(name.c_str(), "rank%d%31s", &r, tail) != 2 || r < 0 || r > 999999) continue;
    if (std::string(tail) == ".safetensors" && name == "rank" + std::to_string(r) + ".safetensors")
      files[r] = entry.path().string();
    if (std::string(tail) == "_raw.safetensors" && name == "rank" + std::to_string(r) + "_raw.safetensors")
      raw_files[r] = entry.path().string();
  }
  raw_ = files.empty() && !raw_files.empty();
  if (raw_) files = raw_files;
  if (files.empty())
    throw InputError(dir, "rank files",
                     "no rank{r}.safetensors (or rank{r}_raw.safetensors) in the directory");
  const int num_files = static_cast<int>(files.size());
  if (files.rbegin()->first != num_files - 1)
    throw InputError(dir, "rank files",
                     "rank ids must be 0.." + std::to_string(num_files - 1) + ", found rank" +
                         std::to_string(files.rbegin()->first));
  if (meta.contains("ep_size") && (!meta["ep_size"].is_number_integer() || meta["ep_size"] != num_files))
    throw InputError(
        meta_path, "ep_size",
        meta["ep_size"].dump() + ", but the directory holds " + std::to_string(num_files) + " rank files");

  // Slot ids under the EP load balancer: mapped through the placement, or refused.
  if (!o.placement.empty()) {
    placement_ = read_placement(o.placement);
    if (placement_.updates_per_iter > 0)
      throw InputError(
          o.placement, "layer_updates_per_iter",
          std::to_string(placement_.updates_per_iter) +
              ": the balancer moved experts between slots during the run, so a slot id does not name one "
              "expert; record with layer_updates_per_iter: 0 (static placement) to import slot counts");
    slots_ = true;
    width_ = raw_ ? -1 : placement_.num_slots;
  } else {
    width_ = raw_ ? -1 : meta_experts;
    if (o.num_experts > 0 && o.num_experts < meta_experts)
      throw InputError(
          meta_path, "num_experts",
          std::to_string(meta_experts) + " ids recorded but --experts says " + std::to_string(o.num_experts) +
              ": these are the EP load balancer's slots (num_slots > experts), which are not experts; give "
              "--placement moe_load_balancer.yaml to map slots to experts");
  }
  int num_experts = meta_experts;
  if (slots_) {
    int max_e = -1;
    for (const auto& [l, v] : placement_.assignments)
      for (int e : v) max_e = std::max(max_e, e);
    num_experts = o.num_experts > 0 ? o.num_experts : max_e + 1;
    for (const auto& [l, v] : placement_.assignments)
      for (int e : v)
        if (e >= num_experts)
          throw InputError(o.placement, "initial_global_assignments",
                           "expert " + std::to_string(e) + " is outside [0, " + std::to_string(num_experts) +
                               ") (--experts)");
  }
  if (top_k > num_experts)
    throw InputError(meta_path, "num_experts_per_token", "exceeds the logical experts");

  size_t total_entries = 0;
  for (const auto& [r, path] : files) {
    RankFile rf;
    rf.path = path;
    int64_t width = width_;
    {
      const MappedFile mapped(path);  // only the header is touched; unmapped at the end of the scope
      auto index = parse_safetensors(mapped, raw_, width);
      total_entries += index.size();
      if (r == 0)
        shared_ = std::move(index);
      else if (index != shared_)
        rf.own = std::move(index);
    }
    if (raw_ && width > 0) {
      if (width_ < 0) width_ = width;
      if (width != width_)
        throw InputError(path, "key",
                         "k " + std::to_string(width) + ", rank 0 has " + std::to_string(width_));
    }
    rf.fd = ::open(path.c_str(), O_RDONLY);
    if (rf.fd < 0) throw InputError(path, "file", "cannot open");
    ranks_.push_back(std::move(rf));
  }
  if (raw_ && width_ > 0 && width_ != top_k)
    throw InputError(
        ranks_[0].path, "key",
        "rows of " + std::to_string(width_) + " ids, meta_info.json says top-" + std::to_string(top_k));
  (void)total_entries;

  // Iterations every rank holds; the ones some ranks miss must be the last (a recording stopped mid-flush).
  std::map<int64_t, int> iter_ranks;  // iteration -> ranks holding it
  std::map<int64_t, std::set<int>> iter_layers;
  for (size_t r = 0; r < ranks_.size(); ++r) {
    const auto& index = ranks_[r].own.empty() ? shared_ : ranks_[r].own;
    int64_t last = -1;
    for (const auto& [key, t] : index) {
      if (key.first != last) ++iter_ranks[key.first];
      last = key.first;
      if (r == 0) iter_layers[key.first].insert(key.second);
    }
  }
  std::vector<int64_t> common, partial;
  for (const auto& [it, n] : iter_ranks) (n == num_files ? common : partial).push_back(it);
  if (common.empty()) throw InputError(dir, "key", "no iteration is recorded by every rank file");
  for (int64_t it : partial)
    if (it < common.back())
      throw InputError(dir, "key",
                       "iteration " + std::to_string(it) +
                           " is missing from some rank files but later ones are present "
                           "(damaged recording, not a stopped one)");

  replication_ = std::max(1, o.replication);
  if (num_files % replication_ != 0)
    throw InputError(
        "--replication", "--replication",
        std::to_string(num_files) + " rank files are not a multiple of " + std::to_string(replication_));
  manifest_.num_ranks = num_files / replication_;
  manifest_.num_experts = num_experts;
  manifest_.top_k = top_k;

  // Keys of the common iterations, from rank 0; every rank must hold each of them.
  std::vector<Key> all;
  for (int64_t it : common)
    for (int layer : iter_layers[it]) all.push_back({it, layer});

  // Pass 1, rank by rank (memory: one rank's numtokens): validate every row, sum routed tokens per layer,
  // find the largest row, check replicas.
  std::map<int, int64_t> routed;
  std::map<int, int64_t> max_row_of;
  int64_t max_tokens = 0, tokens_total = 0;
  bool all_rows_equal = num_files > 1, have_numtokens = !raw_;
  std::vector<int32_t> row(static_cast<size_t>(num_experts)), other(static_cast<size_t>(num_experts));
  for (size_t r = 0; r < ranks_.size(); ++r) {
    const std::string nt_path = (fs::path(dir) / ("rank" + std::to_string(r) + "_numtokens.json")).string();
    nlohmann::json numtokens;
    if (!raw_ && fs::exists(nt_path, ec)) {
      const std::string nt_text = read_file_text(nt_path);
      check_json_depth(nt_text, nt_path);
      numtokens = nlohmann::json::parse(nt_text, nullptr, false);  // std::map: O(n log n)
      if (numtokens.is_discarded() || !numtokens.is_object())
        throw InputError(nt_path, "numtokens", "not a JSON object");
    } else {
      have_numtokens = false;
    }
    int64_t last_iter = -1;
    for (const Key& key : all) {
      int64_t raw_tokens = 0;
      const int64_t sum = read_row(r, key, row.data(), &raw_tokens);
      if (r % replication_ == 0) {
        routed[key.second] += sum;
        max_row_of[key.second] = std::max(max_row_of[key.second], sum);
      }
      if (r > 0 && (all_rows_equal || r % replication_ != 0)) {
        read_row(r % replication_ != 0 ? r - 1 : 0, key, other.data());
        const bool equal = row == other;
        if (r % replication_ == 0) all_rows_equal = all_rows_equal && equal;
        if (r % replication_ != 0 && !equal)
          throw InputError(ranks_[r].path, key_name(key),
                           "differs from rank " + std::to_string(r - 1) + ", but --replication " +
                               std::to_string(replication_) + " says they hold the same tokens");
      }
      int64_t tokens = raw_ ? raw_tokens : -1;
      if (!raw_ && !numtokens.is_null()) {
        const auto it = numtokens.find(key_name(key));
        if (it == numtokens.end()) throw InputError(nt_path, "key", "'" + key_name(key) + "' missing");
        if (!it->is_number_integer() || it->get<int64_t>() < 0)
          throw InputError(nt_path, key_name(key),
                           "token count " + it->dump() + " is not a non-negative integer");
        tokens = it->get<int64_t>();
        if (sum > tokens * top_k)
          throw InputError(ranks_[r].path, key_name(key),
                           "routes " + std::to_string(sum) + " (token, expert) pairs, more than numtokens " +
                               std::to_string(tokens) + " x top-k " + std::to_string(top_k));
      }
      if (tokens >= 0 && r % replication_ == 0) {
        max_tokens = std::max(max_tokens, tokens);
        if (key.first != last_iter)
          tokens_total += tokens;  // every layer of an iteration sees the same tokens
      }
      last_iter = key.first;
    }
  }
  if (raw_) have_numtokens = true;
  LayerFilter filter(o.layers);
  for (const auto& [layer, n] : routed) filter.observe(layer, n);
  const std::vector<int> layers = filter.kept(dir);
  int64_t max_row = 0;
  for (int l : layers) max_row = std::max(max_row, max_row_of[l]);
  for (const Key& key : all)
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

  const int64_t iters = static_cast<int64_t>(common.size());
  const std::string kind = raw_ ? "_raw.safetensors" : ".safetensors";
  report.found.push_back(std::to_string(num_files) + " rank files (rank0..rank" +
                         std::to_string(num_files - 1) + kind + "), " + std::to_string(meta_experts) +
                         (slots_ ? " slots" : " experts") + ", top-" + std::to_string(top_k) +
                         " (meta_info.json)");
  report.found.push_back(std::to_string(iters) + " iterations (" + std::to_string(common.front()) + ".." +
                         std::to_string(common.back()) + ") recorded by every rank, " +
                         std::to_string(all.size()) + " (iteration, layer) keys per rank");
  report.found.push_back("layers " + describe_ids(layers) + " (model layer ids), " +
                         std::to_string(keys_.size()) + " records");
  report.found.push_back(
      raw_ ? "token counts: the rows of rank{r}_raw.safetensors, " + std::to_string(tokens_total) +
                 " tokens in all (per iteration, over ranks)"
      : have_numtokens ? "token counts: rank{r}_numtokens.json, " + std::to_string(tokens_total) +
                             " tokens in all (per iteration, over ranks)"
                       : "token counts: not recorded (no rank{r}_numtokens.json)");
  if (!partial.empty())
    report.assumed.push_back(std::to_string(partial.size()) + " final iteration(s) (" +
                             describe_ids(std::vector<int>(partial.begin(), partial.end())) +
                             ") are missing on some ranks (the recording stopped mid-flush): dropped");
  if (slots_)
    report.assumed.push_back("slot ids of the EP load balancer (" + std::to_string(placement_.num_slots) +
                             " slots) mapped to " + std::to_string(num_experts) +
                             " logical experts through " + o.placement +
                             " (static placement, layer_updates_per_iter 0)");
  else if (meta_experts > 0 && o.num_experts <= 0)
    report.assumed.push_back(
        "ids are logical experts (no --placement: a run with the EP load balancer records slot "
        "ids; give --placement then)");
  filter.describe(report);
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
                                ? " (the largest per-rank token count recorded)"
                                : " (not recorded: the smallest T whose T x top-k holds the largest row)"));
  if (replication_ > 1)
    report.assumed.push_back("--replication " + std::to_string(replication_) + ": ranks in groups of " +
                             std::to_string(replication_) + " hold the same tokens; one row kept per group");
  else if (all_rows_equal)
    report.assumed.push_back(
        "every rank file holds identical counts: probably TP attention (replicated tokens); "
        "consider --replication " +
        std::to_string(num_files));
  report.assumed.push_back("shared experts are not logged by TensorRT-LLM");

  Json p;
  p["recorded_by"] =
      "TensorRT-LLM expert statistics (EXPERT_STATISTIC_ITER_RANGE, tensorrt_llm/_torch/expert_statistic.py)";
  p["importer"] = "rackep trace import --from trtllm";
  p["source"] = dir;
  p["meta_info"] = meta;
  p["rank_files"] = num_files;
  p["raw"] = raw_;
  p["iterations"] = iters;
  p["iterations_dropped"] = partial.size();
  p["placement"] = slots_ ? o.placement : "";
  p["replication"] = replication_;
  p["tokens_per_rank"] = raw_                    ? "rows of rank{r}_raw.safetensors"
                         : have_numtokens        ? "rank{r}_numtokens.json"
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
