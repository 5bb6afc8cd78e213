// `rackep plan`: plan every record of a routing trace with several balancers and compare them.
#include <cctype>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/error.hpp"
#include "report/html_report.hpp"
#include "sim/config_io.hpp"
#include "sim/model_config.hpp"
#include "tools/commands.hpp"
#include "tools/config_cli.hpp"
#include "tools/logging.hpp"
#include "tools/plan_runner.hpp"
#include "traces/composer.hpp"
#include "traces/esft.hpp"
#include "traces/trace_reader.hpp"

namespace rackep::tools {
namespace {

struct PlanArgs {
  ConfigCli cli;
  bool json = false;
  bool per_record = false;
  std::string report;
  bool no_timing = false;
  bool force = false;
};

// The model whose expert sizes price weight_sync: --model, else the model the trace records (a bundled
// config whose file name appears in the manifest's model string, with the trace's expert count), else
// DeepSeek-V2-Lite (the model of the bundled traces), said so.
struct ModelChoice {
  sim::ModelConfig model;
  std::string source;
};

ModelChoice choose_model(const std::string& given, const TraceManifest& m) {
  if (!given.empty())
    return {sim::load_model(sim::resolve_data_file(given, "configs/models", "--model")), "--model"};
  std::string recorded = m.model;
  for (char& ch : recorded) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::string best;
  for (const std::string& name : sim::list_data_files("configs/models"))
    if (recorded.find(name) != std::string::npos && name.size() > best.size()) best = name;
  if (!best.empty()) {
    sim::ModelConfig model = sim::load_model(sim::resolve_data_file(best, "configs/models", "--model"));
    if (model.num_experts == m.num_experts) return {model, "the trace's recorded model"};
  }
  return {sim::load_model(sim::resolve_data_file("deepseek-v2-lite", "configs/models", "--model")),
          "default (the trace records no bundled model with its expert count; give --model)"};
}

std::vector<std::string> bundled_esft_dirs() {
  const std::string base = std::string(RACKEP_SOURCE_DIR) + "/traces/data/esft-deepseek-v2-lite/";
  return {base + "intent", base + "summary", base + "translation"};
}

void run_plan(const PlanArgs& a) {
  const config::ExperimentConfig c = resolve_config(a.cli, config::kPlan);
  std::unique_ptr<RecordStream> stream;
  int ranks = c.ranks.value_or(0);
  if (!c.trace.empty()) {
    if (!c.esft.empty()) throw InputError("--trace", "trace", "give either --trace or --esft, not both");
    stream = std::make_unique<TraceReader>(c.trace);
  } else {
    // Bundled default: the real DeepSeek-V2-Lite routing shipped with rackep, composed on the fly.
    if (ranks == 0) ranks = 8;
    auto routing =
        std::make_shared<const TokenRouting>(read_esft(c.esft.empty() ? bundled_esft_dirs() : c.esft));
    ComposeConfig cc;
    cc.num_ranks = ranks;
    cc.tokens_per_rank = *c.tokens_per_rank;
    cc.policy = parse_compose_policy(c.policy, "--policy");
    cc.seed = static_cast<uint64_t>(*c.seed);
    stream = std::make_unique<TokenComposer>(routing, cc);
  }
  const TraceManifest& m = stream->manifest();
  if (ranks == 0) ranks = m.num_ranks;
  if (m.num_ranks % ranks != 0)
    throw InputError("--ranks", std::to_string(ranks),
                     "the trace has " + std::to_string(m.num_ranks) + " source ranks, not a multiple of " +
                         std::to_string(ranks));
  const ModelChoice model = choose_model(c.model, m);
  PlanRunConfig cfg;
  cfg.shape = ClusterShape::from_experts(ranks, m.num_experts, c.slots, c.domain.value_or(ranks),
                                         "--ranks/--slots/--domain");
  cfg.merge_sources = m.num_ranks / ranks;
  cfg.balancers = c.balancers;
  cfg.options = c.options;
  cfg.expert.hidden = model.model.hidden;
  cfg.expert.ffn = model.model.expert_ffn;
  cfg.expert.validate(model.model.file);
  cfg.model = model.model.name;
  cfg.model_source = model.source;
  cfg.weight_sync.mode = parse_weight_sync_mode(c.weight_sync, "--weight-sync");
  cfg.max_records = c.max_records.value_or(0);
  cfg.check_legality = c.check_plans || check_plans_by_default();
  cfg.config = config::to_json(c, config::kPlan);
  logger("tools")->info("planning {} ({} records, {} source ranks) at EP {}; expert sizes of {} ({})",
                        m.model, m.num_records, m.num_ranks, ranks, model.model.name, model.source);
  const PlanReport report = run_plans(*stream, cfg);
  // --json and --report share one object; the page's heatmaps need the per-record arrays.
  const nlohmann::ordered_json j = plan_report_json(report, !a.no_timing, a.per_record || !a.report.empty());
  if (!a.report.empty()) {
    report::write_report(a.report, report::plan_page(nlohmann::json::parse(j.dump())), a.force);
    logger("tools")->info("report written to {}", a.report);
  }
  if (a.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    print_plan_report(report, std::cout, !a.no_timing);
  }
}

}  // namespace

void add_plan_command(CLI::App& app) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plan",
      "Plan every record of a routing trace with several balancers and compare balance and cost. Without "
      "--trace it replays the bundled real DeepSeek-V2-Lite routing (ESFT, 3 tasks) composed at --ranks.");
  add_config_options(*cmd, config::kPlan, args->cli);
  cmd->add_flag("--json", args->json, "print JSON (with the resolved config under \"config\")");
  cmd->add_flag("--no-timing", args->no_timing, "omit wall-clock planner times (byte-identical output)");
  cmd->add_flag("--per-record", args->per_record,
                "with --json: add per-record imbalance and replicas (\"records\", balancers[].per_record)");
  cmd->add_option("--report", args->report,
                  "write a self-contained HTML page with charts (balance, heatmaps, replicas per layer)");
  cmd->add_flag("--force", args->force, "replace an existing --report file");
  cmd->callback([args] { run_plan(*args); });
}

}  // namespace rackep::tools
