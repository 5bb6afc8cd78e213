// `rackep plan`: plan every record of a routing trace with several balancers and compare them.
#include <iostream>
#include <memory>
#include <sstream>

#include "core/error.hpp"
#include "report/html_report.hpp"
#include "tools/commands.hpp"
#include "tools/logging.hpp"
#include "tools/plan_runner.hpp"
#include "traces/composer.hpp"
#include "traces/esft.hpp"
#include "traces/trace_reader.hpp"

namespace rackep::tools {
namespace {

struct PlanArgs {
  std::string trace;
  std::vector<std::string> esft_dirs;
  int64_t tokens_per_rank = 256;
  std::string policy = "pack";
  uint64_t seed = 0;
  int ranks = 0;
  int slots = 2;
  int domain = 0;
  std::string balancers = "none,ultraep-legacy,eplb,lplb,ultraep,ideal";
  int64_t hidden = 2048;  // DeepSeek-V2-Lite expert (the model of the bundled traces)
  int64_t ffn = 1408;
  std::string ws_mode = "adaptive";
  int64_t max_records = 0;
  bool json = false;
  bool no_timing = false;
  bool per_record = false;
  std::string report;
  BalancerOptions options;
  bool no_locality = false;
  std::string eplb_policy = "auto";
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  if (out.empty()) throw InputError("--balancers", "balancers", "no balancer given");
  return out;
}

EplbPolicy parse_eplb_policy(const std::string& text) {
  if (text == "auto") return EplbPolicy::kAuto;
  if (text == "hierarchical") return EplbPolicy::kHierarchical;
  if (text == "global") return EplbPolicy::kGlobal;
  throw InputError("--eplb-policy", text, "unknown policy (use auto, hierarchical or global)");
}

std::vector<std::string> bundled_esft_dirs() {
  const std::string base = std::string(RACKEP_SOURCE_DIR) + "/traces/data/esft-deepseek-v2-lite/";
  return {base + "intent", base + "summary", base + "translation"};
}

void run_plan(PlanArgs& a) {
  std::unique_ptr<RecordStream> stream;
  if (!a.trace.empty()) {
    if (!a.esft_dirs.empty()) throw InputError("--trace", "trace", "give either --trace or --esft, not both");
    stream = std::make_unique<TraceReader>(a.trace);
  } else {
    // Bundled default: the real DeepSeek-V2-Lite routing shipped with rackep, composed on the fly.
    if (a.esft_dirs.empty()) a.esft_dirs = bundled_esft_dirs();
    if (a.ranks == 0) a.ranks = 8;
    auto routing = std::make_shared<const TokenRouting>(read_esft(a.esft_dirs));
    ComposeConfig cc;
    cc.num_ranks = a.ranks;
    cc.tokens_per_rank = a.tokens_per_rank;
    cc.policy = parse_compose_policy(a.policy, "--policy");
    cc.seed = a.seed;
    stream = std::make_unique<TokenComposer>(routing, cc);
  }
  const TraceManifest& m = stream->manifest();
  const int ranks = a.ranks > 0 ? a.ranks : m.num_ranks;
  if (m.num_ranks % ranks != 0)
    throw InputError("--ranks", "ranks",
                     "the trace has " + std::to_string(m.num_ranks) + " source ranks, not a multiple of " +
                         std::to_string(ranks));
  PlanRunConfig cfg;
  cfg.shape = ClusterShape::from_experts(ranks, m.num_experts, a.slots, a.domain > 0 ? a.domain : ranks,
                                         "--ranks/--slots/--domain");
  cfg.merge_sources = m.num_ranks / ranks;
  cfg.balancers = split_list(a.balancers);
  cfg.options = a.options;
  cfg.options.ultraep.locality_aware = !a.no_locality;
  cfg.options.eplb.policy = parse_eplb_policy(a.eplb_policy);
  cfg.expert.hidden = a.hidden;
  cfg.expert.ffn = a.ffn;
  cfg.expert.validate("--hidden/--ffn");
  cfg.weight_sync.mode = parse_weight_sync_mode(a.ws_mode, "--weight-sync-mode");
  cfg.max_records = a.max_records;
  logger("tools")->info("planning {} ({} records, {} source ranks) at EP {} with {}", m.model, m.num_records,
                        m.num_ranks, ranks, a.balancers);
  const PlanReport report = run_plans(*stream, cfg);
  // --json and --report share one object; the page's heatmaps need the per-record arrays.
  const nlohmann::ordered_json j = plan_report_json(report, !a.no_timing, a.per_record || !a.report.empty());
  if (a.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    print_plan_report(report, std::cout, !a.no_timing);
  }
  if (!a.report.empty()) {
    report::write_report(a.report, report::plan_page(nlohmann::json::parse(j.dump())));
    logger("tools")->info("report written to {}", a.report);
  }
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Plan every record of a routing trace with several balancers and compare balance and cost. Without "
      "--trace it replays the bundled real DeepSeek-V2-Lite routing (ESFT, 3 tasks) composed at --ranks.");
  cmd->add_option("--trace", args->trace, "canonical trace directory (see `rackep trace`)");
  cmd->add_option("--esft", args->esft_dirs, "ESFT task directories to compose instead of a trace");
  cmd->add_option("--tokens-per-rank", args->tokens_per_rank, "tokens per rank per microbatch (ESFT)")
      ->capture_default_str();
  cmd->add_option("--policy", args->policy, "ESFT composition: pack or whole")->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed of the ESFT sequence order")->capture_default_str();
  cmd->add_option("--ranks", args->ranks, "EP size N (default: the trace's; 8 for ESFT)");
  cmd->add_option("--slots", args->slots, "redundant slots per rank R")->capture_default_str();
  cmd->add_option("--domain", args->domain, "NVLink domain size G (default N)");
  cmd->add_option("--balancers", args->balancers, "comma-separated balancers")->capture_default_str();
  cmd->add_option("--hidden", args->hidden, "expert hidden size H (weight_sync bytes)")
      ->capture_default_str();
  cmd->add_option("--ffn", args->ffn, "expert FFN size F")->capture_default_str();
  cmd->add_option("--weight-sync-mode", args->ws_mode, "relay column: adaptive, force_relay or direct")
      ->capture_default_str();
  cmd->add_option("--max-records", args->max_records, "stop after this many records (0 = all)");
  cmd->add_flag("--json", args->json, "print JSON");
  cmd->add_flag("--per-record", args->per_record,
                "with --json: add per-record imbalance and replicas (\"records\", balancers[].per_record)");
  cmd->add_option("--report", args->report,
                  "write a self-contained HTML page with charts (balance, heatmaps, replicas per layer)");
  cmd->add_flag("--no-timing", args->no_timing, "omit wall-clock planner times (byte-identical output)");
  cmd->add_option("--eps", args->options.ultraep.eps, "ultraep: QUOTA_ORACLE_EPS")->capture_default_str();
  cmd->add_option("--balance-threshold", args->options.ultraep.balance_threshold, "ultraep: bt")
      ->capture_default_str();
  cmd->add_option("--min-tokens-per-replica", args->options.ultraep.min_tokens_per_replica,
                  "ultraep: static floor q_min of the fallback search")
      ->capture_default_str();
  cmd->add_flag("--no-locality", args->no_locality, "ultraep: plain proportional per-source split");
  cmd->add_option("--eplb-window", args->options.eplb.window, "eplb: microbatches of history per layer")
      ->capture_default_str();
  cmd->add_option("--eplb-period", args->options.eplb.period, "eplb: re-plan every K microbatches of a layer")
      ->capture_default_str();
  cmd->add_option("--eplb-policy", args->eplb_policy, "eplb: auto, hierarchical or global")
      ->capture_default_str();
  cmd->add_option("--eplb-groups", args->options.eplb.num_groups, "eplb: expert groups (0 = one per domain)");
  cmd->add_option("--eplb-nodes", args->options.eplb.num_nodes, "eplb: nodes (0 = one per NVLink domain)");
  cmd->add_option("--lplb-group", args->options.lplb.group_size, "lplb: ranks per redundancy group")
      ->capture_default_str();
  cmd->add_option("--lplb-directions", args->options.lplb.directions, "lplb: directions (0 = min(2, R))");
  cmd->add_option("--lplb-window", args->options.lplb.window, "lplb: history window")->capture_default_str();
  cmd->add_option("--lplb-period", args->options.lplb.period, "lplb: re-select replicated experts every K")
      ->capture_default_str();
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace rackep::tools
