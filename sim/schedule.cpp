#include "sim/schedule.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::sim {

Schedule parse_schedule(const std::string& text, Mode mode, int pp) {
  Schedule s;
  if (text == "sequential") {
    s = Schedule::kSequential;
  } else if (text == "1f1b") {
    s = Schedule::k1F1B;
  } else if (text == "dualpipe") {
    s = Schedule::kDualPipe;
  } else if (text == "two-batch") {
    s = Schedule::kTwoBatch;
  } else {
    throw InputError("--schedule", text, "must be sequential, 1f1b, dualpipe (train) or two-batch (prefill)");
  }
  if (mode == Mode::kTrain && s == Schedule::kTwoBatch) {
    throw InputError("--schedule", text, "two-batch is a prefill schedule; training uses 1f1b or dualpipe");
  }
  if (mode == Mode::kPrefill && (s == Schedule::k1F1B || s == Schedule::kDualPipe)) {
    throw InputError("--schedule", text, "is a training schedule; prefill uses sequential or two-batch");
  }
  if (pp < 1) throw InputError("--pp", std::to_string(pp), "must be >= 1");
  if (mode == Mode::kPrefill && pp > 1) throw InputError("--pp", std::to_string(pp), "prefill runs without PP");
  if (s == Schedule::kDualPipe && pp > 1 && pp % 2 != 0) {
    throw InputError("--pp", std::to_string(pp), "dualpipe needs an even number of pipeline stages");
  }
  return s;
}

const char* to_string(Schedule s) {
  switch (s) {
    case Schedule::kSequential:
      return "sequential";
    case Schedule::k1F1B:
      return "1f1b";
    case Schedule::kDualPipe:
      return "dualpipe";
    case Schedule::kTwoBatch:
      return "two-batch";
  }
  return "?";
}

namespace {

std::shared_ptr<const SparseTraffic> peer_traffic(const std::vector<double>& tokens, double bytes_per_token) {
  auto t = std::make_shared<SparseTraffic>();
  for (size_t r = 0; r < tokens.size(); ++r) {
    const double b = tokens[r] * bytes_per_token;
    if (b <= 0.0) continue;
    t->src.push_back(static_cast<int32_t>(r));
    t->dst.push_back(static_cast<int32_t>(r));
    t->bytes.push_back(b);
  }
  return t;
}

// One chunk (the forward or the backward of one microbatch over the stage's layers) being emitted layer by
// layer. Its compute goes to `compute`, its communication to `comm`; two chunks that overlap share the compute
// stream (their kernels interleave in a fixed order, as DualPipe and two-batch overlap issue them) and have a
// communication stream each.
struct ChunkState {
  Chunk c;
  int compute = 0, comm = 0;
  std::vector<uint32_t> deps;  // what the next emitted op of this chunk waits for
  size_t next = 0;             // layers emitted
  bool started = false;
  // Per layer, between segments.
  uint32_t dispatch = 0, dgrad = 0, reduced = 0;  // dispatch: forward dispatch or dispatch_bwd
  bool have_reduced = false;
};

class Builder {
 public:
  Builder(const std::vector<std::vector<LayerWork>>& work, const std::vector<DenseWork>& dense,
          const ScheduleParams& p, StepPlan& out)
      : work_(work), dense_(dense), p_(p), out_(out), g_(out.graph) {}

  ChunkState start(bool backward, int mb, int comm, std::vector<uint32_t> deps) {
    const int compute = kCompute;
    ChunkState st;
    st.c = Chunk{backward, mb, comm == kLane0Comm ? 0 : 1, 0, 0};
    st.compute = compute;
    st.comm = comm;
    st.deps = std::move(deps);
    const DenseWork& d = dense_[mb];
    if (!backward) {
      for (int l = 0; l < p_.num_dense_layers; ++l) {
        note(st, g_.add_compute(Phase::kDenseAttention, compute, l, mb, d.attention, take(st)));
        st.deps = {note(st, g_.add_compute(Phase::kDenseFfn, compute, l, mb, d.ffn))};
      }
    } else if (p_.lm_head) {
      st.deps = {note(st, g_.add_compute(Phase::kLmHeadBwd, compute, -1, mb, d.lm_head_bwd, take(st)))};
    }
    return st;
  }
  size_t layers(const ChunkState& st) const { return work_[st.c.mb].size(); }

