// File: tools/plan_runner.hpp
// Runs several balancers over one stream of records and summarises, per balancer, how balanced the EP group
// becomes and what it costs (the `rackep plan` report). Each balancer instance sees the records in order, so
// history-based balancers (eplb, lplb) plan from the past only.
// Usage:
//   rackep::tools::PlanRunConfig cfg{shape, {"none", "ultraep"}, options, expert_bytes, ws_options};
//   rackep::tools::PlanReport report = rackep::tools::run_plans(stream, cfg);
//   print_plan_report(report, std::cout);
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/step_driver.hpp"
#include "core/transfer.hpp"
#include "traces/trace_format.hpp"

namespace rackep::tools {

struct PlanRunConfig {
  ClusterShape shape;
  std::vector<std::string> balancers;
  BalancerOptions options;
  ExpertBytes expert;
  std::string model;              ///< the model the expert sizes come from
  std::string model_source;       ///< how it was chosen (--model, the trace's recorded model, default)
  nlohmann::ordered_json config;  ///< the resolved experiment config, echoed into the JSON report
  WeightSyncOptions weight_sync;  ///< relay column uses this mode (adaptive by default)
  int merge_sources = 1;          ///< consecutive trace source ranks summed into one EP rank
  int64_t max_records = 0;        ///< 0 = all
  bool check_legality = check_plans_by_default();  ///< §2.8 checks on every plan (StepDriver)
};

/// Summary statistics over records of one metric.
struct Distribution {
  double mean = 0, p50 = 0, p99 = 0, max = 0;
  static Distribution of(std::vector<double> values);
};

struct BalancerReport {
  std::string name;
  std::string refused;  ///< non-empty: the balancer refused the shape or options (why); no statistics
  Distribution imbalance_before;
  Distribution imbalance_after;
  Distribution domain_lower_bound;
  int max_instances = 0;  ///< max over records of the largest instance count of one expert
  Distribution replicas;  ///< total replicas per plan
  Distribution redundant_slots_used;
  Distribution remote_token_share;       ///< remote tokens / all tokens
  Distribution ws_busiest_direct_bytes;  ///< weight_sync bytes of the busiest rank, direct mode
  Distribution ws_busiest_relay_bytes;   ///< same, with the relay mode of PlanRunConfig::weight_sync
  Distribution planner_us;  ///< wall time of Balancer::plan per record (planning + per-source split)
  /// Per record, in trace order (PlanReport::record_layer/record_microbatch): the --report heatmaps.
  std::vector<double> per_record_before, per_record_after, per_record_replicas;
};

struct PlanReport {
  TraceManifest manifest;
  ClusterShape shape;
  ExpertBytes expert;
  std::string model, model_source;
  nlohmann::ordered_json config;
  int64_t records = 0;
  std::vector<int> record_layer;           ///< per record: layer id
  std::vector<int64_t> record_microbatch;  ///< per record: microbatch id
  std::vector<BalancerReport> balancers;
};

/// Plans every record of `in` with every balancer. Throws InputError for shapes the trace cannot be mapped
/// to.
PlanReport run_plans(RecordStream& in, const PlanRunConfig& config);

/// Human-readable tables. `with_timing` false omits the wall-clock column (byte-identical output).
void print_plan_report(const PlanReport& report, std::ostream& out, bool with_timing);
/// The machine-readable report: what --json prints and what --report draws. Per-record arrays ("records",
/// balancers[].per_record) are included when `per_record` is true.
nlohmann::ordered_json plan_report_json(const PlanReport& report, bool with_timing, bool per_record);
/// plan_report_json(report, with_timing, false) printed (one object, trailing newline).
void print_plan_report_json(const PlanReport& report, std::ostream& out, bool with_timing);

}  // namespace rackep::tools
