#include "sim/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "core/error.hpp"
#include "core/progress.hpp"
#include "sim/trace_source.hpp"
#include "traces/esft.hpp"

namespace rackep::sim {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct Loaded {
  ModelConfig model;
  Topology topology;
  Calibration calibration;
};

Loaded load_inputs(const SimConfig& c) {
  Loaded in;
  in.model = load_model(resolve_data_file(c.model, "configs/models", "--model"));
  in.topology = load_topology(resolve_data_file(c.topology, "topologies", "--topology"));
  in.calibration = load_calibration(resolve_data_file(c.calibration, "configs/calibration", "--calibration"));
  return in;
}

bool generated_trace(const std::string& t) {
  return t.rfind("esft:", 0) == 0 || t.rfind("synthetic:", 0) == 0;
}

Fabric build_fabric(const SimConfig& c, const Topology& t, const Calibration& cal, int n) {
  const ArchEfficiency& a = cal.arch(t.gpu.arch);
  return make_fabric(t, {n, c.domain, a.scale_up_efficiency.value, a.scale_out_efficiency.value});
}

EngineConfig engine_config(const SimConfig& c, const Fabric& fabric, const GpuSpec& gpu) {
  return {c.fidelity, fabric, static_cast<int>(gpu.num_sms.value), c.pp > 1,
          c.ptask_compress && c.fidelity == Fidelity::kPtask};
}

// Time covered by the union of intervals.
double union_length(std::vector<std::pair<double, double>>& v) {
  std::sort(v.begin(), v.end());
  double total = 0.0, s = -1.0, e = -1.0;
  for (const auto& [a, b] : v) {
    if (a > e) {
      total += e - s;
      s = a;
      e = b;
    } else {
      e = std::max(e, b);
    }
  }
  return total + (e - s);
}

// Mixed-precision Adam per parameter (ZeRO paper, Rajbhandari et al. 2020, §3.1): BF16 weight and gradient
// (2 + 2 bytes) on every rank holding the parameter, FP32 master weight, momentum and variance (12 bytes)
// divided over the data-parallel group under ZeRO stage 1 (§5.1, "P_os": 4 + 12 / N_d).
constexpr double kWeightGradBytesPerParam = 4.0;
constexpr double kOptimizerStateBytesPerParam = 12.0;

}  // namespace

nlohmann::json describe_platform(const SimConfig& c) {
  const Loaded in = load_inputs(c);
  const int n = c.ranks > 0 ? c.ranks : static_cast<int>(in.topology.num_gpus.value);
  const Fabric fabric = build_fabric(c, in.topology, in.calibration, n);
  StepEngine engine(engine_config(c, fabric, in.topology.gpu));
  return {{"topology", topology_to_json(in.topology)},
          {"topology_file", in.topology.file},
          {"built", engine.describe()}};
}

