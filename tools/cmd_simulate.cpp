// `rackep simulate`: replay a routing trace through balancers on a simulated rack (sim/simulator.hpp) and
// print what a user would measure. With no arguments it runs the bundled default: the shipped ESFT
// DeepSeek-V2-Lite routing on one GB200 NVL72 at EP 32, comparing none, eplb, lplb, ultraep and the
// force-balanced ideal.
#include <fstream>
#include <iostream>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "report/html_report.hpp"
#include "sim/experiment_config.hpp"
#include "sim/report.hpp"
#include "tools/commands.hpp"
#include "tools/config_cli.hpp"
#include "tools/logging.hpp"

namespace rackep::tools {
namespace {

struct SimulateArgs {
  ConfigCli cli;
  bool json = false;
  bool explain = false;
  bool host_planner_time = false;
  std::string timeline;
  std::string dump_topology;
  bool force = false;
  std::string report;
};

// Hands every timeline event to each of several sinks (--timeline file and --report excerpt).
class TeeSink final : public sim::TimelineSink {
 public:
  std::vector<sim::TimelineSink*> sinks;
  void on_event(const sim::TimelineEvent& e) override {
    for (sim::TimelineSink* s : sinks) s->on_event(e);
  }
};

void run_simulate(const SimulateArgs& a) {
  const config::ExperimentConfig exp = resolve_config(a.cli, config::kSimulate);
  sim::SimConfig config = sim::to_sim_config(exp);
  config.measure_host_planner = a.host_planner_time;
  auto log = logger("sim");
  // Outputs are opened (and an existing file refused) before the run, written beside their targets and
  // renamed into place only when complete (core/output_file.hpp).
  std::unique_ptr<OutputFile> timeline_file, topology_file;
  if (!a.dump_topology.empty())
    topology_file = std::make_unique<OutputFile>(a.dump_topology, "--dump-topology", a.force);
  std::unique_ptr<sim::ChromeTraceWriter> timeline;
  sim::SimHooks hooks;
  TeeSink tee;
  report::TimelineExcerpt excerpt;
  if (!a.timeline.empty()) {
    timeline_file = std::make_unique<OutputFile>(a.timeline, "--timeline", a.force);
    timeline = std::make_unique<sim::ChromeTraceWriter>(timeline_file->stream());
    tee.sinks.push_back(timeline.get());
  }
  if (!a.report.empty()) tee.sinks.push_back(&excerpt);
  if (!tee.sinks.empty()) {
    hooks.timeline = &tee;
    hooks.on_balancer = [&](const std::string& name, int index) {
      if (timeline) timeline->begin_process(name, index);
      if (!a.report.empty()) excerpt.begin(name);
    };
  }

  log->info("simulating {} on {} with trace {} ({} fidelity)", config.model, config.topology, config.trace,
            exp.fidelity);
  const sim::SimReport report = sim::run_simulation(config, hooks);
  for (const auto& note : report.inputs["notes"]) log->warn("{}", note.get<std::string>());
  if (timeline) {
    timeline->finish();
    timeline_file->commit();
    log->info("timeline written to {} (open it in ui.perfetto.dev)", a.timeline);
  }
  if (!a.dump_topology.empty()) {
    topology_file->write(report.platform.dump(2) + "\n");
    topology_file->commit();
    log->info("platform written to {}", a.dump_topology);
  }
  nlohmann::json j = sim::report_to_json(report);
  j["config"] = config::to_json(exp, config::kSimulate);  // re-run with --config
  if (!a.report.empty()) {
    report::write_report(a.report, report::simulate_page(j, excerpt.to_json()), a.force);
    log->info("report written to {}", a.report);
  }
  if (a.json) {
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << sim::format_table(report);
    if (a.explain) std::cout << "\n" << sim::column_legend(exp.mode == "prefill");
  }
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto args = std::make_shared<SimulateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "simulate EP training or prefill on a rack and compare balancers (no arguments: the bundled default, "
      "DeepSeek-V2-Lite ESFT routing on GB200 NVL72 at EP 32)");
  add_config_options(*cmd, config::kSimulate, args->cli);
  cmd->add_flag("--json", args->json,
                "print the report as JSON instead of the table (with the resolved config under \"config\")");
  cmd->add_flag("--explain", args->explain, "print what every column means under the table");
  cmd->add_flag("--host-planner-time", args->host_planner_time,
                "also report the measured host wall time of each planner call (not deterministic)");
  cmd->add_option("--timeline", args->timeline,
                  "write a Chrome/Perfetto trace of ranks and phases to this file");
  cmd->add_option("--report", args->report,
                  "write a self-contained HTML page with charts (% of ideal, step split, timeline excerpt)");
  cmd->add_option("--dump-topology", args->dump_topology,
                  "write the topology (with sources) and the SimGrid platform that was built to this file");
  cmd->add_flag("--force", args->force, "replace existing --timeline / --dump-topology / --report files");
  cmd->callback([args] { run_simulate(*args); });
}

}  // namespace rackep::tools
