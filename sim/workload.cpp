#include "sim/workload.hpp"

#include <algorithm>
#include <chrono>
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
      balancer_(make_balancer(name, shape, options)),
      num_moe_layers_(num_moe_layers),
      num_microbatches_(num_microbatches) {
  persistent_ = balancer_->persistent_replicas();
  expert_bytes_.hidden = ctx_.model->hidden;
  expert_bytes_.ffn = ctx_.model->expert_ffn;
  expert_bytes_.elt_bytes = ctx_.cost->weight_elt_bytes();
  expert_bytes_.validate(ctx_.model->file);
  previous_.resize(num_moe_layers);  // filled on first use: only balancers that move replicas read it
  work_.assign(num_microbatches, std::vector<LayerWork>(num_moe_layers));
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

namespace {

std::shared_ptr<const SparseTraffic> to_engine(const TrafficMatrix& m, const Fabric& fabric, bool compress) {
  return std::make_shared<const SparseTraffic>(
      SparseTraffic::from_dense(compress ? compress_traffic(fabric, m) : m));
}

}  // namespace

void BalancerRun::process(int layer, int64_t mb, const LoadMatrix& loads, const MicrobatchInputs& in) {
  RACKEP_CHECK(layer >= 0 && layer < num_moe_layers_ && mb >= 0 && mb < num_microbatches_,
               "BalancerRun::process: record outside the step");
  const ModelConfig& model = *ctx_.model;
  const CostModel& cost = *ctx_.cost;
  const Calibration& cal = *ctx_.calibration;
  const Fabric& fabric = *ctx_.fabric;
  const bool train = ctx_.options.mode == Mode::kTrain;
  const bool compress = ctx_.options.compress;
  const int n = shape_.num_ranks;

  const auto t0 = std::chrono::steady_clock::now();
  PlanResult r = balancer_->plan(loads, StepContext{layer, mb});
  if (ctx_.options.measure_host_planner) {
    totals_.host_planner_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const PlanMetrics metrics = measure_plan(loads, r);
  totals_.plans += 1;
  totals_.imbalance_before_sum += metrics.imbalance_before;
  totals_.imbalance_after_sum += metrics.imbalance_after;
  totals_.max_imbalance_after = std::max(totals_.max_imbalance_after, metrics.imbalance_after);
  totals_.replicas_sum += static_cast<double>(metrics.total_replicas);
  if (metrics.total_replicas > 0) replicates_ = true;

  LayerWork& w = work_[mb][layer];
  const int decoder_layer = model.num_dense_layers + layer;
  const AttentionConfig& att = model.attention;
  const bool window =
      att.sliding_window > 0 && std::floor((decoder_layer + 1) * att.sliding_window_fraction) >
                                    std::floor(decoder_layer * att.sliding_window_fraction);
  const std::vector<double>& keys = window ? in.keys_window : in.keys_full;

  // Compute.
  const std::vector<std::vector<int64_t>> inst = instance_tokens_per_rank(r);
  const PlannerCost& pc = cal.planner(name_);
  for (std::vector<double>* v : {&w.attention, &w.router, &w.plan, &w.reroute, &w.shared_expert, &w.experts,
                                 &w.saved_bytes, &w.working_bytes})
    v->assign(n, 0.0);
  if (train) {
    for (std::vector<double>* v :
         {&w.attention_bwd, &w.router_bwd, &w.shared_expert_bwd, &w.experts_dgrad, &w.experts_wgrad})
      v->assign(n, 0.0);
  }
  const std::vector<int64_t> source_pairs = loads.source_totals();
  const double plan_s = pc.fixed_s + pc.per_expert_s * shape_.num_experts();
  double flops = 0.0;
  for (int rank = 0; rank < n; ++rank) {
    const double t = in.tokens[rank];
    const MoeLayerCompute c = cost.moe_layer(t, keys[rank], inst[rank], train);
    w.attention[rank] = c.attention;
    w.router[rank] = c.router;
    w.plan[rank] = plan_s;
    w.reroute[rank] = pc.reroute_fixed_s + pc.reroute_per_pair_s * static_cast<double>(source_pairs[rank]);
    w.shared_expert[rank] = c.shared_expert;
    w.experts[rank] = c.experts;
    if (train) {
      w.attention_bwd[rank] = c.attention_bwd;
      w.router_bwd[rank] = c.router_bwd;
      w.shared_expert_bwd[rank] = c.shared_expert_bwd;
      w.experts_dgrad[rank] = c.experts_dgrad;
      w.experts_wgrad[rank] = c.experts_wgrad;
    }
    int64_t received = 0;
    for (int64_t x : inst[rank]) received += x;
    w.working_bytes[rank] = cost.moe_layer_saved_bytes(t, static_cast<double>(received));
    w.saved_bytes[rank] = ctx_.options.recompute ? cost.recompute_saved_bytes(t) : w.working_bytes[rank];
    flops += model.attention_projection_flops_per_token() * t + model.attention_core_flops_per_key() * keys[rank] +
             (model.router_flops_per_token() + model.shared_expert_flops_per_token()) * t;
  }
  flops += model.expert_flops_per_pair() * static_cast<double>(loads.total());
  totals_.useful_flops += train ? 3.0 * flops : flops;

  // Dispatch token copies on their routes (two hops across NVLink domains); combine and the backward
  // all-to-alls move the same copies with their own element sizes.
  const TrafficMatrix tokens =
      dispatch_route_matrix(r, model.top_k, ctx_.options.dedup, fabric, model.max_domains_per_token);
  totals_.dispatch_network_bytes += static_cast<double>(tokens.network_bytes()) * cost.dispatch_bytes_per_token();
  w.tokens = to_engine(tokens, fabric, compress);

  if (pc.needs_load_allgather) {
    if (!allgather_) allgather_ = to_engine(load_allgather_traffic(n, shape_.num_experts()), fabric, compress);
    w.allgather = allgather_;
  }

  // weight_sync: fixed-master plans refill the shared replica slots every call (and restore them before the
  // backward expert dgrad). Persistent placements (EPLB, LPLB) start warm from their first plan of each layer
  // (not charged) and move only the difference to the layer's previous plan, in the background while
  // training goes on.
  const bool fixed_master = !persistent_ && r.plan.masters_fixed;
  if (fixed_master) {
    if (metrics.total_replicas > 0) {
      const TransferPlan tp = plan_weight_sync(r.plan, expert_bytes_, ctx_.options.weight_sync);
      if (!tp.copies.empty()) {
        w.weight_sync = to_engine(weight_sync_traffic(tp), fabric, compress);
        w.weight_sync_tail_s =
            tp.relay_levels * static_cast<double>(ExpertBytes::kChunkBytes) / fabric.port_bytes_per_s;
        w.weight_restore = train;
        totals_.weight_sync_calls += 1;
        totals_.weight_sync_bytes += static_cast<double>(tp.total_bytes());
      }
    }
  } else {
    if (previous_[layer].lcnt.empty()) previous_[layer] = r.plan;  // warm start
    const TransferPlan tp = plan_persistent_weight_sync(previous_[layer], r.plan, expert_bytes_);
    previous_[layer] = r.plan;
    if (!tp.copies.empty()) {
      w.placement_update = to_engine(weight_sync_traffic(tp), fabric, compress);
      totals_.weight_sync_calls += 1;
      totals_.weight_sync_bytes += static_cast<double>(tp.total_bytes());
    }
  }

  // grad_reduce: every call for shared slots; once per step (last microbatch) for resident replicas.
  const bool reduce_now =
      train && metrics.total_replicas > 0 && (fixed_master || mb == num_microbatches_ - 1);
  if (reduce_now) {
    const GradReducePlan gp = plan_grad_reduce(r.plan, expert_bytes_);
    if (!gp.pulls.empty()) {
      w.grad_reduce = to_engine(grad_reduce_traffic(gp), fabric, compress);
      const double sm_rate = cal.comm_sms.grad_reduce.value * cal.grad_reduce_bytes_per_sm_s.value;
      for (int rank = 0; rank < n; ++rank)
        w.grad_reduce_min_s = std::max(w.grad_reduce_min_s, static_cast<double>(gp.pulled_bytes[rank]) / sm_rate);
    }
  }
}

}  // namespace rackep::sim
