// File: sim/step_graph.hpp
// The step as a graph of activities (docs/DESIGN.md "The simulator"): every EP rank runs the same program,
// a list of operations on a few streams (a compute stream, a communication stream per lane, a background
// stream). An operation starts when the previous operation of its stream and its
// explicit dependencies (operations of the same rank) are done. Compute operations carry a duration per rank
// at the whole GPU; communication operations name a Collective: one activity over a byte matrix that starts
// when every rank has reached it (or, for point-to-point transfers, as soon as the rank reaches it) and
// holds a number of SMs on each rank from its arrival to its completion. sim/engine.hpp executes the graph
// in SimGrid; sim/schedule.hpp builds it from the per-layer work of a balancer and a schedule.
// Usage:
//   StepGraph g(/*num_ranks=*/64);
//   uint32_t a = g.add_compute(Phase::kAttention, kCompute, layer, mb, durations_s);
//   uint32_t d = g.add_collective(Phase::kDispatch, kLane0Comm, layer, mb, collective, {a});
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sim/fabric.hpp"

namespace rackep::sim {

/// Stable phase names (README "Phases"). Forward, backward, and the step-level operations.
enum class Phase : uint8_t {
  kAttention,
  kRouter,
  kPlan,
  kReroute,
  kSharedExpert,
  kExperts,
  kLoadAllgather,
  kWeightSync,
  kDispatch,
  kCombine,
  kAttentionBwd,
  kRouterBwd,
  kSharedExpertBwd,
  kExpertsDgrad,
  kExpertsWgrad,
  kWeightRestore,
  kCombineBwd,
  kDispatchBwd,
  kGradReduce,
  kDenseAttention,
  kDenseFfn,
  kDenseAttentionBwd,
  kDenseFfnBwd,
  kLmHead,
  kLmHeadBwd,
  kPpSend,
  kPpSendBwd,
  kPlacementUpdate,  ///< history-based balancers: background weight movement at their re-plan period
  kCount
};
constexpr int kNumPhases = static_cast<int>(Phase::kCount);
const char* phase_name(Phase p);
bool phase_is_comm(Phase p);
/// Balancing overhead phases (gather, plan, reroute, weight_sync, restore, grad_reduce, placement update).
bool phase_is_balancing(Phase p);

/// Streams of one rank: one compute stream (the kernels of two overlapped chunks interleave on it in the
/// schedule's order), a communication stream per lane (lane 1 only for dualpipe and two-batch), and a
/// background stream (grad_reduce, placement updates).
enum Stream : uint8_t { kCompute = 0, kLane0Comm = 1, kLane1Comm = 2, kBackground = 3, kNumStreams = 4 };
const char* stream_name(int stream);

/// Sparse byte matrix of one collective: (src, dst, bytes) triples, src != dst, bytes > 0.
struct SparseTraffic {
  std::vector<int32_t> src, dst;
  std::vector<double> bytes;
  size_t size() const { return bytes.size(); }
  static SparseTraffic from_dense(const TrafficMatrix& m);
};

/// One communication activity. `p2p`: each rank's own rows start when that rank arrives (PP sends to the
/// neighbour stage); otherwise the whole matrix starts when the last rank arrives.
struct Collective {
  std::shared_ptr<const SparseTraffic> traffic;
  double scale = 1.0;      ///< bytes per unit of `traffic` (token copies x element bytes)
  bool transpose = false;  ///< move every entry from dst to src (combine, dispatch backward)
  double min_s = 0.0;      ///< the bytes take at least this long once they start (SM-bound copies)
  double launch_s = 0.0;   ///< fixed cost before the bytes move (notify/layout, kernel launch)
  double tail_s = 0.0;     ///< fixed cost after the bytes moved (relay forwarding of the last chunk)
  int sms = 0;             ///< SMs each participating rank's comm kernel holds from arrival to completion
  bool p2p = false;
  bool to_peer = false;  ///< rows go to each rank's pipeline peer host (PP sends) instead of EP ranks
};

struct Op {
  Phase phase = Phase::kAttention;
  uint8_t stream = 0;
  bool recompute = false;
  int16_t layer = -1;  ///< decoder layer; -1 for step-level operations
  int32_t mb = 0;      ///< microbatch (or half-batch) index
  int32_t collective = -1;
  uint32_t dep_begin = 0, dep_count = 0;  ///< into StepGraph::deps
};

class StepGraph {
 public:
  explicit StepGraph(int num_ranks) : num_ranks_(num_ranks) {}

  /// Adds a compute operation; `seconds[r]` is its duration on rank r with the whole GPU (size N).
  uint32_t add_compute(Phase phase, int stream, int layer, int mb, const std::vector<double>& seconds,
                       const std::vector<uint32_t>& deps = {}, bool recompute = false);
  uint32_t add_collective(Phase phase, int stream, int layer, int mb, Collective c,
                          const std::vector<uint32_t>& deps = {}, bool recompute = false);

  int num_ranks() const { return num_ranks_; }
  const std::vector<Op>& ops() const { return ops_; }
  const std::vector<uint32_t>& deps() const { return deps_; }
  const std::vector<Collective>& collectives() const { return collectives_; }
  /// Duration of compute op `op` on rank r (0 for communication ops).
  double seconds(uint32_t op, int r) const {
    const int32_t i = compute_index_[op];
    return i < 0 ? 0.0 : seconds_[static_cast<size_t>(i) * num_ranks_ + r];
  }
  bool has_peer_traffic() const;

 private:
  static Op make_op(Phase phase, int stream, int layer, int mb, bool recompute);
  uint32_t push(Op op, const std::vector<uint32_t>& deps);

  int num_ranks_;
  std::vector<Op> ops_;
  std::vector<int32_t> compute_index_;  // op -> row of seconds_, -1 for comm ops
  std::vector<double> seconds_;         // compute ops x ranks
  std::vector<uint32_t> deps_;
  std::vector<Collective> collectives_;
};

}  // namespace rackep::sim
