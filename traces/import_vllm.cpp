#include "traces/import_vllm.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

using Json = nlohmann::json;

// Collects sequences of [tokens][layers][k] routing, validating shapes against the first one seen.
class Collector {
 public:
  explicit Collector(int num_experts) : num_experts_(num_experts) {}

  // Appends the tokens of `a` (field `field` of the response at `where`) to the open sequence.
  void add(const Json& a, const std::string& where, const std::string& field) {
    if (!a.is_array()) throw InputError(where, field, "not an array [tokens][layers][k]");
    for (size_t t = 0; t < a.size(); ++t) {
      const Json& tok = a[t];
      if (!tok.is_array() || tok.empty())
        throw InputError(where, field, "token " + std::to_string(t) + " is not a [layers][k] array");
      if (num_layers_ == 0) {
        num_layers_ = static_cast<int>(tok.size());
        ids_.resize(static_cast<size_t>(num_layers_));
      }
      if (static_cast<int>(tok.size()) != num_layers_)
        throw InputError(where, field,
                         "token " + std::to_string(t) + " has " + std::to_string(tok.size()) +
                             " layers, expected " + std::to_string(num_layers_));
      for (int l = 0; l < num_layers_; ++l) {
        const Json& ks = tok[static_cast<size_t>(l)];
        if (!ks.is_array() || ks.empty())
          throw InputError(where, field,
                           "token " + std::to_string(t) + ", layer " + std::to_string(l) + " has no ids");
        if (top_k_ == 0) top_k_ = static_cast<int>(ks.size());
        if (static_cast<int>(ks.size()) != top_k_)
          throw InputError(where, field,
                           "token " + std::to_string(t) + ", layer " + std::to_string(l) + " has " +
                               std::to_string(ks.size()) + " ids, expected top-" + std::to_string(top_k_));
        const size_t first = ids_[l].size();
        for (size_t i = 0; i < ks.size(); ++i) {
          const int64_t e = ks[i].is_number_integer() ? ks[i].get<int64_t>() : -1;
          const int64_t limit = num_experts_ > 0 ? num_experts_ : 65536;
          if (e < 0 || e >= limit)
            throw InputError(where, field,
                             "token " + std::to_string(t) + ", layer " + std::to_string(l) + ": " +
                                 ks[i].dump() + " is not an expert id in [0, " + std::to_string(limit) + ")");
          for (size_t j = first; j < ids_[l].size(); ++j)
            if (ids_[l][j] == e)
              throw InputError(where, field,
                               "token " + std::to_string(t) + ", layer " + std::to_string(l) +
                                   " selects expert " + std::to_string(e) + " twice");
          ids_[l].push_back(static_cast<uint16_t>(e));
          max_id_ = std::max(max_id_, static_cast<int>(e));
        }
      }
      ++open_tokens_;
    }
  }
  // Closes the open sequence (if it holds tokens).
  void close_sequence() {
    if (open_tokens_ == 0) return;
    offsets_.push_back(offsets_.back() + open_tokens_);
    open_tokens_ = 0;
  }

  int num_experts_;
  int num_layers_ = 0, top_k_ = 0, max_id_ = -1;
  int64_t open_tokens_ = 0;
  std::vector<int64_t> offsets_{0};
  std::vector<std::vector<uint16_t>> ids_;
};

}  // namespace

