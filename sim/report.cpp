#include "sim/report.hpp"

#include "sim/step_graph.hpp"

#include <cstdio>
#include <sstream>

namespace rackep::sim {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string pad(const std::string& s, size_t w, bool left = false) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

}  // namespace

std::string format_table(const SimReport& r) {
  const nlohmann::json& in = r.inputs;
  const bool prefill = in["mode"] == "prefill";
  std::ostringstream o;
  o << in["model"].get<std::string>() << " " << in["mode"].get<std::string>() << " on "
    << in["topology"].get<std::string>() << " (" << in["gpu"].get<std::string>() << "), EP "
    << in["ep_ranks"].get<int>() << ", " << in["experts"].get<int>() << " experts ("
    << in["masters_per_rank"].get<int>() << " per rank + " << in["redundant_slots_per_rank"].get<int>()
    << " redundant slots), NVLink domain " << in["domain_size"].get<int>() << "\n";
  o << "trace: " << in["trace_description"].get<std::string>() << "\n";
  o << in["microbatches"].get<int64_t>() << (prefill ? " prefill passes" : " microbatches") << " x "
    << in["moe_layers"].get<int>() << " MoE layers (+" << in["dense_layers"].get<int>() << " dense), "
    << in["tokens_per_rank"].get<int64_t>() << " tokens per rank, seq " << in["seq_len"].get<int>() << ", "
    << in["precision"].get<std::string>() << (in["recompute"].get<bool>() ? ", full recompute" : "")
    << ", fidelity " << in["fidelity"].get<std::string>() << ", schedule "
    << in["schedule"].get<std::string>()
    << (in["pp"].get<int>() > 1 ? ", PP " + std::to_string(in["pp"].get<int>()) : std::string()) << "\n";
  for (const auto& note : in["notes"]) o << "note: " << note.get<std::string>() << "\n";
  bool host = false;
  for (const BalancerSummary& b : r.balancers) host = host || b.host_planner_us >= 0.0;
  const std::vector<std::pair<std::string, size_t>> cols = {
      {"balancer", 15}, {"imbalance", 10},   {prefill ? "prefill ms" : "step ms", 11},
      {"tokens/s", 11}, {"TFLOPS/GPU", 11},  {"% ideal", 8},
      {"vs none", 8},   {"overhead ms", 12}, {"replicas", 9},
      {"act GiB", 8},   {"slots GiB", 10},   {"mem GiB", 9}};
  std::string header;
  for (size_t i = 0; i < cols.size(); ++i) header += pad(cols[i].first, cols[i].second, i == 0);
  if (host) header += pad("host plan us", 13);
  o << "\n" << header << "\n" << std::string(header.size(), '-') << "\n";
  for (const BalancerSummary& b : r.balancers) {
    std::string line = pad(b.name, 15, true);
    if (!b.refused.empty()) {
      o << line << " refused: " << b.refused << "\n";
      continue;
    }
    line += pad(fmt("%.3f", b.imbalance), 10);
    line += pad(fmt("%.3f", b.step_s * 1e3), 11);
    line += pad(fmt("%.0f", b.tokens_per_s), 11);
    line += pad(fmt("%.1f", b.tflops_per_gpu), 11);
    line += pad(fmt("%.1f", b.pct_of_ideal), 8);
    line += pad(fmt("%.3fx", b.speedup_vs_none), 8);
    line += pad(fmt("%.3f", b.exposed_overhead_s * 1e3), 12);
    line += pad(fmt("%.1f", b.replicas), 9);
    line += pad(fmt("%.2f", b.peak_activation_gib), 8);
    line += pad(fmt("%.2f", b.redundant_slot_gib), 10);
    line += pad(b.oom ? "OOM " + fmt("%.0f", b.memory_gib) : fmt("%.1f", b.memory_gib), 9);
    if (host) line += pad(b.host_planner_us >= 0.0 ? fmt("%.1f", b.host_planner_us) : "-", 13);
    o << line << "\n";
  }
  return o.str();
}

