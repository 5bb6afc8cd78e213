#include "sim/simulator.hpp"

#include <algorithm>
#include <memory>

#include "core/error.hpp"
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

std::unique_ptr<CommModel> build_comm(const SimConfig& c, const Fabric& fabric, const GpuSpec& gpu) {
  if (c.fidelity == Fidelity::kPtask && !c.ptask_compress) {
    return make_simgrid_comm_model(c.fidelity, fabric, gpu.bf16_flops_per_s.value, /*compress=*/false);
  }
  return make_comm_model(c.fidelity, fabric, gpu.bf16_flops_per_s.value);
}

}  // namespace

nlohmann::json describe_platform(const SimConfig& c) {
  const Loaded in = load_inputs(c);
  const int n = c.ranks > 0 ? c.ranks : static_cast<int>(in.topology.num_gpus.value);
  const Fabric fabric = make_fabric(in.topology, {n, c.domain, in.calibration.scale_up_efficiency.value,
                                                  in.calibration.scale_out_efficiency.value});
  std::unique_ptr<CommModel> comm = build_comm(c, fabric, in.topology.gpu);
  return {{"topology", topology_to_json(in.topology)},
          {"topology_file", in.topology.file},
          {"built", comm->describe()}};
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
  spec.num_layers = model.num_moe_layers();
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

  const Fabric fabric =
      make_fabric(in.topology, {n, c.domain, cal.scale_up_efficiency.value, cal.scale_out_efficiency.value});
  const ClusterShape shape = ClusterShape::from_experts(n, model.num_experts, c.slots, fabric.domain_size,
                                                        "--ranks/--slots/--domain");
  const CostModel cost(model, in.topology.gpu, cal, c.precision);
  std::unique_ptr<CommModel> comm = build_comm(c, fabric, in.topology.gpu);

  SimReport report;
  nlohmann::json notes = nlohmann::json::array();
  if (trace_layers < num_moe) {
    notes.push_back("the trace has " + std::to_string(trace_layers) + " layers and the model " +
                    std::to_string(num_moe) + " MoE layers: MoE layer i replays trace layer i mod " +
                    std::to_string(trace_layers));
  } else if (trace_layers > num_moe) {
    notes.push_back("the trace has " + std::to_string(trace_layers) + " layers; only the first " +
                    std::to_string(num_moe) + " are replayed");
  }

  // Every requested balancer, plus the two references.
  std::vector<std::string> names = c.balancers;
  for (const char* ref : {"none", "ideal"}) {
    if (std::find(names.begin(), names.end(), ref) == names.end()) names.push_back(ref);
  }
  WorkloadContext ctx;
  ctx.model = &model;
  ctx.cost = &cost;
  ctx.calibration = &cal;
  ctx.comm = comm.get();
  ctx.port_bytes_per_s = fabric.port_bytes_per_s;
  ctx.options.mode = c.mode;
  ctx.options.recompute = c.recompute;
  ctx.options.dedup = c.dedup;
  ctx.options.measure_host_planner = c.measure_host_planner;
  ctx.options.weight_sync.mode = parse_weight_sync_mode(c.weight_sync_mode, "--weight-sync");
  ctx.options.check_plans = c.check_plans;
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
          std::make_unique<BalancerRun>(names[i], shape, c.balancer_options, ctx, num_moe, num_mbs));
    } catch (const InputError& e) {
      runs.push_back(nullptr);
      refused[i] = e.what();
    }
  }

  // Replay: buffer one microbatch of records, then hand every MoE layer to every balancer in order.
  std::vector<DenseInputs> dense(num_mbs);
  double global_tokens = 0.0;
  double dense_flops = 0.0;
  const bool train = c.mode == Mode::kTrain;
  comm->run([&] {
    std::vector<LoadMatrix> buffer(trace_layers);
    int filled = 0;
    int64_t mb = 0;
    TraceRecord rec;
    while (mb < num_mbs && source.stream().next(rec)) {
      const int pos = man.layer_position(rec.layer);
      buffer[pos] = rec.loads;
      if (++filled < trace_layers) continue;
      filled = 0;
      MicrobatchInputs inputs;
      const std::vector<int64_t> pairs = buffer[0].source_totals();
      DenseInputs& d = dense[mb];
      for (int r = 0; r < n; ++r) {
        const double tokens = static_cast<double>(pairs[r]) / model.top_k;
        inputs.tokens.push_back(tokens);
        inputs.keys_full.push_back(source.attended_keys(rec.microbatch, r, tokens, 0));
        inputs.keys_window.push_back(
            model.attention.sliding_window > 0
                ? source.attended_keys(rec.microbatch, r, tokens, model.attention.sliding_window)
                : inputs.keys_full.back());
        d.attention_fwd_s.push_back(cost.attention_forward_s(tokens, inputs.keys_full[r]));
        d.attention_bwd_s.push_back(train ? cost.attention_backward_s(tokens, inputs.keys_full[r]) : 0.0);
        d.ffn_fwd_s.push_back(cost.dense_ffn_forward_s(tokens));
        d.lm_head_fwd_s.push_back(cost.lm_head_forward_s(tokens));
        d.working_bytes.push_back(cost.dense_layer_saved_bytes(tokens));
        d.saved_bytes.push_back(c.recompute ? cost.recompute_saved_bytes(tokens) : d.working_bytes.back());
        global_tokens += tokens;
        const double f =
            model.num_dense_layers *
                ((model.attention_projection_flops_per_token() + model.dense_ffn_flops_per_token()) * tokens +
                 model.attention_core_flops_per_key() * inputs.keys_full[r]) +
            model.lm_head_flops_per_token() * tokens;
        dense_flops += train ? 3.0 * f : f;
      }
      for (int layer = 0; layer < num_moe; ++layer) {
        const LoadMatrix& loads = buffer[layer % trace_layers];
        for (size_t i = 0; i < runs.size(); ++i) {
          if (!runs[i]) continue;
          try {
            runs[i]->process(layer, mb, loads, inputs);
          } catch (const InputError& e) {
            runs[i].reset();
            refused[i] = e.what();
          }
        }
      }
      ++mb;
    }
    RACKEP_CHECK(mb == num_mbs, "trace ended before its manifest's record count");
  });

  ComposeParams params;
  params.mode = c.mode;
  params.recompute = c.recompute && train;
  params.num_dense_layers = model.num_dense_layers;
  params.all_to_all_launch_s = cal.all_to_all_launch_s.value;
  params.allgather_launch_s = cal.allgather_launch_s.value;
  params.weight_sync_launch_s = cal.weight_sync_launch_s.value;
  std::vector<StepTimes> times(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!runs[i]) continue;
    if (hooks.on_balancer) hooks.on_balancer(runs[i]->name(), static_cast<int>(i));
    times[i] = compose_step(runs[i]->steps(), dense, params, hooks.timeline);
  }
  auto index_of = [&](const std::string& name) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  const double none_s = times[index_of("none")].total_s;
  const double ideal_s = times[index_of("ideal")].total_s;
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
    const StepTimes& st = times[i];
    BalancerSummary b;
    b.name = run.name();
    b.imbalance = t.imbalance_after_sum / t.plans;
    b.imbalance_before = t.imbalance_before_sum / t.plans;
    b.max_imbalance = t.max_imbalance_after;
    b.total_s = st.total_s;
    const double per = train ? 1.0 : static_cast<double>(num_mbs);
    b.step_s = st.total_s / per;
    b.tokens_per_s = global_tokens / st.total_s;
    b.tflops_per_gpu = (t.useful_flops + dense_flops) / st.total_s / n / 1e12;
    b.pct_of_ideal = 100.0 * ideal_s / st.total_s;
    b.speedup_vs_none = none_s / st.total_s;
    b.exposed_overhead_s = st.exposed_overhead_s / per;
    b.exposed_plan_s = st.exposed_plan_s / per;
    b.exposed_weight_sync_s = st.exposed_weight_sync_s / per;
    b.exposed_grad_reduce_s = st.exposed_grad_reduce_s / per;
    b.replicas = t.replicas_sum / t.plans;
    b.weight_sync_gib = t.weight_sync_bytes / kGiB;
    b.peak_activation_gib = st.peak_activation_bytes / kGiB;
    b.redundant_slot_gib = run.redundant_slot_bytes() / kGiB;
    if (c.measure_host_planner) b.host_planner_us = 1e6 * t.host_planner_s / t.plans;
    report.balancers.push_back(b);
  }
  report.global_tokens_per_step = train ? global_tokens : global_tokens / num_mbs;
  report.platform = {{"topology", topology_to_json(in.topology)},
                     {"topology_file", in.topology.file},
                     {"built", comm->describe()}};
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
                   {"recompute", params.recompute},
                   {"dispatch_dedup", c.dedup},
                   {"weight_sync_mode", c.weight_sync_mode},
                   {"schedule", c.schedule},
                   {"pp", c.pp},
                   {"notes", notes}};
  return report;
}

}  // namespace rackep::sim