  // Forward of one MoE layer in two compute segments around the dispatch, and the combine.
  void fwd_first(ChunkState& st) {
    const int mb = st.c.mb, layer = p_.first_decoder_layer + static_cast<int>(st.next), C = st.compute,
              K = st.comm;
    const LayerWork& w = work_[mb][st.next];
    const uint32_t att = note(st, g_.add_compute(Phase::kAttention, C, layer, mb, w.attention, take(st)));
    if (w.placement_update) {
      Collective u = comm(w.placement_update, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
      g_.add_collective(Phase::kPlacementUpdate, kBackground, layer, mb, u, {att});
    }
    uint32_t last = note(st, g_.add_compute(Phase::kRouter, C, layer, mb, w.router));
    if (w.allgather) {
      Collective a = comm(w.allgather, 1.0, p_.allgather_launch_s, p_.sms_allgather);
      last = note(st, g_.add_collective(Phase::kLoadAllgather, K, layer, mb, a, {last}));
    }
    const uint32_t plan = note(st, g_.add_compute(Phase::kPlan, C, layer, mb, w.plan, {last}));
    if (w.weight_sync) {
      Collective s = comm(w.weight_sync, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
      s.tail_s = w.weight_sync_tail_s;
      note(st, g_.add_collective(Phase::kWeightSync, K, layer, mb, s, {plan}));
    }
    const uint32_t rr = note(st, g_.add_compute(Phase::kReroute, C, layer, mb, w.reroute));
    st.dispatch = note(st, g_.add_collective(Phase::kDispatch, K, layer, mb, a2a(w.tokens, p_.dispatch_bytes, false), {rr}));
    note(st, g_.add_compute(Phase::kSharedExpert, C, layer, mb, w.shared_expert));
  }
  void fwd_second(ChunkState& st) {
    const int mb = st.c.mb, layer = p_.first_decoder_layer + static_cast<int>(st.next);
    const LayerWork& w = work_[mb][st.next];
    const uint32_t ex = note(st, g_.add_compute(Phase::kExperts, st.compute, layer, mb, w.experts, {st.dispatch}));
    st.deps = {note(st, g_.add_collective(Phase::kCombine, st.comm, layer, mb,
                                          a2a(w.tokens, p_.combine_bytes, true), {ex}))};
    ++st.next;
  }

  // Backward of one MoE layer (last layer first): [recomputed forward], [restore], combine_bwd, then the
  // expert dgrad and wgrad, dispatch_bwd, then shared expert, router and attention backward.
  void bwd_first(ChunkState& st) {
    const size_t i = layers(st) - 1 - st.next;
    const int mb = st.c.mb, layer = p_.first_decoder_layer + static_cast<int>(i), C = st.compute, K = st.comm;
    const LayerWork& w = work_[mb][i];
    if (p_.recompute) {
      // Full recompute re-runs the layer's forward with the saved plan (no gather, plan or weight_sync).
      const uint32_t a = note(st, g_.add_compute(Phase::kAttention, C, layer, mb, w.attention, take(st), true));
      note(st, g_.add_compute(Phase::kRouter, C, layer, mb, w.router, {}, true));
      const uint32_t dp = note(st, g_.add_collective(Phase::kDispatch, K, layer, mb,
                                                     a2a(w.tokens, p_.dispatch_bytes, false), {a}, true));
      note(st, g_.add_compute(Phase::kSharedExpert, C, layer, mb, w.shared_expert, {}, true));
      const uint32_t ex = note(st, g_.add_compute(Phase::kExperts, C, layer, mb, w.experts, {dp}, true));
      st.deps = {note(st, g_.add_collective(Phase::kCombine, K, layer, mb, a2a(w.tokens, p_.combine_bytes, true),
                                            {ex}, true))};
    }
    std::vector<uint32_t> dgrad_deps;
    if (w.weight_restore) {
      std::vector<uint32_t> rdeps = st.deps;
      if (st.have_reduced) rdeps.push_back(st.reduced);  // the shared slots hold the previous layer's grads
      Collective s = comm(w.weight_sync, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
      s.tail_s = w.weight_sync_tail_s;
      dgrad_deps.push_back(note(st, g_.add_collective(Phase::kWeightRestore, K, layer, mb, s, rdeps)));
    }
    dgrad_deps.push_back(note(st, g_.add_collective(Phase::kCombineBwd, K, layer, mb,
                                                    a2a(w.tokens, p_.combine_bwd_bytes, false), take(st))));
    st.dgrad = note(st, g_.add_compute(Phase::kExpertsDgrad, C, layer, mb, w.experts_dgrad, dgrad_deps));
    st.dispatch = note(st, g_.add_collective(Phase::kDispatchBwd, K, layer, mb,
                                             a2a(w.tokens, p_.dispatch_bwd_bytes, true), {st.dgrad}));
    const uint32_t wg = note(st, g_.add_compute(Phase::kExpertsWgrad, C, layer, mb, w.experts_wgrad));
    if (w.grad_reduce) {
      Collective r = comm(w.grad_reduce, 1.0, p_.weight_sync_launch_s, p_.sms_grad_reduce);
      r.min_s = w.grad_reduce_min_s;
      st.reduced = g_.add_collective(Phase::kGradReduce, kBackground, layer, mb, r, {wg});
      st.have_reduced = true;
    }
  }
  void bwd_second(ChunkState& st) {
    const size_t i = layers(st) - 1 - st.next;
    const int mb = st.c.mb, layer = p_.first_decoder_layer + static_cast<int>(i), C = st.compute;
    const LayerWork& w = work_[mb][i];
    note(st, g_.add_compute(Phase::kSharedExpertBwd, C, layer, mb, w.shared_expert_bwd));
    note(st, g_.add_compute(Phase::kRouterBwd, C, layer, mb, w.router_bwd, {st.dispatch}));
    st.deps = {note(st, g_.add_compute(Phase::kAttentionBwd, C, layer, mb, w.attention_bwd))};
    ++st.next;
  }

  Chunk finish(ChunkState& st) {
    const int mb = st.c.mb, C = st.compute;
    const DenseWork& d = dense_[mb];
    if (!st.c.backward) {
      if (p_.lm_head) st.deps = {note(st, g_.add_compute(Phase::kLmHead, C, -1, mb, d.lm_head, take(st)))};
    } else {
      for (int l = p_.num_dense_layers; l-- > 0;) {
        if (p_.recompute) {
          note(st, g_.add_compute(Phase::kDenseAttention, C, l, mb, d.attention, take(st), true));
          note(st, g_.add_compute(Phase::kDenseFfn, C, l, mb, d.ffn, {}, true));
        }
        note(st, g_.add_compute(Phase::kDenseFfnBwd, C, l, mb, d.ffn_bwd, take(st)));
        st.deps = {note(st, g_.add_compute(Phase::kDenseAttentionBwd, C, l, mb, d.attention_bwd))};
      }
    }
    if (p_.pp > 1) {
      Collective s = comm(peer_traffic(d.tokens, p_.pp_bytes_per_token), 1.0, 0.0, p_.sms_pp);
      s.p2p = true;
      s.to_peer = true;
      note(st, g_.add_collective(st.c.backward ? Phase::kPpSendBwd : Phase::kPpSend, st.comm, -1, mb, s,
                                 {st.c.last}));
    }
    out_.chunks.push_back(st.c);
    return st.c;
  }

  // A chunk on its own: every segment in order.
  Chunk alone(bool backward, int mb, std::vector<uint32_t> deps) {
    ChunkState st = start(backward, mb, kLane0Comm, std::move(deps));
    while (st.next < layers(st)) {
      if (backward) {
        bwd_first(st);
        bwd_second(st);
      } else {
        fwd_first(st);
        fwd_second(st);
      }
    }
    return finish(st);
  }

  // Two chunks overlapped on one compute stream, layer by layer: each chunk's all-to-all is issued before
  // the other chunk's compute segment, so it runs under that compute (DualPipe's forward/backward pairing,
  // DeepSeek-V3 report Figure 4; two-batch overlap of SGLang / DeepSeek prefill).
  std::pair<Chunk, Chunk> overlapped(bool a_backward, int a_mb, std::vector<uint32_t> a_deps, bool b_backward,
                                     int b_mb, std::vector<uint32_t> b_deps) {
    ChunkState a = start(a_backward, a_mb, kLane0Comm, std::move(a_deps));
    ChunkState b = start(b_backward, b_mb, kLane1Comm, std::move(b_deps));
    auto first = [&](ChunkState& st) { st.c.backward ? bwd_first(st) : fwd_first(st); };
    auto second = [&](ChunkState& st) { st.c.backward ? bwd_second(st) : fwd_second(st); };
    while (a.next < layers(a) || b.next < layers(b)) {
      if (a.next < layers(a)) first(a);
      if (b.next < layers(b)) first(b);
      if (a.next < layers(a)) second(a);
      if (b.next < layers(b)) second(b);
    }
    const Chunk ca = finish(a);
    const Chunk cb = finish(b);
    return {ca, cb};
  }

 private:
  uint32_t note(ChunkState& st, uint32_t id) {
    if (!st.started) st.c.first = id;
    st.started = true;
    st.c.last = id;
    return id;
  }
  static std::vector<uint32_t> take(ChunkState& st) {
    std::vector<uint32_t> d = std::move(st.deps);
    st.deps.clear();
    return d;
  }
  static Collective comm(std::shared_ptr<const SparseTraffic> t, double scale, double launch_s, int sms) {
    Collective c;
    c.traffic = std::move(t);
    c.scale = scale;
    c.launch_s = launch_s;
    c.sms = sms;
    return c;
  }
  Collective a2a(const std::shared_ptr<const SparseTraffic>& t, double bytes, bool transpose) const {
    Collective c = comm(t, bytes, p_.all_to_all_launch_s, p_.sms_all_to_all);
    c.transpose = transpose;
    return c;
  }

  const std::vector<std::vector<LayerWork>>& work_;
  const std::vector<DenseWork>& dense_;
  const ScheduleParams& p_;
  StepPlan& out_;
  StepGraph& g_;
};

}  // namespace

StepPlan build_step_graph(const std::vector<std::vector<LayerWork>>& work, const std::vector<DenseWork>& dense,
                          const ScheduleParams& p) {
  RACKEP_CHECK(!work.empty() && work.size() == dense.size(), "build_step_graph: inputs do not match");
  const int n = static_cast<int>(dense[0].tokens.size());
  StepPlan out{StepGraph(n), {}, static_cast<int>(work.size())};
  Builder b(work, dense, p, out);
  const int m = static_cast<int>(work.size());
  if (p.mode == Mode::kPrefill) {
    std::vector<uint32_t> deps;
    if (p.schedule == Schedule::kTwoBatch) {
      RACKEP_CHECK(m % 2 == 0, "two-batch: microbatches come in halves");
      for (int pass = 0; pass < m / 2; ++pass) {
        const auto [x, y] = b.overlapped(false, 2 * pass, deps, false, 2 * pass + 1, deps);
        deps = {x.last, y.last};
      }
    } else {
      for (int mb = 0; mb < m; ++mb) deps = {b.alone(false, mb, deps).last};
    }
    return out;
  }
  std::vector<Chunk> fwd(m), bwd(m);
  // A forward chunk waits for the previous forward (its PP send: the next input arrives in the same cadence);
  // a backward chunk for its own forward and the previous backward.
  auto fwd_deps = [&](int mb, std::vector<uint32_t> extra) {
    if (mb > 0) extra.push_back(fwd[mb - 1].last);
    return extra;
  };
  auto bwd_deps = [&](int mb, std::vector<uint32_t> extra) {
    extra.push_back(fwd[mb].last);
    if (mb > 0) extra.push_back(bwd[mb - 1].last);
    return extra;
  };
  switch (p.schedule) {
    case Schedule::kSequential:
      for (int mb = 0; mb < m; ++mb) {
        fwd[mb] = b.alone(false, mb, fwd_deps(mb, mb > 0 ? std::vector<uint32_t>{bwd[mb - 1].last}
                                                            : std::vector<uint32_t>{}));
        bwd[mb] = b.alone(true, mb, bwd_deps(mb, {}));
      }
      break;
    case Schedule::k1F1B: {
      const int warmup = std::min(p.pp - 1, m);
      for (int mb = 0; mb < warmup; ++mb) fwd[mb] = b.alone(false, mb, fwd_deps(mb, {}));
      for (int i = 0; i + warmup < m; ++i) {
        const int f = i + warmup;
        fwd[f] = b.alone(false, f, fwd_deps(f, i > 0 ? std::vector<uint32_t>{bwd[i - 1].last}
                                                        : std::vector<uint32_t>{}));
        bwd[i] = b.alone(true, i, bwd_deps(i, {}));
      }
      for (int i = std::max(0, m - warmup); i < m; ++i) bwd[i] = b.alone(true, i, bwd_deps(i, {}));
      break;
    }
    case Schedule::kDualPipe:
      // Pair k overlaps F(k) with B(k-1); the next pair starts when both are done.
      fwd[0] = b.alone(false, 0, {});
      for (int k = 1; k < m; ++k) {
        const auto [f, bk] = b.overlapped(false, k, fwd_deps(k, k >= 2 ? std::vector<uint32_t>{bwd[k - 2].last}
                                                                         : std::vector<uint32_t>{}),
                                          true, k - 1, bwd_deps(k - 1, {}));
        fwd[k] = f;
        bwd[k - 1] = bk;
      }
      bwd[m - 1] = b.alone(true, m - 1, bwd_deps(m - 1, {}));
      break;
    case Schedule::kTwoBatch:
      RACKEP_CHECK(false, "two-batch is a prefill schedule");
  }
  return out;
}

}  // namespace rackep::sim
