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
  dc.warm_start = true;
  driver_ = std::make_unique<StepDriver>(dc);
  persistent_ = driver_->persistent();
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

  // weight_sync, weight restore and grad_reduce: what moves is decided by the StepDriver
  // (core/step_driver.hpp). Fixed-master plans refill the shared replica slots before dispatch (and restore
  // them before the backward expert dgrad); persistent placements (EPLB, LPLB) start warm and move only the
  // difference to the layer's previous placement, in the background while training goes on.
  if (rec.weight_sync) {
    const TransferPlan& tp = *rec.weight_sync;
    std::shared_ptr<const SparseTraffic> t = to_engine(weight_sync_traffic(tp), fabric, compress);
    if (rec.persistent) {
      w.placement_update = std::move(t);
    } else {
      w.weight_sync = std::move(t);
      w.weight_sync_tail_s =
          tp.relay_levels * static_cast<double>(ExpertBytes::kChunkBytes) / fabric.port_bytes_per_s;
      w.weight_restore = rec.weight_restore;
    }
    totals_.weight_sync_calls += 1;
    totals_.weight_sync_bytes += static_cast<double>(tp.total_bytes());
  }
  if (rec.grad_reduce) {
    const GradReducePlan& gp = *rec.grad_reduce;
    w.grad_reduce = to_engine(grad_reduce_traffic(gp), fabric, compress);
    const double sm_rate = cal.comm_sms.grad_reduce.value * cal.grad_reduce_bytes_per_sm_s.value;
    for (int rank = 0; rank < n; ++rank) {
      w.grad_reduce_min_s = std::max(w.grad_reduce_min_s, static_cast<double>(gp.pulled_bytes[rank]) / sm_rate);
    }
  }
}

}  // namespace rackep::sim
