// File: sim/report.hpp
// Outputs of a simulation (docs/DESIGN.md "Outputs"): the summary table, machine-readable JSON, and a
// Chrome/Perfetto trace writer that subscribes to the step loop (ui.perfetto.dev and chrome://tracing open
// it). Formatting is fixed-precision so identical inputs print identical bytes. Usage:
//   std::cout << format_table(report);
//   ChromeTraceWriter w(file);  SimHooks h{&w, [&](auto& n, int i) { w.begin_process(n, i); }};
//   SimReport r = run_simulation(config, h);  w.finish();
#pragma once

#include <nlohmann/json.hpp>

#include <ostream>
#include <string>
#include <vector>

#include "sim/simulator.hpp"
#include "sim/timeline.hpp"

namespace rackep::sim {

/// The per-balancer summary table with a short header saying what was simulated.
std::string format_table(const SimReport& report);
/// {"inputs": ..., "balancers": [...], "global_tokens_per_step": ...}.
nlohmann::json report_to_json(const SimReport& report);
/// One line per column explaining it (printed under the table with --explain and in the README).
std::string column_legend(bool prefill);

/// Streams Chrome trace-event JSON: one process per balancer, one thread per (rank, stream).
class ChromeTraceWriter final : public TimelineSink {
 public:
  explicit ChromeTraceWriter(std::ostream& out);
  /// Starts the events of balancer `name` (process id `index`).
  void begin_process(const std::string& name, int index);
  void on_event(const TimelineEvent& event) override;
  /// Closes the JSON document. Call once, after the simulation.
  void finish();

 private:
  std::ostream& out_;
  std::vector<bool> named_;  // thread (rank, stream) of the current process already named
  int pid_ = 0;
  bool first_ = true;
  void separator();
};

}  // namespace rackep::sim
