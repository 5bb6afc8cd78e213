#include "tools/plan_runner.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/metrics.hpp"

namespace rackep::tools {
namespace {

// Sums `factor` consecutive source ranks into one (a trace recorded at EP N*factor replayed at EP N).
void merge_sources(const LoadMatrix& in, int factor, LoadMatrix& out) {
  const int n = in.num_ranks() / factor;
  if (out.num_ranks() != n || out.num_experts() != in.num_experts()) out = LoadMatrix(n, in.num_experts());
  std::fill(out.values().begin(), out.values().end(), 0);
  for (int s = 0; s < in.num_ranks(); ++s) {
    const int32_t* src = in.row(s);
    int32_t* dst = out.row(s / factor);
    for (int l = 0; l < in.num_experts(); ++l) dst[l] += src[l];
  }
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  // Nearest rank.
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

struct Samples {
  std::vector<double> before, after, lb, replicas, slots, remote, ws_direct, ws_relay, us;
  int max_instances = 0;
};

int64_t busiest(const TransferPlan& t) {
  return std::max(t.max_egress_bytes(), t.max_ingress_bytes());
}

std::string refused_line(const BalancerReport& b) {
  char line[64];
  std::snprintf(line, sizeof line, "%-15s ", b.name.c_str());
  return line + std::string("refused: ") + b.refused + "\n";
}

nlohmann::json dist_json(const Distribution& d) {
  return {{"mean", d.mean}, {"p50", d.p50}, {"p99", d.p99}, {"max", d.max}};
}

}  // namespace

Distribution Distribution::of(std::vector<double> values) {
  Distribution d;
  if (values.empty()) return d;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  d.mean = sum / static_cast<double>(values.size());
  d.p50 = percentile(values, 0.50);
  d.p99 = percentile(values, 0.99);
  d.max = values.back();
  return d;
}

PlanReport run_plans(RecordStream& in, const PlanRunConfig& config) {
  const TraceManifest& manifest = in.manifest();
  const ClusterShape& shape = config.shape;
  shape.validate("--ranks/--slots/--domain");
  if (manifest.num_experts != shape.num_experts())
    throw InputError("--ranks", "experts",
                     "trace has " + std::to_string(manifest.num_experts) + " experts, the shape needs " +
                         std::to_string(shape.num_experts()));
  if (manifest.num_ranks != shape.num_ranks * config.merge_sources)
    throw InputError("--ranks", "ranks",
                     "the trace has " + std::to_string(manifest.num_ranks) +
                         " source ranks; replaying it at EP " + std::to_string(shape.num_ranks) +
                         " needs a trace recorded at a multiple of that EP size");
  // One StepDriver per balancer (core/step_driver.hpp): plan, legality, resident replicas, weight_sync.
  // A balancer that refuses the shape becomes a row saying why; the others run.
  std::vector<std::unique_ptr<StepDriver>> drivers;
  std::vector<std::string> refused;
  for (const auto& name : config.balancers) {
    StepDriverConfig dc;
    dc.shape = shape;
    dc.balancer = name;
    dc.options = config.options;
    dc.expert = config.expert;
    dc.weight_sync = config.weight_sync;
    dc.training = false;
    dc.check_legality = config.check_legality;
    try {
      drivers.push_back(std::make_unique<StepDriver>(dc));
      refused.emplace_back();
    } catch (const InputError& e) {
      drivers.push_back(nullptr);
      refused.push_back(e.what());
    }
  }
  std::vector<Samples> samples(drivers.size());

  PlanReport report;
  report.manifest = manifest;
  report.shape = shape;
  report.expert = config.expert;
  report.model = config.model;
  report.model_source = config.model_source;
  report.config = config.config;
  TraceRecord record;
  LoadMatrix merged;
  while ((config.max_records == 0 || report.records < config.max_records) && in.next(record)) {
    const LoadMatrix* loads = &record.loads;
    if (config.merge_sources > 1) {
      merge_sources(record.loads, config.merge_sources, merged);
      loads = &merged;
    }
    const double tokens = static_cast<double>(std::max<int64_t>(loads->total(), 1));
    for (size_t b = 0; b < drivers.size(); ++b) {
      if (!drivers[b]) continue;
      const StepRecord& step = drivers[b]->step(*loads, record.layer, record.microbatch);
      const PlanMetrics& m = step.metrics;
      Samples& s = samples[b];
      s.before.push_back(m.imbalance_before);
      s.after.push_back(m.imbalance_after);
      s.lb.push_back(m.domain_lower_bound);
      s.replicas.push_back(static_cast<double>(m.total_replicas));
      s.slots.push_back(static_cast<double>(m.used_redundant_slots));
      s.remote.push_back(static_cast<double>(m.remote_tokens) / tokens);
      s.max_instances = std::max(s.max_instances, m.max_instances);
      s.us.push_back(1e6 * step.planner_s);
      s.ws_direct.push_back(
          static_cast<double>(busiest(drivers[b]->weight_sync_in_mode(WeightSyncMode::kDirect))));
      s.ws_relay.push_back(static_cast<double>(step.weight_sync ? busiest(*step.weight_sync) : 0));
    }
    report.record_layer.push_back(record.layer);
    report.record_microbatch.push_back(record.microbatch);
    ++report.records;
  }
  for (size_t b = 0; b < drivers.size(); ++b) {
    Samples& s = samples[b];
    BalancerReport br;
    br.name = drivers[b] ? drivers[b]->name() : config.balancers[b];
    br.refused = refused[b];
    br.imbalance_before = Distribution::of(s.before);
    br.imbalance_after = Distribution::of(s.after);
    br.domain_lower_bound = Distribution::of(s.lb);
    br.max_instances = s.max_instances;
    br.replicas = Distribution::of(s.replicas);
    br.redundant_slots_used = Distribution::of(s.slots);
    br.remote_token_share = Distribution::of(s.remote);
    br.ws_busiest_direct_bytes = Distribution::of(s.ws_direct);
    br.ws_busiest_relay_bytes = Distribution::of(s.ws_relay);
    br.planner_us = Distribution::of(s.us);
    br.per_record_before = std::move(s.before);
    br.per_record_after = std::move(s.after);
    br.per_record_replicas = std::move(s.replicas);
    report.balancers.push_back(std::move(br));
  }
  return report;
}

void print_plan_report(const PlanReport& r, std::ostream& out, bool with_timing) {
  char line[1024];
  const ClusterShape& sh = r.shape;
  std::snprintf(
      line, sizeof line,
      "trace: %s | %lld records | EP %d (N), %d experts (L), %d masters + %d redundant slots per rank, "
      "NVLink domain %d | expert %lldx%lld of %s (%s), B_w %.1f MiB\n",
      r.manifest.model.c_str(), static_cast<long long>(r.records), sh.num_ranks, sh.num_experts(),
      sh.num_masters, sh.num_redundant, sh.domain_size, static_cast<long long>(r.expert.hidden),
      static_cast<long long>(r.expert.ffn), r.model.c_str(), r.model_source.c_str(),
      static_cast<double>(r.expert.weight_bytes()) / (1 << 20));
  out << line << "\n";
  out << "Balance (imbalance = max/mean tokens per rank, over records)\n";
  std::snprintf(line, sizeof line, "%-15s %29s   %29s   %8s\n", "balancer", "before: mean   p50   p99   max",
                "after: mean   p50   p99   max", "LB mean");
  out << line;
  for (const auto& b : r.balancers) {
    if (!b.refused.empty()) {
      out << refused_line(b);
      continue;
    }
    std::snprintf(line, sizeof line, "%-15s %12.3f %5.3f %5.3f %5.3f   %11.3f %5.3f %5.3f %5.3f   %8.3f\n",
                  b.name.c_str(), b.imbalance_before.mean, b.imbalance_before.p50, b.imbalance_before.p99,
                  b.imbalance_before.max, b.imbalance_after.mean, b.imbalance_after.p50,
                  b.imbalance_after.p99, b.imbalance_after.max, b.domain_lower_bound.mean);
    out << line;
  }
  out << "\nCost (per plan; weight_sync = bytes on the busiest rank, mean over records)\n";
  std::snprintf(line, sizeof line, "%-15s %8s %9s %7s %8s %12s %12s%s\n", "balancer", "max inst", "replicas",
                "slots", "remote", "ws direct", "ws relay", with_timing ? "   plan us p50    p99" : "");
  out << line;
  for (const auto& b : r.balancers) {
    if (!b.refused.empty()) {
      out << refused_line(b);
      continue;
    }
    char timing[64] = "";
    if (with_timing)
      std::snprintf(timing, sizeof timing, " %13.1f %6.1f", b.planner_us.p50, b.planner_us.p99);
    std::snprintf(line, sizeof line, "%-15s %8d %9.1f %7.1f %7.1f%% %8.1f MiB %8.1f MiB%s\n", b.name.c_str(),
                  b.max_instances, b.replicas.mean, b.redundant_slots_used.mean,
                  100.0 * b.remote_token_share.mean, b.ws_busiest_direct_bytes.mean / (1 << 20),
                  b.ws_busiest_relay_bytes.mean / (1 << 20), timing);
    out << line;
  }
}

nlohmann::ordered_json plan_report_json(const PlanReport& r, bool with_timing, bool per_record) {
  nlohmann::ordered_json j;
  j["trace"] = {{"model", r.manifest.model}, {"records", r.records}, {"top_k", r.manifest.top_k}};
  j["shape"] = {{"ranks", r.shape.num_ranks},
                {"experts", r.shape.num_experts()},
                {"masters_per_rank", r.shape.num_masters},
                {"redundant_slots_per_rank", r.shape.num_redundant},
                {"domain_size", r.shape.domain_size}};
  j["expert"] = {{"hidden", r.expert.hidden},
                 {"ffn", r.expert.ffn},
                 {"weight_bytes", r.expert.weight_bytes()},
                 {"model", r.model},
                 {"model_source", r.model_source}};
  nlohmann::ordered_json bs = nlohmann::ordered_json::array();
  for (const auto& b : r.balancers) {
    nlohmann::ordered_json o;
    o["name"] = b.name;
    if (!b.refused.empty()) {
      o["refused"] = b.refused;
      bs.push_back(std::move(o));
      continue;
    }
    o["imbalance_before"] = dist_json(b.imbalance_before);
    o["imbalance_after"] = dist_json(b.imbalance_after);
    o["domain_lower_bound"] = dist_json(b.domain_lower_bound);
    o["max_instances_per_expert"] = b.max_instances;
    o["replicas"] = dist_json(b.replicas);
    o["redundant_slots_used"] = dist_json(b.redundant_slots_used);
    o["remote_token_share"] = dist_json(b.remote_token_share);
    o["weight_sync_busiest_rank_bytes_direct"] = dist_json(b.ws_busiest_direct_bytes);
    o["weight_sync_busiest_rank_bytes_relay"] = dist_json(b.ws_busiest_relay_bytes);
    if (with_timing) o["planner_us"] = dist_json(b.planner_us);
    if (per_record)
      o["per_record"] = {{"imbalance_before", b.per_record_before},
                         {"imbalance_after", b.per_record_after},
                         {"replicas", b.per_record_replicas}};
    bs.push_back(std::move(o));
  }
  if (per_record) j["records"] = {{"layer", r.record_layer}, {"microbatch", r.record_microbatch}};
  j["balancers"] = std::move(bs);
  j["config"] = r.config;  // re-run with --config
  return j;
}

void print_plan_report_json(const PlanReport& r, std::ostream& out, bool with_timing) {
  out << plan_report_json(r, with_timing, false).dump(2) << "\n";
}

}  // namespace rackep::tools
