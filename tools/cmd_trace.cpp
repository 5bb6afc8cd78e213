// `rackep trace synth|import|stat`: write synthetic traces, import recorded routing, summarise a trace.
// Results go to stdout (deterministic for a seed); progress and timings go to the "traces" logger on stderr.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "config/experiment.hpp"
#include "core/error.hpp"
#include "core/progress.hpp"
#include "tools/commands.hpp"
#include "tools/logging.hpp"
#include "traces/composer.hpp"
#include "traces/esft.hpp"
#include "traces/import_common.hpp"
#include "traces/import_registry.hpp"
#include "traces/synthetic.hpp"
#include "traces/trace_reader.hpp"
#include "traces/trace_stats.hpp"
#include "traces/trace_writer.hpp"

namespace rackep::tools {

using config::kMaxExperts;
using config::kMaxImbalance;
using config::kMaxMicrobatches;
using config::kMaxRanks;
using config::kMaxTokensPerRank;
using config::kMaxTopK;
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// "1-26", "1,3,5-7" -> ids in the given order.
std::vector<int> parse_layer_list(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  auto to_int = [&](const std::string& s) {
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (s.empty() || used != s.size())
      throw InputError("--layers", "--layers", "'" + text + "' is not a list like 1-26 or 1,3,5-7");
    return v;
  };
  while (std::getline(ss, item, ',')) {
    const size_t dash = item.find('-', 1);
    if (dash == std::string::npos) {
      out.push_back(to_int(item));
    } else {
      const int a = to_int(item.substr(0, dash)), b = to_int(item.substr(dash + 1));
      if (b < a || b - a > 100000) throw InputError("--layers", "--layers", "bad range '" + item + "'");
      for (int l = a; l <= b; ++l) out.push_back(l);
    }
  }
  if (out.empty()) throw InputError("--layers", "--layers", "empty layer list");
  return out;
}

void print_manifest_summary(const TraceManifest& m, std::ostream& out) {
  out << "model: " << m.model << "\n"
      << "shape: N=" << m.num_ranks << " source ranks, L=" << m.num_experts << " experts, top-" << m.top_k
      << ", T=" << m.tokens_per_rank << " tokens per rank\n"
      << "records: " << m.num_records << " (" << m.layers.size() << " layers x "
      << (m.layers.empty() ? 0 : m.num_records / static_cast<int64_t>(m.layers.size())) << " microbatches)\n";
}

// ---- synth -----------------------------------------------------------------------------------------------

struct SynthArgs {
  SynthConfig config;
  std::string kind = "zipf";
  int num_layers = 4;
  std::string out;
  int64_t chunk_records = 256;
};

void run_synth(SynthArgs& a) {
  a.config.kind = parse_synth_kind(a.kind, "--kind");
  if (a.num_layers <= 0) throw InputError("--layers", "--layers", "must be positive");
  a.config.layers.clear();
  for (int l = 0; l < a.num_layers; ++l) a.config.layers.push_back(l);
  if (a.config.model == "synthetic") a.config.model = std::string("synthetic ") + a.kind;
  const auto t0 = Clock::now();
  SyntheticStream gen(a.config);
  const TraceManifest m = write_trace(gen, a.out, {a.chunk_records});
  const double secs = seconds_since(t0);
  std::cout << "wrote " << a.out << "\n";
  print_manifest_summary(m, std::cout);
  std::cout << "generator: " << a.kind << ", target imbalance " << a.config.imbalance << ", alpha "
            << fmt("%.6f", gen.alpha()) << ", seed " << a.config.seed << "\n"
            << "chunks: " << m.chunks.size() << "\n";
  logger("traces")->info("synth: {} records in {:.2f} s", m.num_records, secs);
}

// ---- import ----------------------------------------------------------------------------------------------

struct ImportArgs {
  std::string from;
  std::vector<std::string> inputs;
  int num_ranks = 0;
  int64_t tokens_per_rank = 0;
  std::string policy = "pack";
  uint64_t seed = 0;
  std::string layers;
  std::string out;
  int64_t chunk_records = 256;
  int top_k = 0;
  int num_experts = 0;
  int replication = 1;
  std::string model;
  std::string dump;
  bool merge_dumps = false;
  std::string placement;
};

// Passes records through and counts them on a progress line (stderr, terminals only).
class ProgressStream final : public RecordStream {
 public:
  ProgressStream(RecordStream& in, const std::string& label)
      : in_(in), progress_(label, in.manifest().num_records, "records") {}
  const TraceManifest& manifest() const override { return in_.manifest(); }
  bool next(TraceRecord& r) override {
    if (!in_.next(r)) {
      progress_.finish();
      return false;
    }
    progress_.add();
    return true;
  }