TokenRouting read_vllm_routed_experts(const std::vector<std::string>& files, const ImportOptions& o,
                                      ImportReport& report) {
  report.format = "vllm";
  if (files.empty()) throw InputError("--from vllm", "inputs", "give the saved responses (.jsonl or .json)");
  Collector c(o.num_experts);
  int64_t responses = 0, prompt_tokens = 0, gen_tokens = 0, extra_choices = 0;
  TokenRouting r;
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
    const int64_t seq_before = static_cast<int64_t>(c.offsets_.size()), tok_before = c.offsets_.back();
    for (const auto& [obj, where] : objects) {
      if (obj.is_discarded() || !obj.is_object()) throw InputError(where, "json", "not a JSON object");
      ++responses;
      const int64_t before = c.open_tokens_;
      if (obj.contains("prompt_routed_experts") && !obj["prompt_routed_experts"].is_null())
        c.add(obj["prompt_routed_experts"], where, "prompt_routed_experts");
      prompt_tokens += c.open_tokens_ - before;
      std::vector<const Json*> gens;
      if (obj.contains("routed_experts") && !obj["routed_experts"].is_null())
        gens.push_back(&obj["routed_experts"]);
      if (obj.contains("choices") && obj["choices"].is_array())
        for (const Json& ch : obj["choices"])
          if (ch.is_object() && ch.contains("routed_experts") && !ch["routed_experts"].is_null())
            gens.push_back(&ch["routed_experts"]);
      if (gens.empty() && c.open_tokens_ == 0)
        throw InputError(where, "routed_experts",
                         "the response has neither prompt_routed_experts nor routed_experts (was the server "
                         "started with --enable-return-routed-experts?)");
      for (size_t g = 0; g < gens.size(); ++g) {
        if (g > 0) {
          c.close_sequence();
          ++extra_choices;
        }
        const int64_t b = c.open_tokens_;
        c.add(*gens[g], where, "routed_experts");
        gen_tokens += c.open_tokens_ - b;
      }
      c.close_sequence();
    }
    src.num_sequences = static_cast<int64_t>(c.offsets_.size()) - seq_before;
    src.num_tokens = c.offsets_.back() - tok_before;
    r.sources.push_back(src);
  }
  if (c.offsets_.back() == 0)
    throw InputError(files.front(), "routed_experts", "no routed token in the input");
  r.num_experts = o.num_experts > 0 ? o.num_experts : c.max_id_ + 1;
  r.top_k = c.top_k_;
  if (r.top_k > r.num_experts) throw InputError(files.front(), "routed_experts", "top-k exceeds the experts");
  if (o.layers.empty()) {
    for (int l = 0; l < c.num_layers_; ++l) r.layers.push_back(l);
  } else {
    if (static_cast<int>(o.layers.size()) != c.num_layers_)
      throw InputError("--layers", "--layers",
                       "vLLM records " + std::to_string(c.num_layers_) + " MoE layers (MoE-local ids 0.." +
                           std::to_string(c.num_layers_ - 1) + "); --layers must give their " +
                           std::to_string(c.num_layers_) + " model ids in order, got " +
                           std::to_string(o.layers.size()));
    r.layers = o.layers;
  }
  r.sequence_offsets = c.offsets_;
  r.expert_ids = std::move(c.ids_);
  r.model = o.model.empty() ? "vLLM routed experts (" + files.front() + ")" : o.model;
  nlohmann::ordered_json p;
  p["recorded_by"] = "vLLM --enable-return-routed-experts (prompt_routed_experts, choices[].routed_experts)";
  p["importer"] = "rackep trace import --from vllm";
  p["files"] = files;
  p["responses"] = responses;
  p["prompt_tokens"] = prompt_tokens;
  p["generated_tokens"] = gen_tokens;
  p["layers"] = o.layers.empty() ? "MoE-local ids 0..L-1" : "model ids from --layers";
  p["num_experts"] = o.num_experts > 0 ? "--experts" : "largest id + 1";
  r.provenance_json = p.dump();

  report.found.push_back(std::to_string(responses) + " responses: " + std::to_string(r.num_sequences()) +
                         " sequences, " + std::to_string(prompt_tokens) + " prompt + " +
                         std::to_string(gen_tokens) + " generated tokens");
  report.found.push_back(std::to_string(c.num_layers_) + " MoE layers, top-" + std::to_string(r.top_k) +
                         ", expert ids 0.." + std::to_string(c.max_id_));
  report.assumed.push_back(o.layers.empty()
                               ? "layer ids are vLLM's MoE-local 0.." + std::to_string(c.num_layers_ - 1) +
                                     " (give --layers to map them to the model's)"
                               : "MoE-local layer i is model layer --layers[i]: " + describe_ids(r.layers));
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
  if (o.num_ranks <= 0 || o.tokens_per_rank <= 0)
    throw InputError(
        "--ranks", "--ranks",
        "vLLM routing has no source ranks: give --ranks and --tokens-per-rank to compose microbatches");
  const ComposePolicy policy = parse_compose_policy(o.policy, "--policy");
  auto routing = std::make_shared<const TokenRouting>(read_vllm_routed_experts(files, o, report));
  auto composer =
      std::make_unique<TokenComposer>(routing, ComposeConfig{o.num_ranks, o.tokens_per_rank, policy, o.seed});
  report.assumed.push_back("policy " + o.policy + " with seed " + std::to_string(o.seed) + ": " +
                           std::to_string(composer->num_microbatches()) + " microbatches of " +
                           std::to_string(o.num_ranks) + " ranks x " + std::to_string(o.tokens_per_rank) +
                           " tokens; " + std::to_string(composer->dropped_tokens()) +
                           " tokens dropped (the remainder that fills no microbatch)");
  return composer;
}

}  // namespace rackep
