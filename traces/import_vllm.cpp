#include "traces/import_vllm.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/input_limits.hpp"
#include "traces/npy.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

// A decoded [tokens][layers][k] array.
struct Rows {
  std::vector<int64_t> ids;
  int64_t tokens = 0;
  int layers = 0, k = 0;
  bool capture_buffer = false;  // binary: the engine's capture rows (model layer ids, prompt rows included)
};

// Little-endian integers of `width` bytes (signed unless `is_unsigned`) into int64.
void widen(const char* p, int64_t n, int width, bool is_unsigned, std::vector<int64_t>& out) {
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint64_t v = 0;
    for (int b = width - 1; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(p[i * width + b]);
    if (!is_unsigned && width < 8 && ((v >> (8 * width - 1)) & 1)) v |= ~uint64_t{0} << (8 * width);
    out[static_cast<size_t>(i)] = static_cast<int64_t>(v);
  }
}

void set_shape(Rows& r, const std::vector<int64_t>& shape, int64_t elements, const std::string& where,
               const std::string& field) {
  if (shape.size() != 3 || shape[1] <= 0 || shape[2] <= 0 || shape[1] > 100000 || shape[2] > 1024)
    throw InputError(where, field, "shape must be [tokens, layers, k]");
  if (shape[0] * shape[1] * shape[2] != elements)
    throw InputError(where, field,
                     "shape [" + std::to_string(shape[0]) + ", " + std::to_string(shape[1]) + ", " +
                         std::to_string(shape[2]) + "] but " + std::to_string(elements) + " elements");
  r.tokens = shape[0];
  r.layers = static_cast<int>(shape[1]);
  r.k = static_cast<int>(shape[2]);
}

// A nested JSON list [tokens][layers][k].
Rows from_lists(const Json& a, const std::string& where, const std::string& field) {
  if (!a.is_array()) throw InputError(where, field, "not an array [tokens][layers][k]");
  Rows r;
  r.tokens = static_cast<int64_t>(a.size());
  for (size_t t = 0; t < a.size(); ++t) {
    const Json& tok = a[t];
    if (!tok.is_array() || tok.empty())
      throw InputError(where, field, "token " + std::to_string(t) + " is not a [layers][k] array");
    if (t == 0) r.layers = static_cast<int>(tok.size());
    if (static_cast<int>(tok.size()) != r.layers)
      throw InputError(where, field,
                       "token " + std::to_string(t) + " has " + std::to_string(tok.size()) +
                           " layers, expected " + std::to_string(r.layers));
    for (size_t l = 0; l < tok.size(); ++l) {
      const Json& ks = tok[l];
      if (!ks.is_array() || ks.empty())
        throw InputError(where, field,
                         "token " + std::to_string(t) + ", layer " + std::to_string(l) + " has no ids");
      if (r.k == 0) r.k = static_cast<int>(ks.size());
      if (static_cast<int>(ks.size()) != r.k)
        throw InputError(where, field,
                         "token " + std::to_string(t) + ", layer " + std::to_string(l) + " has " +
                             std::to_string(ks.size()) + " ids, expected top-" + std::to_string(r.k));
      for (const Json& e : ks) {
        if (!e.is_number_integer())
          throw InputError(where, field,
                           "token " + std::to_string(t) + ", layer " + std::to_string(l) + ": " + e.dump() +
                               " is not an expert id");
        r.ids.push_back(e.get<int64_t>());
      }
    }
  }
  return r;
}

// base64 of a whole .npy file (np.save of the capture rows).
Rows from_npy_base64(const std::string& text, const std::string& where, const std::string& field) {
  const std::string bytes = decode_base64(text, where, field);
  const NpyArrayInfo info = parse_npy_header(bytes.data(), bytes.size(), where + ": " + field);
  const int width = npy_itemsize(info.dtype);
  if (static_cast<int64_t>(bytes.size()) != info.data_offset_bytes + info.num_elements * width)
    throw InputError(where, field,
                     std::to_string(bytes.size()) + " bytes, the .npy header implies " +
                         std::to_string(info.data_offset_bytes + info.num_elements * width));
  Rows r;
  set_shape(r, info.shape, info.num_elements, where, field);
  widen(bytes.data() + info.data_offset_bytes, info.num_elements, width, false, r.ids);
  r.capture_buffer = true;
  return r;
}

