// File: sim/step_loop.hpp
// The step loop: composes the per-rank durations of every (MoE layer, microbatch) into one training step
// (microbatches one after the other, each forward over all layers then backward in reverse) or a sequence of
// prefill passes, following ALGORITHMS.md §2.2 and DESIGN.md. Every collective phase starts when the last
// rank is ready; compute and the communication stream overlap where the real system overlaps them:
//   forward, per MoE layer: attention, router | [load all-gather] plan | weight_sync (comm) || reroute,
//   shared
//     expert (compute) | dispatch | expert FFN | combine
//   backward, per MoE layer: [recomputed forward] | weight restore | combine backward | expert dgrad + wgrad
//   |
//     grad_reduce (comm) || dispatch backward, shared expert, router and attention backward | join
// The exposed balancing overhead is the critical-path time from the router's end to the start of dispatch
// (gather, plan, weight_sync not hidden by reroute), plus weight restores and the part of grad_reduce not
// hidden by the rest of the layer's backward. Usage:
//   StepTimes t = compose_step(run.steps(), dense, params, &sink);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/workload.hpp"

namespace rackep::sim {

/// Per-rank durations of the layers without experts, per microbatch.
struct DenseInputs {
  std::vector<double> attention_fwd_s, attention_bwd_s, ffn_fwd_s;  ///< one dense decoder layer
  std::vector<double> lm_head_fwd_s;
  std::vector<double> saved_bytes;    ///< activations one dense layer keeps for backward
  std::vector<double> working_bytes;  ///< all activations of one dense layer
};

struct ComposeParams {
  Mode mode = Mode::kTrain;
  bool recompute = false;
  int num_dense_layers = 0;
  double all_to_all_launch_s = 0.0;
  double allgather_launch_s = 0.0;
  double weight_sync_launch_s = 0.0;
};

/// One interval of the simulated timeline.
struct TimelineEvent {
  int rank = 0;
  int lane = 0;  ///< 0 = compute stream, 1 = communication stream
  const char* name = "";
  double start_s = 0.0;
  double end_s = 0.0;
  int layer = -1;  ///< decoder layer, -1 when none
  int64_t microbatch = 0;
};

/// Observer of the step loop (STYLE.md rule 14): the loop fires events, writers subscribe.
class TimelineSink {
 public:
  virtual ~TimelineSink() = default;
  virtual void on_event(const TimelineEvent& event) = 0;
};

struct StepTimes {
  double total_s = 0.0;        ///< training step, or the sum of all prefill passes
  std::vector<double> pass_s;  ///< per microbatch (prefill: pass latency; train: fwd+bwd of that microbatch)
  double exposed_overhead_s = 0.0;     ///< balancing overhead on the critical path (see banner)
  double exposed_plan_s = 0.0;         ///< of which: gather + planning
  double exposed_weight_sync_s = 0.0;  ///< of which: weight_sync and weight restore
  double exposed_grad_reduce_s = 0.0;  ///< of which: grad_reduce not hidden (the rest is reroute)
  double peak_activation_bytes = 0.0;  ///< max over ranks and time of live activations
};

/// `steps[mb][layer]` from BalancerRun::steps(); `dense[mb]` per microbatch. `sink` may be null.
StepTimes compose_step(const std::vector<std::vector<LayerStep>>& steps,
                       const std::vector<DenseInputs>& dense, const ComposeParams& params,
                       TimelineSink* sink);

}  // namespace rackep::sim