SimReport run_simulation(const SimConfig& c, const SimHooks& hooks) {
  const Loaded in = load_inputs(c);
  const ModelConfig& model = in.model;
  const Calibration& cal = in.calibration;
  if (c.slots < 0) throw InputError("--slots", std::to_string(c.slots), "must be >= 0");
  if (c.balancers.empty()) throw InputError("--balancers", "", "name at least one balancer");

  TraceSpec spec;
  // No trace given: the shipped ESFT routing when the model has its experts (DeepSeek-V2-Lite's 64), else
  // synthetic Zipf routing for the model's experts.
  const std::string trace = !c.trace.empty() ? c.trace
                            : model.num_experts == EsftOptions{}.num_experts
                                ? "esft:intent,summary,translation"
                                : "synthetic:zipf";
  spec.text = trace;
  spec.num_ranks = c.ranks > 0 ? c.ranks : (generated_trace(trace) ? 32 : 0);
  spec.num_experts = model.num_experts;
  spec.top_k = model.top_k;
  // With PP the simulated stage replays only its share of the MoE layers (see stage_moe below).
  spec.num_layers =
      c.pp > 1
          ? std::max(1, static_cast<int>(std::lround(static_cast<double>(model.num_moe_layers()) / c.pp)))
          : model.num_moe_layers();
  spec.tokens_per_rank = c.tokens_per_rank;
  spec.microbatches = c.microbatches;
  spec.imbalance = c.imbalance;
  spec.seed = c.seed;
  spec.seq_len = c.seq_len;
  // The ESFT composer's pass count follows from these three options: name them, not the derived count.
  std::unique_ptr<TraceSource> source_ptr;
  try {
    source_ptr = std::make_unique<TraceSource>(spec);
  } catch (const InputError& e) {
    if (e.source() != "--passes") throw;
    throw InputError("--microbatches/--tokens-per-rank/--ranks", trace,
                     "microbatches x ranks x tokens per rank need more than 100000 shuffled passes over "
                     "the shipped ESFT data: ask for fewer tokens");
  }
  TraceSource& source = *source_ptr;
  const TraceManifest& man = source.manifest();
  const int n = man.num_ranks;
  const int trace_layers = static_cast<int>(man.layers.size());
  const int64_t trace_mbs = man.num_records / trace_layers;
  const int64_t num_mbs = c.microbatches > 0 ? std::min(c.microbatches, trace_mbs) : trace_mbs;
  if (num_mbs <= 0) throw InputError("--trace", trace, "holds no complete microbatch");
  const int num_moe = model.num_moe_layers();

  SimReport report;
  nlohmann::json notes = nlohmann::json::array();
  const int replayed = spec.num_layers;  // the stage's MoE layers
  if (trace_layers < replayed) {
    notes.push_back("the trace has " + std::to_string(trace_layers) + " layers and the stage " +
                    std::to_string(replayed) + " MoE layers: MoE layer i replays trace layer i mod " +
                    std::to_string(trace_layers));
  } else if (trace_layers > replayed) {
    notes.push_back("the trace has " + std::to_string(trace_layers) + " layers; only the first " +
                    std::to_string(replayed) + " are replayed");
  }
  const bool train = c.mode == Mode::kTrain;
  const Schedule schedule = parse_schedule(
      c.schedule.empty() ? (c.mode == Mode::kTrain ? "dualpipe" : "two-batch") : c.schedule, c.mode, c.pp);
  const bool halves = schedule == Schedule::kTwoBatch;
  const Precision bwd_comm = c.backward_comm_precision.empty()
                                 ? c.precision
                                 : parse_precision(c.backward_comm_precision, "--backward-comm-precision");
  const Fabric fabric = build_fabric(c, in.topology, cal, n);
  const ClusterShape shape = ClusterShape::from_experts(n, model.num_experts, c.slots, fabric.domain_size,
                                                        "--ranks/--slots/--domain");
  const CostModel cost(model, in.topology.gpu, cal, c.precision, bwd_comm);
  // With PP the simulated EP group is one middle stage: its share of the MoE layers, no dense layers, no
  // LM head.
  const int stage_moe = spec.num_layers;
  const int stage_dense = c.pp > 1 ? 0 : model.num_dense_layers;
  if (c.pp > 1) {
    notes.push_back("pipeline stage of " + std::to_string(stage_moe) + " MoE layers (" +
                    std::to_string(num_moe) + " / " + std::to_string(c.pp) +
                    " stages); dense layers and LM head sit on other stages");
  }
  if (halves) notes.push_back("two-batch: every pass is split into two half microbatches that overlap");

  // Every requested balancer, plus the two references.
  std::vector<std::string> names = c.balancers;
  for (const char* ref : {"none", "ideal"}) {
    if (std::find(names.begin(), names.end(), ref) == names.end()) names.push_back(ref);
  }
  WorkloadContext ctx;
  ctx.model = &model;
  ctx.cost = &cost;
  ctx.calibration = &cal;
  ctx.fabric = &fabric;
  ctx.options.mode = c.mode;
  ctx.options.recompute = c.recompute;
  ctx.options.dedup = c.dedup;
  ctx.options.compress = c.ptask_compress && c.fidelity == Fidelity::kPtask;
  ctx.options.measure_host_planner = c.measure_host_planner;
  ctx.options.weight_sync.mode = parse_weight_sync_mode(c.weight_sync_mode, "--weight-sync");
  ctx.options.check_plans = c.check_plans;
  const int64_t graph_mbs = halves ? 2 * num_mbs : num_mbs;
  // A balancer that refuses the shape or its options (at construction or on a record) becomes a row saying
  // why; the others run. none and ideal never refuse.
  const std::vector<std::string> known = balancer_names();
  for (const std::string& name : names)  // an unknown name is bad input, not a refusal
    if (std::find(known.begin(), known.end(), name) == known.end())
      make_balancer(name, shape, c.balancer_options);
  std::vector<std::unique_ptr<BalancerRun>> runs;
  std::vector<std::string> refused(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    try {
      runs.push_back(
          std::make_unique<BalancerRun>(names[i], shape, c.balancer_options, ctx, stage_moe, graph_mbs));
    } catch (const InputError& e) {
      runs.push_back(nullptr);
      refused[i] = e.what();
    }
  }

  // Replay: buffer one microbatch of records, then hand every MoE layer of the stage to every balancer.
  std::vector<DenseWork> dense(graph_mbs);
  double global_tokens = 0.0;
  double dense_flops = 0.0;
  {
    Progress progress("simulate", num_mbs, "microbatches");  // stderr, terminals only (core/progress.hpp)
    std::vector<LoadMatrix> buffer(trace_layers);
    int filled = 0;
    int64_t mb = 0;
    TraceRecord rec;
    while (mb < num_mbs && source.stream().next(rec)) {
      const int pos = man.layer_position(rec.layer);
      buffer[pos] = rec.loads;
      if (++filled < trace_layers) continue;
      filled = 0;
      const int parts = halves ? 2 : 1;
      for (int part = 0; part < parts; ++part) {
        const int64_t g = halves ? 2 * mb + part : mb;
        // Two-batch halves: each count split in two (the first half takes the odd token).
        std::vector<LoadMatrix> loads(trace_layers);
        for (int l = 0; l < trace_layers; ++l) {
          loads[l] = buffer[l];
          if (!halves) continue;
          for (int32_t& x : loads[l].values()) x = part == 0 ? x - x / 2 : x / 2;
        }
        MicrobatchInputs inputs;
        const std::vector<int64_t> pairs = loads[0].source_totals();
        DenseWork& d = dense[g];
        for (int r = 0; r < n; ++r) {
          const double tokens = static_cast<double>(pairs[r]) / model.top_k;
          const double full_keys = source.attended_keys(rec.microbatch, r, tokens * parts, 0) / parts;
          inputs.tokens.push_back(tokens);
          inputs.keys_full.push_back(full_keys);
          inputs.keys_window.push_back(
              model.attention.sliding_window > 0
                  ? source.attended_keys(rec.microbatch, r, tokens * parts, model.attention.sliding_window) /
                        parts
                  : full_keys);
          const DenseLayerCompute dc = cost.dense_layer(tokens, full_keys, train);
          d.attention.push_back(dc.attention);
          d.ffn.push_back(dc.ffn);
          d.attention_bwd.push_back(dc.attention_bwd);
          d.ffn_bwd.push_back(dc.ffn_bwd);
          const double lm = c.pp > 1 ? 0.0 : cost.lm_head_forward_s(tokens);
          d.lm_head.push_back(lm);
          d.lm_head_bwd.push_back(train ? 2.0 * lm : 0.0);
          d.working_bytes.push_back(cost.dense_layer_saved_bytes(tokens));
          d.saved_bytes.push_back(c.recompute ? cost.recompute_saved_bytes(tokens) : d.working_bytes.back());
          d.tokens.push_back(tokens);
          global_tokens += tokens;
          const double f =
              stage_dense *
                  ((model.attention_projection_flops_per_token() + model.dense_ffn_flops_per_token()) *
                       tokens +
                   model.attention_core_flops_per_key() * full_keys) +
              (c.pp > 1 ? 0.0 : model.lm_head_flops_per_token() * tokens);
          dense_flops += train ? 3.0 * f : f;
        }
        for (int layer = 0; layer < stage_moe; ++layer) {
          const LoadMatrix& l = loads[layer % trace_layers];
          for (size_t i = 0; i < runs.size(); ++i) {
            if (!runs[i]) continue;
            try {
              runs[i]->process(layer, g, l, inputs);
            } catch (const InputError& e) {
              runs[i].reset();
              refused[i] = e.what();
            }
          }
        }
      }
      ++mb;
      progress.add();
    }
    RACKEP_CHECK(mb == num_mbs, "trace ended before its manifest's record count");
    progress.finish();
  }

  ScheduleParams sp;
  sp.mode = c.mode;
  sp.schedule = schedule;
  sp.pp = c.pp;
  sp.recompute = c.recompute && train;
  sp.num_dense_layers = stage_dense;
  sp.first_decoder_layer = stage_dense;
  sp.lm_head = c.pp == 1;
  sp.all_to_all_launch_s = cal.all_to_all_launch_s.value;
  sp.allgather_launch_s = cal.allgather_launch_s.value;
  sp.weight_sync_launch_s = cal.weight_sync_launch_s.value;
  sp.sms_all_to_all = static_cast<int>(cal.comm_sms.all_to_all.value);
  sp.sms_weight_sync = static_cast<int>(cal.comm_sms.weight_sync.value);
  sp.sms_grad_reduce = static_cast<int>(cal.comm_sms.grad_reduce.value);
  sp.sms_allgather = static_cast<int>(cal.comm_sms.load_allgather.value);
  sp.sms_pp = static_cast<int>(cal.comm_sms.pp_send.value);
  sp.dispatch_bytes = cost.dispatch_bytes_per_token();
  sp.combine_bytes = cost.combine_bytes_per_token();
  sp.combine_bwd_bytes = cost.combine_bwd_bytes_per_token();
  sp.dispatch_bwd_bytes = cost.dispatch_bwd_bytes_per_token();
  sp.pp_bytes_per_token = 2.0 * model.hidden;

  StepEngine engine(engine_config(c, fabric, in.topology.gpu));
  struct Outcome {
    double total_s = 0.0, bubble_s = 0.0, compute_busy = 0.0, comm_busy = 0.0, overlapped = 0.0;
    double exposed = 0.0;
    double peak_activation = 0.0;
    nlohmann::json phases;
  };
  std::vector<Outcome> outcomes(runs.size());
  const double per = train ? 1.0 : static_cast<double>(num_mbs);
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!runs[i]) continue;
    if (hooks.on_balancer) hooks.on_balancer(runs[i]->name(), static_cast<int>(i));
    const StepPlan plan = build_step_graph(runs[i]->work(), dense, sp);
    const StepResult res = engine.run(plan.graph);
    const StepGraph& g = plan.graph;
    Outcome o;
    // Per phase: mean over occurrences of the mean over ranks of the operation's duration.
    std::map<std::string, std::pair<double, int64_t>> phase_sum;
    std::vector<std::vector<std::pair<double, double>>> comp(n), comm(n), bal(n), useful(n);
    for (size_t id = 0; id < g.ops().size(); ++id) {
      const Op& op = g.ops()[id];
      double mean = 0.0;
      for (int r = 0; r < n; ++r) {
        const double a = res.start[id * n + r], b = res.end[id * n + r];
        mean += b - a;
        if (b <= a) continue;
        (phase_is_comm(op.phase) ? comm : comp)[r].emplace_back(a, b);
        (phase_is_balancing(op.phase) ? bal : useful)[r].emplace_back(a, b);
      }
      std::string key = std::string(phase_name(op.phase)) + (op.recompute ? " (recompute)" : "");
      auto& ps = phase_sum[key];
      ps.first += mean / n;
      ps.second += 1;
      if (hooks.timeline != nullptr) {
        const int sms = op.collective >= 0 ? g.collectives()[op.collective].sms : 0;
        for (int r = 0; r < n; ++r) {
          const double a = res.start[id * n + r], b = res.end[id * n + r];
          if (b > a)
            hooks.timeline->on_event({r, op.stream, phase_name(op.phase), a, b, op.layer, op.mb, sms});
        }
      }
    }
    for (int r = 0; r < n; ++r) {
      const double cb = union_length(comp[r]), mb_ = union_length(comm[r]);
      std::vector<std::pair<double, double>> all = comp[r];
      all.insert(all.end(), comm[r].begin(), comm[r].end());
      const double u = union_length(all);
      o.compute_busy += cb / n;
      o.comm_busy += mb_ / n;
      o.overlapped += (cb + mb_ - u) / n;
      // Balancing time not hidden by useful work on this rank.
      std::vector<std::pair<double, double>> both = bal[r];
      both.insert(both.end(), useful[r].begin(), useful[r].end());
      o.exposed = std::max(o.exposed, union_length(both) - union_length(useful[r]));
    }
    for (const auto& [key, v] : phase_sum) o.phases[key] = v.first / v.second;
    // Pipeline bubble from the simulated chunk times (DualPipe README: 1F1B (P-1)(F+B); DualPipe
    // (P/2-1)(F&B + B - 3W)).
    if (train && c.pp > 1) {
      // Span of every chunk over all ranks, by (backward, microbatch).
      std::map<std::pair<bool, int>, std::pair<double, double>> span;
      for (const Chunk& ch : plan.chunks) {
        double s = 1e300, e = 0.0;
        for (int r = 0; r < n; ++r) {
          s = std::min(s, res.start[static_cast<size_t>(ch.first) * n + r]);
          e = std::max(e, res.end[static_cast<size_t>(ch.last) * n + r]);
        }
        span[{ch.backward, ch.mb}] = {s, e};
      }
      auto length = [&](bool bwd, int mb) { return span[{bwd, mb}].second - span[{bwd, mb}].first; };
      const int m = static_cast<int>(graph_mbs);
      if (schedule == Schedule::kDualPipe) {
        // F&B: an overlapped pair; B: the last backward chunk, which runs alone; W: its wgrad.
        double fb = 0.0;
        for (int k = 1; k < m; ++k) {
          fb += std::max(span[{false, k}].second, span[{true, k - 1}].second) -
                std::min(span[{false, k}].first, span[{true, k - 1}].first);
        }
        fb = m > 1 ? fb / (m - 1) : length(false, 0) + length(true, 0);
        const double b_alone = length(true, m - 1);
        double w = 0.0;
        const auto it = phase_sum.find("experts_wgrad");
        if (it != phase_sum.end()) w = it->second.first / it->second.second * stage_moe;
        o.bubble_s = std::max(0.0, (c.pp / 2.0 - 1.0) * (fb + b_alone - 3.0 * w));
      } else {
        double f = 0.0, bw = 0.0;
        for (int k = 0; k < m; ++k) {
          f += length(false, k) / m;
          bw += length(true, k) / m;
        }
        o.bubble_s = (c.pp - 1.0) * (f + bw);
      }
    }
    o.total_s = res.span_s + o.bubble_s;
    // Activations in flight on the stage: sequential one microbatch (GPipe with PP: all), 1F1B P,
    // DualPipe P + 1 (DualPipe README), prefill the passes that run at once.
    double max_saved = 0.0, max_working = 0.0;
    for (size_t mb = 0; mb < plan.chunks.size() && mb < static_cast<size_t>(graph_mbs); ++mb) {
      for (int r = 0; r < n; ++r) {
        double saved = stage_dense * dense[mb].saved_bytes[r], working = dense[mb].working_bytes[r];
        for (const LayerWork& w : runs[i]->work()[mb]) {
          saved += w.saved_bytes[r];
          working = std::max(working, w.working_bytes[r]);
        }
        max_saved = std::max(max_saved, saved);
        max_working = std::max(max_working, working);
      }
    }
    double in_flight = 1.0;
    if (train) {
      if (schedule == Schedule::k1F1B) in_flight = std::min<double>(c.pp, num_mbs);
      if (schedule == Schedule::kDualPipe) in_flight = std::min<double>(c.pp + 1, num_mbs);
      if (schedule == Schedule::kSequential && c.pp > 1) in_flight = static_cast<double>(num_mbs);
      o.peak_activation = in_flight * max_saved + (c.recompute ? max_working : 0.0);
    } else {
      o.peak_activation = (halves ? 2.0 : 1.0) * max_working;
    }
    o.exposed /= per;
    outcomes[i] = o;
  }
  auto index_of = [&](const std::string& name) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  const double none_s = outcomes[index_of("none")].total_s;
  const double ideal_s = outcomes[index_of("ideal")].total_s;
  // Parameters of the stage per rank: attention, router, shared experts and dense layers replicated on every
  // EP rank (their data-parallel group is EP x DP), the rank's master experts of every MoE layer (replicated
  // only over DP); DualPipe holds a second stage's copy (DualPipe README).
  const double h = model.hidden;
  const double attn_params = model.attention_projection_flops_per_token() / 2.0;
  const double expert_params = 3.0 * h * model.expert_ffn;
  double replicated_params = stage_moe * (attn_params + model.router_flops_per_token() / 2.0 +
                                          model.num_shared_experts * expert_params) +
                             stage_dense * (attn_params + 3.0 * h * model.dense_ffn);
  if (c.pp == 1) replicated_params += 2.0 * h * model.vocab;  // embedding and LM head
  double expert_stage_params = stage_moe * shape.num_masters * expert_params;
  if (train && schedule == Schedule::kDualPipe && c.pp > 1) {
    replicated_params *= 2.0;
    expert_stage_params *= 2.0;
  }
  // The valid ranges are config/experiment.cpp's (checked there for every user input).
  RACKEP_CHECK(c.dp >= 1 && (c.zero == 0 || c.zero == 1), "SimConfig: dp >= 1 and zero 0 or 1");
  const double sharded_over_ep_dp = c.zero == 1 ? static_cast<double>(n) * c.dp : 1.0;
  const double sharded_over_dp = c.zero == 1 ? static_cast<double>(c.dp) : 1.0;
  const double weight_bytes =
      train ? kWeightGradBytesPerParam * (replicated_params + expert_stage_params) +
                  kOptimizerStateBytesPerParam *
                      (replicated_params / sharded_over_ep_dp + expert_stage_params / sharded_over_dp)
            : (replicated_params + expert_stage_params) * cost.weight_elt_bytes();
  for (size_t i = 0; i < runs.size(); ++i) {
    if (std::find(c.balancers.begin(), c.balancers.end(), names[i]) == c.balancers.end()) continue;
    if (!runs[i]) {
      BalancerSummary b;
      b.name = names[i];
      b.refused = refused[i];
      report.balancers.push_back(b);
      continue;
    }
    const BalancerRun& run = *runs[i];
    const BalancerTotals& t = run.totals();
    const Outcome& o = outcomes[i];
    BalancerSummary b;
    b.name = run.name();
    b.imbalance = t.imbalance_after_sum / t.plans;
    b.imbalance_before = t.imbalance_before_sum / t.plans;
    b.max_imbalance = t.max_imbalance_after;
    b.total_s = o.total_s;
    b.step_s = o.total_s / per;
    b.tokens_per_s = global_tokens / o.total_s;
    b.tflops_per_gpu = (t.useful_flops + dense_flops) / o.total_s / n / 1e12;
    b.pct_of_ideal = 100.0 * ideal_s / o.total_s;
    b.speedup_vs_none = none_s / o.total_s;
    b.exposed_overhead_s = o.exposed;
    b.replicas = t.replicas_sum / t.plans;
    b.weight_sync_gib = t.weight_sync_bytes / kGiB;
    b.peak_activation_gib = o.peak_activation / kGiB;
    b.redundant_slot_gib = run.redundant_slot_bytes() / kGiB;
    b.memory_gib = (weight_bytes + o.peak_activation + run.redundant_slot_bytes()) / kGiB;
    b.oom = b.memory_gib * kGiB > in.topology.gpu.hbm_bytes.value;
    b.pipeline_bubble_s = o.bubble_s;
    b.compute_busy_s = o.compute_busy / per;
    b.comm_busy_s = o.comm_busy / per;
    b.overlapped_s = o.overlapped / per;
    b.phases = o.phases;
    if (c.measure_host_planner) b.host_planner_us = 1e6 * t.host_planner_s / t.plans;
    report.balancers.push_back(b);
  }
  report.global_tokens_per_step = train ? global_tokens : global_tokens / num_mbs;
  report.platform = {{"topology", topology_to_json(in.topology)},
                     {"topology_file", in.topology.file},
                     {"built", engine.describe()}};
  report.inputs = {{"model", model.name},
                   {"model_file", model.file},
                   {"topology", in.topology.name},
                   {"topology_file", in.topology.file},
                   {"gpu", in.topology.gpu.name},
                   {"calibration_file", cal.file},
                   {"trace", trace},
                   {"trace_description", source.description()},
                   {"mode", to_string(c.mode)},
                   {"fidelity", to_string(c.fidelity)},
                   {"precision", to_string(c.precision)},
                   {"ep_ranks", n},
                   {"experts", model.num_experts},
                   {"masters_per_rank", shape.num_masters},
                   {"redundant_slots_per_rank", shape.num_redundant},
                   {"domain_size", fabric.domain_size},
                   {"microbatches", num_mbs},
                   {"moe_layers", num_moe},
                   {"dense_layers", model.num_dense_layers},
                   {"trace_layers", trace_layers},
                   {"tokens_per_rank", man.tokens_per_rank},
                   {"seq_len", source.seq_len()},
                   {"recompute", c.recompute && train},
                   {"schedule", to_string(schedule)},
                   {"pp", c.pp},
                   {"stage_moe_layers", stage_moe},
                   {"backward_comm_precision", to_string(bwd_comm)},
                   {"dispatch_dedup", c.dedup},
                   {"weight_sync_mode", c.weight_sync_mode},
                   {"dp", c.dp},
                   {"zero", train ? c.zero : 0},
                   {"model_state_gib", weight_bytes / kGiB},
                   {"notes", notes}};
  return report;
}

}  // namespace rackep::sim