// {"encoding": "base64", "dtype", "shape", "data"}: raw little-endian bytes.
Rows from_envelope(const Json& obj, const std::string& where, const std::string& field) {
  if (obj.contains("encoding") && obj["encoding"] != "base64")
    throw InputError(where, field + ".encoding", obj["encoding"].dump() + ", expected \"base64\"");
  if (!obj.contains("data") || !obj["data"].is_string())
    throw InputError(where, field + ".data", "missing or not a base64 string");
  const std::string dtype =
      obj.contains("dtype") && obj["dtype"].is_string() ? obj["dtype"].get<std::string>() : "";
  int width = 0;
  bool is_unsigned = false;
  if (dtype == "int8" || dtype == "uint8") width = 1;
  if (dtype == "int16" || dtype == "uint16") width = 2;
  if (dtype == "int32" || dtype == "uint32") width = 4;
  if (dtype == "int64") width = 8;
  is_unsigned = dtype.rfind("uint", 0) == 0;
  if (width == 0)
    throw InputError(where, field + ".dtype",
                     "'" + dtype + "', expected an integer dtype (int16, int32, int64, ...)");
  std::vector<int64_t> shape;
  if (obj.contains("shape") && obj["shape"].is_array())
    for (const Json& d : obj["shape"]) shape.push_back(d.is_number_integer() ? d.get<int64_t>() : -1);
  const std::string bytes = decode_base64(obj["data"].get<std::string>(), where, field + ".data");
  if (bytes.size() % static_cast<size_t>(width) != 0)
    throw InputError(where, field + ".data", "not a whole number of " + dtype + " values");
  Rows r;
  set_shape(r, shape, static_cast<int64_t>(bytes.size()) / width, where, field + ".shape");
  widen(bytes.data(), r.tokens * r.layers * r.k, width, is_unsigned, r.ids);
  r.capture_buffer = true;
  return r;
}

Rows decode(const Json& v, const std::string& where, const std::string& field) {
  if (v.is_string()) return from_npy_base64(v.get<std::string>(), where, field);
  if (v.is_object()) return from_envelope(v, where, field);
  return from_lists(v, where, field);
}

std::vector<int> iota_layers(int n) {
  std::vector<int> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = i;
  return out;
}

int64_t usage_prompt_tokens(const Json& obj) {
  if (obj.contains("usage") && obj["usage"].is_object() && obj["usage"].contains("prompt_tokens") &&
      obj["usage"]["prompt_tokens"].is_number_integer())
    return obj["usage"]["prompt_tokens"].get<int64_t>();
  if (obj.contains("prompt_token_ids") && obj["prompt_token_ids"].is_array())
    return static_cast<int64_t>(obj["prompt_token_ids"].size());
  return -1;
}

}  // namespace

