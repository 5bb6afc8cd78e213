// File: sim/schedule.hpp
// Turns the per-layer work of one balancer into the step graph a schedule runs (README "Schedules"):
//   train   sequential  F0 B0 F1 B1 ...  (every microbatch forward then backward; PP: GPipe bubble)
//           1f1b        1F1B order of the first stage: P-1 warm-up forwards, then F/B pairs
//           dualpipe    F(k+1) overlapped with B(k): their kernels interleave on the compute stream layer by
//                       layer and each chunk's all-to-alls (on its own comm stream) run under the other
//                       chunk's compute (DeepSeek-V3 report, Figure 4)
//   prefill sequential  one pass after another
//           two-batch   each pass split in two halves (microbatches 2p and 2p+1), overlapped the same way
// With --pp P the simulated EP group is one pipeline stage; every forward (backward) chunk ends with a
// point-to-point send of its boundary activations (gradients) to the neighbour stage over the NIC, which the
// next chunk of the same kind waits for. The bubble of the stages the simulation does not hold is reported
// from the simulated chunk times (pipeline_bubble_s).
// Usage:
//   StepGraph g = build_step_graph(run.work(), dense, params);
#pragma once

#include <string>
#include <vector>

#include "sim/step_graph.hpp"
#include "sim/workload.hpp"

namespace rackep::sim {

enum class Schedule { kSequential, k1F1B, kDualPipe, kTwoBatch };
/// Checks the schedule against the mode and PP degree; InputError("--schedule" / "--pp", ...).
Schedule parse_schedule(const std::string& text, Mode mode, int pp);
const char* to_string(Schedule s);

/// Per-rank durations of the parts of a stage without experts, per microbatch.
struct DenseWork {
  std::vector<double> attention, ffn, attention_bwd, ffn_bwd;  ///< one dense decoder layer
  std::vector<double> lm_head, lm_head_bwd;
  std::vector<double> saved_bytes;    ///< activations one dense layer keeps for backward
  std::vector<double> working_bytes;  ///< all activations of one dense layer
  std::vector<double> tokens;         ///< tokens per rank (PP boundary bytes)
};

struct ScheduleParams {
  Mode mode = Mode::kTrain;
  Schedule schedule = Schedule::kSequential;
  int pp = 1;
  bool recompute = false;
  int num_dense_layers = 0;    ///< dense decoder layers on this stage
  int first_decoder_layer = 0;  ///< decoder index of the stage's first MoE layer
  bool lm_head = true;          ///< the stage holds the LM head
  double all_to_all_launch_s = 0.0, allgather_launch_s = 0.0, weight_sync_launch_s = 0.0;
  int sms_all_to_all = 0, sms_weight_sync = 0, sms_grad_reduce = 0, sms_allgather = 0, sms_pp = 0;
  double dispatch_bytes = 0.0, combine_bytes = 0.0, combine_bwd_bytes = 0.0, dispatch_bwd_bytes = 0.0;
  double pp_bytes_per_token = 0.0;  ///< boundary activation (and gradient) bytes per token
};

/// Where each chunk of the schedule begins and ends (op ids), for bubble and per-chunk statistics.
struct Chunk {
  bool backward = false;
  int mb = 0;
  int lane = 0;  ///< communication lane
  uint32_t first = 0, last = 0;
};

struct StepPlan {
  StepGraph graph;
  std::vector<Chunk> chunks;
  int num_microbatches = 0;  ///< microbatches (prefill two-batch: halves) in the graph
};

/// `work[mb][layer]` from BalancerRun::work(), `dense[mb]` per microbatch.
StepPlan build_step_graph(const std::vector<std::vector<LayerWork>>& work, const std::vector<DenseWork>& dense,
                          const ScheduleParams& params);

}  // namespace rackep::sim