std::string column_legend(bool prefill) {
  std::ostringstream o;
  o << "imbalance    mean over (layer, microbatch) of max/mean tokens per rank after balancing\n"
    << (prefill
            ? "prefill ms   mean simulated latency of one prefill pass (all MoE and dense layers)\n"
            : "step ms      simulated time of one training step (all microbatches, forward and backward)\n")
    << "tokens/s     tokens processed per second over all EP ranks\n"
    << "TFLOPS/GPU   model FLOPs (attention, router, shared and routed experts, dense layers, LM head; x3 "
       "for "
       "training; recompute not counted) per second per GPU\n"
    << "% ideal      throughput as a share of the force-balanced ideal (tokens spread uniformly over "
       "experts)\n"
    << "vs none      speed-up over no balancing\n"
    << "overhead ms  balancing time not hidden under other work, per " << (prefill ? "pass" : "step")
    << " (load gather, planning, reroute, weight_sync, restore, grad_reduce, placement updates), busiest "
       "rank\n"
    << "replicas     mean replicas (instances beyond one per expert) per (layer, microbatch)\n"
    << "act GiB      peak activation memory of the busiest rank\n"
    << "slots GiB    extra memory per rank of the redundant slots (weights, + fp32 gradients in training)\n"
    << "mem GiB      peak memory per rank of the simulated stage: weights (+ gradients and Adam state in "
       "training, the Adam state sharded over data parallelism with --zero 1), activations in flight, "
       "redundant slots; OOM when it exceeds the GPU's memory\n";
  return o.str();
}

nlohmann::json report_to_json(const SimReport& r) {
  nlohmann::json bs = nlohmann::json::array();
  for (const BalancerSummary& b : r.balancers) {
    if (!b.refused.empty()) {
      bs.push_back({{"name", b.name}, {"refused", b.refused}});
      continue;
    }
    nlohmann::json j = {{"name", b.name},
                        {"imbalance", b.imbalance},
                        {"imbalance_before", b.imbalance_before},
                        {"max_imbalance", b.max_imbalance},
                        {"step_s", b.step_s},
                        {"total_s", b.total_s},
                        {"tokens_per_s", b.tokens_per_s},
                        {"tflops_per_gpu", b.tflops_per_gpu},
                        {"pct_of_ideal", b.pct_of_ideal},
                        {"speedup_vs_none", b.speedup_vs_none},
                        {"exposed_overhead_s", b.exposed_overhead_s},

                        {"replicas", b.replicas},
                        {"weight_sync_gib", b.weight_sync_gib},
                        {"peak_activation_gib", b.peak_activation_gib},
                        {"redundant_slot_gib", b.redundant_slot_gib},
                        {"memory_gib", b.memory_gib},
                        {"oom", b.oom},
                        {"pipeline_bubble_s", b.pipeline_bubble_s},
                        {"compute_busy_s", b.compute_busy_s},
                        {"comm_busy_s", b.comm_busy_s},
                        {"overlapped_s", b.overlapped_s},
                        {"phases_mean_s", b.phases}};
    if (b.host_planner_us >= 0.0) j["host_planner_us"] = b.host_planner_us;
    bs.push_back(j);
  }
  return {{"inputs", r.inputs}, {"global_tokens_per_step", r.global_tokens_per_step}, {"balancers", bs}};
}

ChromeTraceWriter::ChromeTraceWriter(std::ostream& out) : out_(out) {
  out_ << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
}

void ChromeTraceWriter::separator() {
  if (!first_) out_ << ",\n";
  first_ = false;
}

void ChromeTraceWriter::begin_process(const std::string& name, int index) {
  pid_ = index + 1;
  separator();
  out_ << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << pid_ << ",\"args\":{\"name\":\"" << name
       << "\"}}";
  separator();
  out_ << "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":" << pid_
       << ",\"args\":{\"sort_index\":" << pid_ << "}}";
  named_.clear();
}

void ChromeTraceWriter::on_event(const TimelineEvent& e) {
  const int tid = kNumStreams * e.rank + e.lane;
  if (static_cast<size_t>(tid) >= named_.size()) named_.resize(tid + 1, false);
  if (!named_[tid]) {
    named_[tid] = true;
    separator();
    out_ << "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":" << pid_ << ",\"tid\":" << tid
         << ",\"args\":{\"name\":\"rank " << e.rank << " " << stream_name(e.lane) << "\"}}";
    separator();
    out_ << "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":" << pid_ << ",\"tid\":" << tid
         << ",\"args\":{\"sort_index\":" << tid << "}}";
  }
  char buf[320];
  std::snprintf(
      buf, sizeof(buf),
      "{\"ph\":\"X\",\"name\":\"%s\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"layer\":%d,"
      "\"microbatch\":%lld,\"sms\":%d}}",
      e.name, pid_, tid, e.start_s * 1e6, (e.end_s - e.start_s) * 1e6, e.layer,
      static_cast<long long>(e.microbatch), e.sms);
  separator();
  out_ << buf;
}

void ChromeTraceWriter::finish() {
  out_ << "\n]}\n";
}

}  // namespace rackep::sim