TokenRouting read_vllm_routed_experts(const std::vector<std::string>& files, const ImportOptions& o,
                                      ImportReport& report) {
  report.format = "vllm";
  if (files.empty()) throw InputError("--from vllm", "inputs", "give the saved responses (.jsonl or .json)");
  TokenRoutingBuilder builder(o.num_experts);
  int64_t responses = 0, prompt_tokens = 0, gen_tokens = 0, extra_choices = 0, sglang = 0;
  bool lists = false, binary = false;
  TokenRouting r;
  std::vector<RoutingSource> sources;
  auto add = [&](const Rows& rows, int64_t skip, const std::string& where, const std::string& field) {
    if (skip > rows.tokens)
      throw InputError(where, "usage.prompt_tokens",
                       std::to_string(skip) + " prompt tokens, but " + field + " holds only " +
                           std::to_string(rows.tokens) + " rows");
    (rows.capture_buffer ? binary : lists) = true;
    builder.add(rows.ids.data() + skip * rows.layers * rows.k, rows.tokens - skip, iota_layers(rows.layers),
                rows.k, where, field);
  };
  for (const std::string& path : files) {
    std::vector<std::pair<Json, std::string>> objects;  // (response, where)
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path, "file", "cannot open");
    if (fs::path(path).extension() == ".jsonl") {
      std::string line;
      for (int64_t no = 1; std::getline(in, line); ++no) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(no);
        check_json_depth(line, where);
        objects.emplace_back(Json::parse(line, nullptr, false), where);
      }
    } else {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      check_json_depth(text, path);
      const Json j = Json::parse(text, nullptr, false);
      if (j.is_array()) {
        for (size_t i = 0; i < j.size(); ++i)
          objects.emplace_back(j[i], path + "[" + std::to_string(i) + "]");
      } else {
        objects.emplace_back(j, path);
      }
    }
    RoutingSource src;
    src.name = fs::path(path).filename().string();
    src.path = path;
    const int64_t tok_before = builder.num_tokens();
    int64_t seq_before = 0;
    for (const auto& [obj, where] : objects) {
      if (obj.is_discarded() || !obj.is_object()) throw InputError(where, "json", "not a JSON object");
      ++responses;
      // SGLang /generate with return_routed_experts: raw int32 rows in meta_info.
      if (obj.contains("meta_info") && obj["meta_info"].is_object() &&
          obj["meta_info"].contains("routed_experts")) {
        const Json& mi = obj["meta_info"];
        const std::string field = "meta_info.routed_experts";
        if (!mi["routed_experts"].is_string()) throw InputError(where, field, "not a base64 string");
        if (o.top_k <= 0)
          throw InputError("--top-k", "--top-k",
                           "SGLang's meta_info.routed_experts does not record k: give the model's --top-k");
        const std::string bytes = decode_base64(mi["routed_experts"].get<std::string>(), where, field);
        if (bytes.size() % 4 != 0) throw InputError(where, field, "not a whole number of int32 values");
        const int64_t n = static_cast<int64_t>(bytes.size() / 4);
        const int64_t p = mi.value("prompt_tokens", int64_t{-1}),
                      c = mi.value("completion_tokens", int64_t{-1});
        if (p < 0 || c < 0)
          throw InputError(where, "meta_info.prompt_tokens",
                           "needed (with completion_tokens) to shape routed_experts");
        int64_t tokens = 0;
        for (int64_t cand :
             {p + c - 1, p + c})  // SGLang captures seqlen - 1 rows (the last token is not forwarded)
          if (tokens == 0 && cand > 0 && n % (cand * o.top_k) == 0) tokens = cand;
        if (tokens == 0)
          throw InputError(where, field,
                           std::to_string(n) +
                               " ids are not (prompt_tokens + completion_tokens - 1) x layers x top-" +
                               std::to_string(o.top_k));
        Rows rows;
        rows.tokens = tokens;
        rows.k = o.top_k;
        rows.layers = static_cast<int>(n / (tokens * o.top_k));
        rows.capture_buffer = true;
        widen(bytes.data(), n, 4, false, rows.ids);
        add(rows, 0, where, field);
        prompt_tokens += p;
        gen_tokens += tokens - p;
        ++sglang;
        builder.close_sequence();
        ++seq_before;
        continue;
      }
      std::vector<std::pair<const Json*, std::string>> gens;  // (array, field)
      if (obj.contains("routed_experts") && !obj["routed_experts"].is_null())
        gens.emplace_back(&obj["routed_experts"], "routed_experts");
      if (obj.contains("choices") && obj["choices"].is_array())
        for (size_t i = 0; i < obj["choices"].size(); ++i) {
          const Json& ch = obj["choices"][i];
          if (ch.is_object() && ch.contains("routed_experts") && !ch["routed_experts"].is_null())
            gens.emplace_back(&ch["routed_experts"], "choices[" + std::to_string(i) + "].routed_experts");
        }
      const bool has_prompt =
          obj.contains("prompt_routed_experts") && !obj["prompt_routed_experts"].is_null();
      if (gens.empty() && !has_prompt)
        throw InputError(where, "routed_experts",
                         "the response has neither prompt_routed_experts nor routed_experts (was the server "
                         "started with --enable-return-routed-experts?)");
      std::vector<Rows> decoded;
      for (const auto& [a, field] : gens) decoded.push_back(decode(*a, where, field));
      const bool prompt_included = !decoded.empty() && decoded[0].capture_buffer;
      const int64_t prompt_len = usage_prompt_tokens(obj);
      if (has_prompt && !prompt_included) {
        const Rows pr = decode(obj["prompt_routed_experts"], where, "prompt_routed_experts");
        add(pr, 0, where, "prompt_routed_experts");
        prompt_tokens += pr.tokens;
      }
      for (size_t g = 0; g < decoded.size(); ++g) {
        int64_t skip = 0;
        if (g > 0) {
          builder.close_sequence();
          ++seq_before;
          ++extra_choices;
          if (decoded[g].capture_buffer) {
            if (prompt_len < 0)
              throw InputError(where, "usage.prompt_tokens",
                               "needed to drop the prompt rows of further choices (they repeat the prompt)");
            skip = prompt_len;
          }
        } else if (decoded[g].capture_buffer) {
          const int64_t pl = std::min(std::max<int64_t>(prompt_len, 0), decoded[g].tokens);
          prompt_tokens += pl;
          gen_tokens -= pl;
        }
        const int64_t before = builder.open_tokens();
        add(decoded[g], skip, where, gens[g].second);
        gen_tokens += builder.open_tokens() - before;
      }
      builder.close_sequence();
      ++seq_before;
    }
    src.num_sequences = seq_before;
    src.num_tokens = builder.num_tokens() - tok_before;
    sources.push_back(src);
  }
  r = builder.finish(o.layers, files.front(), report);
  r.sources = sources;
  if (o.top_k > 0 && o.top_k != r.top_k)
    throw InputError(
        "--top-k", "--top-k",
        "the responses record top-" + std::to_string(r.top_k) + ", --top-k says " + std::to_string(o.top_k));
  r.model = o.model.empty() ? "vLLM routed experts (" + files.front() + ")" : o.model;
  nlohmann::ordered_json p;
  p["recorded_by"] =
      sglang > 0 ? "SGLang --enable-return-routed-experts (meta_info.routed_experts)"
                 : "vLLM --enable-return-routed-experts (prompt_routed_experts, choices[].routed_experts)";
  p["importer"] = "rackep trace import --from vllm";
  p["files"] = files;
  p["responses"] = responses;
  p["prompt_tokens"] = prompt_tokens;
  p["generated_tokens"] = gen_tokens;
  p["layers"] = binary ? "model layer ids (capture buffer rows)" : "MoE-local ids 0..L-1 (nested lists)";
  p["num_experts"] = o.num_experts > 0 ? "--experts" : "largest id + 1";
  r.provenance_json = p.dump();

  report.found.push_back(std::to_string(responses) + " responses: " + std::to_string(r.num_sequences()) +
                         " sequences, " + std::to_string(prompt_tokens) + " prompt + " +
                         std::to_string(gen_tokens) + " generated tokens");
  report.found.push_back(std::string(binary ? "capture-buffer rows (base64)" : "nested lists") +
                         (binary && lists ? " and nested lists" : "") + "; layers " + describe_ids(r.layers) +
                         " kept, top-" + std::to_string(r.top_k));
  report.assumed.push_back(
      binary ? "layer ids are the model's (the capture buffer has a row per hidden layer)"
             : "layer ids are vLLM's MoE-local 0..L-1 (nested lists record MoE layers only)");
  report.assumed.push_back(o.num_experts > 0 ? "E = " + std::to_string(r.num_experts) + " (--experts)"
                                             : "E = largest id + 1 = " + std::to_string(r.num_experts) +
                                                   " (not recorded; give --experts)");
  report.assumed.push_back("a sequence is a prompt followed by its first choice's generated tokens" +
                           (extra_choices > 0 ? "; " + std::to_string(extra_choices) +
                                                    " further choices are sequences of their own"
                                              : std::string()));
  return r;
}

std::unique_ptr<RecordStream> open_vllm_routed_experts(const std::vector<std::string>& files,
                                                       const ImportOptions& o, ImportReport& report) {
  if (o.num_ranks <= 0 || o.tokens_per_rank <= 0)  // before reading: the files may be large
    return compose_routing(TokenRouting{}, o, "vLLM", report);
  return compose_routing(read_vllm_routed_experts(files, o, report), o, "vLLM", report);
}

}  // namespace rackep
