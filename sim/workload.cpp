#include "sim/workload.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/metrics.hpp"
#include "sim/traffic.hpp"

namespace rackep::sim {

Mode parse_mode(const std::string& text) {
  if (text == "train") return Mode::kTrain;
  if (text == "prefill") return Mode::kPrefill;
  throw InputError("--mode", text, "must be train or prefill");
}

const char* to_string(Mode m) {
  return m == Mode::kTrain ? "train" : "prefill";
}

BalancerRun::BalancerRun(const std::string& name, const ClusterShape& shape, const BalancerOptions& options,
                         const WorkloadContext& context, int num_moe_layers, int64_t num_microbatches)
    : name_(name),
      shape_(shape),
      ctx_(context),
      num_moe_layers_(num_moe_layers),
      num_microbatches_(num_microbatches) {
  expert_bytes_.hidden = ctx_.model->hidden;
  expert_bytes_.ffn = ctx_.model->expert_ffn;
  expert_bytes_.elt_bytes = ctx_.cost->weight_elt_bytes();
  expert_bytes_.validate(ctx_.model->file);
  StepDriverConfig dc;
  dc.shape = shape;
  dc.balancer = name;
  dc.options = options;
  dc.expert = expert_bytes_;
  dc.weight_sync = ctx_.options.weight_sync;
  dc.training = ctx_.options.mode == Mode::kTrain;
  dc.microbatches_per_step = std::max<int64_t>(num_microbatches, 1);
  dc.check_legality = ctx_.options.check_plans;
  driver_ = std::make_unique<StepDriver>(dc);
  persistent_ = driver_->persistent();
  steps_.assign(num_microbatches, std::vector<LayerStep>(num_moe_layers));
}

BalancerRun::~BalancerRun() = default;

double BalancerRun::redundant_slot_bytes() const {
  if (!replicates_) return 0.0;
  const double slot = ctx_.options.mode == Mode::kTrain
                          ? static_cast<double>(expert_bytes_.slot_bytes_training())
                          : static_cast<double>(expert_bytes_.slot_bytes_inference());
  const double per_layer = persistent_ ? num_moe_layers_ : 1.0;
  return shape_.num_redundant * per_layer * slot;
}

void BalancerRun::process(int layer, int64_t mb, const LoadMatrix& loads, const MicrobatchInputs& in) {
  RACKEP_CHECK(layer >= 0 && layer < num_moe_layers_ && mb >= 0 && mb < num_microbatches_,
               "BalancerRun::process: record outside the step");
  const ModelConfig& model = *ctx_.model;
  const CostModel& cost = *ctx_.cost;
  const Calibration& cal = *ctx_.calibration;
  CommModel& comm = *ctx_.comm;
  const bool train = ctx_.options.mode == Mode::kTrain;
  const int n = shape_.num_ranks;

  const StepRecord& rec = driver_->step(loads, layer, mb);
  const PlanResult& r = rec.result;
  if (ctx_.options.measure_host_planner) totals_.host_planner_s += rec.planner_s;
  const PlanMetrics& metrics = rec.metrics;
  totals_.plans += 1;
  totals_.imbalance_before_sum += metrics.imbalance_before;
  totals_.imbalance_after_sum += metrics.imbalance_after;
  totals_.max_imbalance_after = std::max(totals_.max_imbalance_after, metrics.imbalance_after);
  totals_.replicas_sum += static_cast<double>(metrics.total_replicas);
  if (metrics.total_replicas > 0) replicates_ = true;

  LayerStep& s = steps_[mb][layer];
  const int decoder_layer = model.num_dense_layers + layer;
  const AttentionConfig& att = model.attention;
  const bool window =
      att.sliding_window > 0 && std::floor((decoder_layer + 1) * att.sliding_window_fraction) >
                                    std::floor(decoder_layer * att.sliding_window_fraction);
  const std::vector<double>& keys = window ? in.keys_window : in.keys_full;

  // Compute.
  const std::vector<std::vector<int64_t>> inst = instance_tokens_per_rank(r);
  const PlannerCost& pc = cal.planner(name_);
  s.attention_fwd_s.resize(n);
  s.attention_bwd_s.resize(n);
  s.router_fwd_s.resize(n);
  s.shared_fwd_s.resize(n);
  s.experts_fwd_s.resize(n);
  s.experts_bwd_s.resize(n);
  s.reroute_s.resize(n);
  s.saved_bytes.resize(n);
  s.working_bytes.resize(n);
  const std::vector<int64_t> source_pairs = loads.source_totals();
  double flops = 0.0;
  for (int rank = 0; rank < n; ++rank) {
    const double t = in.tokens[rank];
    s.attention_fwd_s[rank] = cost.attention_forward_s(t, keys[rank]);
    s.attention_bwd_s[rank] = train ? cost.attention_backward_s(t, keys[rank]) : 0.0;
    s.router_fwd_s[rank] = cost.router_forward_s(t);
    s.shared_fwd_s[rank] = cost.shared_experts_forward_s(t);
    s.experts_fwd_s[rank] = cost.experts_forward_s(inst[rank]);
    s.experts_bwd_s[rank] = train ? cost.experts_backward_s(inst[rank]) : 0.0;
    s.reroute_s[rank] = pc.reroute_fixed_s + pc.reroute_per_pair_s * static_cast<double>(source_pairs[rank]);
    int64_t received = 0;
    for (int64_t x : inst[rank]) received += x;
    s.working_bytes[rank] = cost.moe_layer_saved_bytes(t, static_cast<double>(received));
    s.saved_bytes[rank] = ctx_.options.recompute ? cost.recompute_saved_bytes(t) : s.working_bytes[rank];
    flops += model.attention_projection_flops_per_token() * t +
             model.attention_core_flops_per_key() * keys[rank] +
             (model.router_flops_per_token() + model.shared_expert_flops_per_token()) * t;
  }
  flops += model.expert_flops_per_pair() * static_cast<double>(loads.total());
  totals_.useful_flops += train ? 3.0 * flops : flops;
  s.plan_s = pc.fixed_s + pc.per_expert_s * shape_.num_experts();

  // Dispatch and combine, and their backward transposes.
  const TrafficMatrix tokens = dispatch_token_matrix(r, model.top_k, ctx_.options.dedup);
  const TrafficMatrix dispatch = scale_traffic(tokens, cost.dispatch_bytes_per_token(), false);
  const TrafficMatrix combine = scale_traffic(tokens, cost.combine_bytes_per_token(), true);
  totals_.dispatch_network_bytes += static_cast<double>(dispatch.network_bytes());
  comm.phase(dispatch, s.dispatch_s);
  comm.phase(combine, s.combine_s);
  if (train) {
    // combine backward sends output gradients along the dispatch direction with the combine element size;
    // dispatch backward returns input gradients along the combine direction.
    if (cost.dispatch_bytes_per_token() == cost.combine_bytes_per_token()) {
      s.combine_bwd_s = s.dispatch_s;
    } else {
      comm.phase(scale_traffic(tokens, cost.combine_bytes_per_token(), false), s.combine_bwd_s);
    }
    s.dispatch_bwd_s = s.combine_s;
  }

  // Load all-gather before planning.
  if (pc.needs_load_allgather) {
    if (allgather_s_.empty()) comm.phase(load_allgather_traffic(n, shape_.num_experts()), allgather_s_);
    s.allgather_s = allgather_s_;
  }

  // weight_sync, weight restore and grad_reduce: what moves is decided by the StepDriver
  // (core/step_driver.hpp).
  s.weight_restore = rec.weight_restore;
  if (rec.weight_sync) {
    const TransferPlan& tp = *rec.weight_sync;
    comm.phase(weight_sync_traffic(tp), s.weight_sync_s);
    const double relay_s =
        tp.relay_levels * static_cast<double>(ExpertBytes::kChunkBytes) / ctx_.port_bytes_per_s;
    for (double& x : s.weight_sync_s) x += relay_s;
    totals_.weight_sync_calls += 1;
    totals_.weight_sync_bytes += static_cast<double>(tp.total_bytes());
  }
  if (rec.grad_reduce) {
    const GradReducePlan& gp = *rec.grad_reduce;
    comm.phase(grad_reduce_traffic(gp), s.grad_reduce_s);
    const double sm_rate = cal.grad_reduce_num_sms.value * cal.grad_reduce_bytes_per_sm_s.value;
    for (int rank = 0; rank < n; ++rank) {
      s.grad_reduce_s[rank] =
          std::max(s.grad_reduce_s[rank], static_cast<double>(gp.pulled_bytes[rank]) / sm_rate);
    }
  }
}

}  // namespace rackep::sim