 private:
  RecordStream& in_;
  Progress progress_;
};

// Recorded formats other than ESFT (traces/import_registry.hpp): open, report what was found and assumed,
// write atomically (nothing is left at --out on failure).
void run_import_recorded(const ImportArgs& a) {
  ImportOptions o;
  if (!a.layers.empty()) o.layers = parse_layer_list(a.layers);
  o.top_k = a.top_k;
  o.num_experts = a.num_experts;
  o.num_ranks = a.num_ranks;
  o.tokens_per_rank = a.tokens_per_rank;
  o.replication = a.replication;
  o.seed = a.seed;
  o.policy = a.policy;
  o.model = a.model;
  o.dump = a.dump;
  o.merge_dumps = a.merge_dumps;
  o.placement = a.placement;
  const auto t0 = Clock::now();
  ImportReport report;
  std::unique_ptr<RecordStream> stream = open_import(a.from, a.inputs, o, report);
  std::cout << "found (" << a.from << "):\n";
  for (const std::string& line : report.found) std::cout << "  " << line << "\n";
  std::cout << "assumed:\n";
  for (const std::string& line : report.assumed) std::cout << "  " << line << "\n";
  ProgressStream counted(*stream, "import");
  const TraceManifest m = write_trace_atomic(counted, a.out, {a.chunk_records}, report.side_files);
  std::cout << "wrote " << a.out << "\n";
  print_manifest_summary(m, std::cout);
  logger("traces")->info("import: {} records in {:.2f} s", m.num_records, seconds_since(t0));
}

void run_import(const ImportArgs& a) {
  if (a.from != "esft") return run_import_recorded(a);
  if (a.num_ranks <= 0 || a.tokens_per_rank <= 0)
    throw InputError("--from esft", "--ranks", "ESFT needs --ranks and --tokens-per-rank (composition)");
  const ComposePolicy policy = parse_compose_policy(a.policy, "--policy");
  EsftOptions options;
  if (!a.layers.empty()) options.layers = parse_layer_list(a.layers);
  if (a.num_experts > 0) options.num_experts = a.num_experts;  // ids are checked against it
  if (a.top_k > 0) options.top_k = a.top_k;                    // ids per token on each line
  if (a.replication != 1)
    throw InputError("--from esft", "--replication", "ESFT sequences have no ranks to replicate");
  const auto t0 = Clock::now();
  TokenRouting read = read_esft(a.inputs, options);
  if (!a.model.empty()) read.model = a.model;
  auto routing = std::make_shared<const TokenRouting>(std::move(read));
  const double read_s = seconds_since(t0);
  TokenComposer composer(routing, {a.num_ranks, a.tokens_per_rank, policy, a.seed});

  std::cout << "found (esft):\n";
  for (const RoutingSource& s : routing->sources)
    std::cout << "  " << s.name << ": " << s.num_sequences << " sequences, " << s.num_tokens << " tokens ("
              << s.path << ")\n";
  std::cout << "  total: " << routing->num_sequences() << " sequences, " << routing->num_tokens()
            << " tokens, " << routing->layers.size() << " MoE layers (" << routing->layers.front() << ".."
            << routing->layers.back() << "), " << routing->num_experts << " experts, top-" << routing->top_k
            << "\n";
  std::cout << "assumed:\n"
            << "  layer ids are ESFT's MoE layers (layer 0 is dense); gate weights are validated, not used\n"
            << "  policy " << a.policy << " with seed " << a.seed << ": "
            << (policy == ComposePolicy::kPack
                    ? "sequences shuffled, concatenated, cut into " + std::to_string(a.tokens_per_rank) +
                          "-token windows, rank-major within a microbatch"
                    : "whole sequences shuffled, each to the least-filled rank while it fits in " +
                          std::to_string(a.tokens_per_rank) + " tokens")
            << "\n"
            << "  " << composer.num_microbatches() << " microbatches of " << a.num_ranks << " ranks; "
            << composer.dropped_tokens() << " tokens dropped ("
            << (policy == ComposePolicy::kPack ? "the tail short of a full microbatch"
                                               : "the sequences of the microbatch left open at the end")
            << ")\n";

  // Written beside --out and renamed when complete: a failed import leaves nothing behind.
  ProgressStream counted(composer, "import");
  const TraceManifest m = write_trace_atomic(counted, a.out, {a.chunk_records}, routing->notices);
  std::cout << "wrote " << a.out << "\n";
  print_manifest_summary(m, std::cout);
  if (!routing->notices.empty())
    std::cout << "license notice copied: " << routing->notices.front().first << "\n";
  logger("traces")->info("import: read {} tokens in {:.2f} s, wrote {} records in {:.2f} s total",
                         routing->num_tokens(), read_s, m.num_records, seconds_since(t0));
}

// ---- stat ------------------------------------------------------------------------------------------------

struct StatArgs {
  std::string trace;
  int num_ranks = 0;
  int hot = 8;
  bool json = false;
};

nlohmann::ordered_json layer_json(const LayerStats& s) {
  nlohmann::ordered_json j;
  if (s.layer >= 0) j["layer"] = s.layer;
  j["records"] = s.records;
  j["tokens"] = s.tokens;
  j["imbalance"] = {{"mean", s.imbalance_mean}, {"p50", s.imbalance_p50}, {"max", s.imbalance_max}};
  j["expert_imbalance_mean"] = s.expert_imbalance_mean;
  j["predict_previous"] = {
      {"pairs", s.predict_pairs},
      {"rel_l1", s.predict_rel_l1},
      {"pearson", s.pearson_pairs > 0 ? nlohmann::ordered_json(s.predict_pearson) : nullptr},
      {"hot_overlap", s.predict_hot_overlap}};
  if (s.layer >= 0) {
    j["hottest"] = nlohmann::ordered_json::array();
    for (const auto& [e, share] : s.hottest) j["hottest"].push_back({{"expert", e}, {"share", share}});
  }
  return j;
}

void run_stat(const StatArgs& a) {
  const auto t0 = Clock::now();
  TraceReader reader(a.trace);
  const TraceStats st = compute_trace_stats(reader, {a.num_ranks, a.hot});
  logger("traces")->info("stat: {} records in {:.2f} s", st.records, seconds_since(t0));
  const TraceManifest& m = st.manifest;
  if (a.json) {
    nlohmann::ordered_json j;
    j["trace"] = a.trace;
    j["model"] = m.model;
    j["num_ranks"] = m.num_ranks;
    j["num_experts"] = m.num_experts;
    j["top_k"] = m.top_k;
    j["tokens_per_rank"] = m.tokens_per_rank;
    j["records"] = st.records;
    j["microbatches"] = st.microbatches;
    j["imbalance_ranks"] = st.num_ranks;
    j["experts_per_rank"] = st.num_masters;
    j["hot"] = st.hot;
    j["overall"] = layer_json(st.overall);
    j["layers"] = nlohmann::ordered_json::array();
    for (const LayerStats& l : st.layers) j["layers"].push_back(layer_json(l));
    j["provenance"] = nlohmann::ordered_json::parse(m.provenance_json);
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "trace: " << a.trace << "\n";
  print_manifest_summary(m, std::cout);
  std::cout << "rank imbalance (max/mean) for EP " << st.num_ranks << ", " << st.num_masters
            << " consecutive experts per rank; prediction = previous microbatch's W for the same layer\n";
  char line[256];
  std::snprintf(line, sizeof line, "%6s %7s %8s %8s %8s %8s %8s %8s %8s  %s\n", "layer", "records",
                "imb.mean", "imb.p50", "imb.max", "exp.imb", "pred.L1", "pred.r", "hot.ovl",
                "hottest experts (share)");
  std::cout << line;
  auto row = [&](const std::string& name, const LayerStats& s) {
    const std::string r = s.pearson_pairs > 0 ? fmt("%8.3f", s.predict_pearson) : "       -";
    const std::string l1 = s.predict_pairs > 0 ? fmt("%8.3f", s.predict_rel_l1) : "       -";
    const std::string ov = s.predict_pairs > 0 ? fmt("%8.3f", s.predict_hot_overlap) : "       -";
    std::snprintf(line, sizeof line, "%6s %7lld %8.3f %8.3f %8.3f %8.3f %s %s %s  ", name.c_str(),
                  static_cast<long long>(s.records), s.imbalance_mean, s.imbalance_p50, s.imbalance_max,
                  s.expert_imbalance_mean, l1.c_str(), r.c_str(), ov.c_str());
    std::cout << line;
    for (size_t i = 0; i < s.hottest.size() && i < 5; ++i)
      std::cout << (i ? ", " : "") << "e" << s.hottest[i].first << " "
                << fmt("%.1f%%", 100.0 * s.hottest[i].second);
    std::cout << "\n";
  };
  for (const LayerStats& l : st.layers) row(std::to_string(l.layer), l);
  row("all", st.overall);
  std::cout << "hot.ovl: overlap of the " << st.hot << " hottest experts; pred.L1: sum|W_prev - W| / sum W\n"
            << "provenance: " << m.provenance_json << "\n";
}

}  // namespace

void add_trace_command(CLI::App& app) {
  CLI::App* trace =
      app.add_subcommand("trace", "write, import and summarise routing traces (canonical format)");
  trace->require_subcommand(1);

  auto synth_args = std::make_shared<SynthArgs>();
  CLI::App* synth = trace->add_subcommand("synth", "write a seeded synthetic trace (docs/ALGORITHMS.md 2.9)");
  SynthConfig& c = synth_args->config;
  synth->add_option("--out", synth_args->out, "new trace directory (must not exist)")->required();
  synth->add_option("--kind", synth_args->kind, "zipf (stationary), drift (gradual), switch (abrupt)")
      ->capture_default_str();
  synth->add_option("--ranks", c.num_ranks, "N source ranks")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxRanks));
  synth->add_option("--experts", c.num_experts, "L logical experts (multiple of N)")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxExperts));
  synth->add_option("--top-k", c.top_k, "experts per token")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxTopK));
  synth->add_option("--tokens-per-rank", c.tokens_per_rank, "T tokens per rank per microbatch")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxTokensPerRank));
  synth->add_option("--layers", synth_args->num_layers, "number of layers (ids 0..n-1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  synth->add_option("--microbatches", c.num_microbatches, "microbatches")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMaxMicrobatches));
  synth->add_option("--imbalance", c.imbalance, "target expected rank imbalance rho >= 1")
      ->capture_default_str()
      ->check(CLI::Range(1.0, kMaxImbalance));
  synth->add_option("--seed", c.seed, "seed")->capture_default_str();
  synth
      ->add_option("--drift-every", c.drift_every,
                   "drift: microbatches per one-expert step (weights blend in between)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  synth->add_option("--switch-every", c.switch_every, "switch: microbatches per placement")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  synth->add_flag("--variable-tokens", c.variable_tokens,
                  "token counts round(g*T), g ~ N(0.5, 0.35) in [0, 1]");
  synth->add_flag("--layer-variation", c.layer_variation,
                  "a different seeded hot-expert placement per layer");
  synth->add_option("--model", c.model, "model name for the manifest");
  synth->add_option("--chunk-records", synth_args->chunk_records, "records per chunk file")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  synth->callback([synth_args] { run_synth(*synth_args); });

  auto import_args = std::make_shared<ImportArgs>();
  CLI::App* imp =
      trace->add_subcommand("import", "compose recorded per-token routing into a canonical trace");
  imp->add_option("--from", import_args->from, std::string("input format: esft, ") + import_format_names())
      ->required();
  imp->add_option(
         "inputs", import_args->inputs,
         "esft: task directories; trtllm: the EXPERT_STATISTIC_PATH directory; sglang: the recorder's "
         ".pt/.csv files or directory, saved /generate responses (.jsonl) or {\"logical_count\"} JSON; "
         "vllm: saved responses (.jsonl/.json) or expert_load_view.pt; ultraep: {id}.manifest.json or its "
         "directory; jsonl: .jsonl files; loads: one [layers, experts] matrix (.npy, .json, .pt) "
         "(README, Importing production traces)")
      ->required();
  imp->add_option("--ranks", import_args->num_ranks, "N source ranks (EP size; ESFT: required)")
      ->check(CLI::Range(1, kMaxRanks));
  imp->add_option("--tokens-per-rank", import_args->tokens_per_rank,
                  "T tokens per rank per microbatch (ESFT: required; else default derived)")
      ->check(CLI::Range(int64_t{1}, kMaxTokensPerRank));
  imp->add_option("--policy", import_args->policy,
                  "pack (Megatron-like packing) or whole (unsplit sequences)")
      ->capture_default_str();
  imp->add_option("--seed", import_args->seed, "seed of the sequence order")->capture_default_str();
  imp->add_option("--layers", import_args->layers, "MoE layers to import, e.g. 1-26 or 1,5,9 (default all)");
  imp->add_option("--out", import_args->out, "new trace directory (must not exist)")->required();
  imp->add_option("--chunk-records", import_args->chunk_records, "records per chunk file")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  imp->add_option("--top-k", import_args->top_k, "experts per token, for formats that do not record it")
      ->check(CLI::Range(1, kMaxTopK));
  imp->add_option("--experts", import_args->num_experts,
                  "logical experts, for formats that do not record it (default: largest id + 1)")
      ->check(CLI::Range(1, kMaxExperts));
  imp->add_option("--replication", import_args->replication,
                  "R-fold replication under TP attention: groups of R ranks hold the same tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxRanks));
  imp->add_option("--model", import_args->model, "model name for the manifest");
  imp->add_option("--dump", import_args->dump, "sglang: the dump id ({time} of the file names) to import");
  imp->add_flag("--merge-dumps", import_args->merge_dumps,
                "sglang: merge every dump by (forward pass, rank), as SGLang's reader does");
  imp->add_option(
      "--placement", import_args->placement,
      "trtllm: the EP load balancer's placement (moe_load_balancer.yaml) mapping slot ids to experts");
  imp->callback([import_args] { run_import(*import_args); });

  auto export_args = std::make_shared<std::vector<std::string>>(3);  // format, trace, out
  CLI::App* exp = trace->add_subcommand("export", "write a canonical trace in a recorder's format");
  exp->add_option("--to", (*export_args)[0], export_format_names())->required();
  exp->add_option("trace", (*export_args)[1], "canonical trace directory")->required();
  exp->add_option("--out", (*export_args)[2], "new output directory or file (must not exist)")->required();
  exp->callback([export_args] {
    TraceReader reader((*export_args)[1]);
    export_trace((*export_args)[0], reader, (*export_args)[2]);
    std::cout << "wrote " << (*export_args)[2] << " (" << (*export_args)[0] << ", "
              << reader.manifest().num_records << " records)\n";
  });

  auto stat_args = std::make_shared<StatArgs>();
  CLI::App* stat = trace->add_subcommand("stat", "per-layer imbalance, hottest experts, predictability");
  stat->add_option("trace", stat_args->trace, "trace directory")->required();
  stat->add_option("--ranks", stat_args->num_ranks, "EP size for the imbalance (default: the trace's N)")
      ->check(CLI::Range(1, kMaxRanks));
  stat->add_option("--hot", stat_args->hot, "hottest experts to list and compare")
      ->capture_default_str()
      ->check(CLI::Range(0, kMaxExperts));
  stat->add_flag("--json", stat_args->json, "machine-readable output");
  stat->callback([stat_args] { run_stat(*stat_args); });
}

}  // namespace rackep::tools
