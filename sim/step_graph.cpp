#include "sim/step_graph.hpp"

#include "core/error.hpp"

namespace rackep::sim {

namespace {
struct PhaseInfo {
  const char* name;
  bool comm;
  bool balancing;
};
constexpr PhaseInfo kPhases[kNumPhases] = {
    {"attention", false, false},
    {"router", false, false},
    {"plan", false, true},
    {"reroute", false, true},
    {"shared_expert", false, false},
    {"experts", false, false},
    {"load_allgather", true, true},
    {"weight_sync", true, true},
    {"dispatch", true, false},
    {"combine", true, false},
    {"attention_bwd", false, false},
    {"router_bwd", false, false},
    {"shared_expert_bwd", false, false},
    {"experts_dgrad", false, false},
    {"experts_wgrad", false, false},
    {"weight_restore", true, true},
    {"combine_bwd", true, false},
    {"dispatch_bwd", true, false},
    {"grad_reduce", true, true},
    {"dense_attention", false, false},
    {"dense_ffn", false, false},
    {"dense_attention_bwd", false, false},
    {"dense_ffn_bwd", false, false},
    {"lm_head", false, false},
    {"lm_head_bwd", false, false},
    {"pp_send", true, false},
    {"pp_send_bwd", true, false},
    {"placement_update", true, true},
};
}  // namespace

const char* phase_name(Phase p) {
  return kPhases[static_cast<int>(p)].name;
}
bool phase_is_comm(Phase p) {
  return kPhases[static_cast<int>(p)].comm;
}
bool phase_is_balancing(Phase p) {
  return kPhases[static_cast<int>(p)].balancing;
}

const char* stream_name(int stream) {
  static const char* const kNames[kNumStreams] = {"compute", "comm", "comm (lane 1)", "background"};
  RACKEP_CHECK(stream >= 0 && stream < kNumStreams, "stream_name: no such stream");
  return kNames[stream];
}

SparseTraffic SparseTraffic::from_dense(const TrafficMatrix& m) {
  SparseTraffic s;
  for (int i = 0; i < m.num_ranks; ++i)
    for (int j = 0; j < m.num_ranks; ++j)
      if (i != j && m.at(i, j) > 0) {
        s.src.push_back(i);
        s.dst.push_back(j);
        s.bytes.push_back(static_cast<double>(m.at(i, j)));
      }
  return s;
}

Op StepGraph::make_op(Phase phase, int stream, int layer, int mb, bool recompute) {
  Op op;
  op.phase = phase;
  op.stream = static_cast<uint8_t>(stream);
  op.layer = static_cast<int16_t>(layer);
  op.mb = mb;
  op.recompute = recompute;
  return op;
}

uint32_t StepGraph::push(Op op, const std::vector<uint32_t>& deps) {
  const auto id = static_cast<uint32_t>(ops_.size());
  op.dep_begin = static_cast<uint32_t>(deps_.size());
  op.dep_count = static_cast<uint32_t>(deps.size());
  for (uint32_t d : deps) {
    RACKEP_CHECK(d < id, "StepGraph: a dependency must be added before the operation that waits for it");
    deps_.push_back(d);
  }
  ops_.push_back(op);
  return id;
}

uint32_t StepGraph::add_compute(Phase phase, int stream, int layer, int mb,
                                const std::vector<double>& seconds, const std::vector<uint32_t>& deps,
                                bool recompute) {
  RACKEP_CHECK(static_cast<int>(seconds.size()) == num_ranks_, "StepGraph: one duration per rank");
  RACKEP_CHECK(!phase_is_comm(phase), "StepGraph: a compute op needs a compute phase");
  const Op op = make_op(phase, stream, layer, mb, recompute);
  compute_index_.push_back(static_cast<int32_t>(seconds_.size() / num_ranks_));
  seconds_.insert(seconds_.end(), seconds.begin(), seconds.end());
  return push(op, deps);
}

uint32_t StepGraph::add_collective(Phase phase, int stream, int layer, int mb, Collective c,
                                   const std::vector<uint32_t>& deps, bool recompute) {
  RACKEP_CHECK(phase_is_comm(phase), "StepGraph: a collective needs a communication phase");
  RACKEP_CHECK(c.traffic != nullptr, "StepGraph: collective without traffic");
  Op op = make_op(phase, stream, layer, mb, recompute);
  op.collective = static_cast<int32_t>(collectives_.size());
  collectives_.push_back(std::move(c));
  compute_index_.push_back(-1);
  return push(op, deps);
}

bool StepGraph::has_peer_traffic() const {
  for (const Collective& c : collectives_)
    if (c.to_peer) return true;
  return false;
}

}  // namespace rackep::sim
