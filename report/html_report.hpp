// File: report/html_report.hpp
// The HTML reports of `rackep plan|simulate|sweep --report out.html`: one self-contained XHTML page (inline
// SVG and CSS, no script, no network access) built from the JSON object that the same command prints with
// --json, plus, for simulate, the simulated timeline events collected by TimelineExcerpt. The page is
// well-formed XML; every chart is an <svg class="chart" data-chart="NAME"> and every mark carries its number
// in data-value (tests/report/check_report.py compares them with the JSON). Keys are read defensively: a
// chart whose keys are absent is left out, so new JSON fields never break a page. Usage:
//   report::TimelineExcerpt tl;  hooks.timeline = &tl;  hooks.on_balancer = [&](auto& n, int) { tl.begin(n);
//   }; SimReport r = run_simulation(config, hooks); report::write_report("out.html",
//   report::simulate_page(sim::report_to_json(r), tl.to_json()));
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "sim/timeline.hpp"

namespace rackep::report {

/// Keeps, per balancer, each rank's busy time per stream and the events of the first microbatch, from which
/// to_json() takes the busiest rank's excerpt: its events of the first four decoder layers (at most
/// `max_events`).
class TimelineExcerpt final : public sim::TimelineSink {
 public:
  explicit TimelineExcerpt(size_t max_events = 400) : max_events_(max_events) {}
  /// The events that follow belong to balancer `name` (SimHooks::on_balancer).
  void begin(const std::string& name);
  void on_event(const sim::TimelineEvent& event) override;
  /// {"balancers": [{"name", "busiest_rank", "compute_busy_s", "comm_busy_s",
  ///                 "events": [{"lane", "name", "start_s", "end_s", "layer"}...]}]}
  nlohmann::json to_json() const;

 private:
  struct Event {
    int rank, lane, layer;
    std::string name;
    double start_s, end_s;
  };
  struct PerBalancer {
    std::string name;
    std::map<int, double> busy[2];  // rank -> busy seconds, per lane
    std::vector<Event> first_microbatch;
  };
  size_t max_events_;
  std::vector<PerBalancer> runs_;
};

/// `rackep plan --report`: balance bars, imbalance heatmaps (layer x microbatch, before and per balancer
/// after), replicas per layer. `plan` is tools' plan-report JSON.
std::string plan_page(const nlohmann::json& plan);
/// `rackep simulate --report`: % of ideal, step time split (compute, communication, exposed balancing
/// overhead), timeline excerpt of the busiest rank; heatmaps/replicas when the JSON carries per-record data.
std::string simulate_page(const nlohmann::json& sim, const nlohmann::json& timeline);
/// `rackep sweep --report`: curves of % of ideal and step time against the first swept key.
/// `sweep` = {"axes": [{"key", "values"}], "runs": [{"values": [...], "ok", "result": <simulate JSON>}]}.
std::string sweep_page(const nlohmann::json& sweep);

/// The one function that writes a report file, atomically through OutputFile (an existing file is refused
/// unless `force`). Throws InputError naming the path and "--report" when it cannot.
void write_report(const std::string& path, const std::string& html, bool force = false);

}  // namespace rackep::report
