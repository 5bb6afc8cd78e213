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

class Builder {
 public:
  Builder(const std::vector<std::vector<LayerWork>>& work, const std::vector<DenseWork>& dense,
          const ScheduleParams& p, StepPlan& out)
      : work_(work), dense_(dense), p_(p), out_(out), g_(out.graph) {}

  // Emits the forward chunk of `mb` on `lane`; its first op waits for `deps`.
  Chunk forward(int mb, int lane, std::vector<uint32_t> deps) {
    Chunk c{false, mb, lane, 0, 0};
    bool first = true;
    auto note = [&](uint32_t id) {
      if (first) c.first = id;
      first = false;
      c.last = id;
      return id;
    };
    const int C = compute_stream(lane), K = comm_stream(lane);
    const DenseWork& d = dense_[mb];
    for (int l = 0; l < p_.num_dense_layers; ++l) {
      note(g_.add_compute(Phase::kDenseAttention, C, l, mb, d.attention, deps));
      deps.clear();
      note(g_.add_compute(Phase::kDenseFfn, C, l, mb, d.ffn));
    }
    for (size_t l = 0; l < work_[mb].size(); ++l) {
      const int layer = p_.first_decoder_layer + static_cast<int>(l);
      const LayerWork& w = work_[mb][l];
      const uint32_t att = note(g_.add_compute(Phase::kAttention, C, layer, mb, w.attention, deps));
      if (w.placement_update) {
        Collective u = comm(w.placement_update, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
        g_.add_collective(Phase::kPlacementUpdate, kBackground, layer, mb, u, {att});
      }
      uint32_t last = note(g_.add_compute(Phase::kRouter, C, layer, mb, w.router));
      if (w.allgather) {
        Collective a = comm(w.allgather, 1.0, p_.allgather_launch_s, p_.sms_allgather);
        last = note(g_.add_collective(Phase::kLoadAllgather, K, layer, mb, a, {last}));
      }
      const uint32_t plan = note(g_.add_compute(Phase::kPlan, C, layer, mb, w.plan, {last}));
      std::vector<uint32_t> dispatch_deps;
      if (w.weight_sync) {
        Collective s = comm(w.weight_sync, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
        s.tail_s = w.weight_sync_tail_s;
        note(g_.add_collective(Phase::kWeightSync, K, layer, mb, s, {plan}));
      }
      const uint32_t rr = note(g_.add_compute(Phase::kReroute, C, layer, mb, w.reroute));
      dispatch_deps.push_back(rr);
      note(g_.add_compute(Phase::kSharedExpert, C, layer, mb, w.shared_expert));
      const uint32_t dp = note(g_.add_collective(Phase::kDispatch, K, layer, mb, a2a(w.tokens, p_.dispatch_bytes, false),
                                                 dispatch_deps));
      const uint32_t ex = note(g_.add_compute(Phase::kExperts, C, layer, mb, w.experts, {dp}));
      const uint32_t cb =
          note(g_.add_collective(Phase::kCombine, K, layer, mb, a2a(w.tokens, p_.combine_bytes, true), {ex}));
      deps = {cb};
    }
    if (p_.lm_head) note(g_.add_compute(Phase::kLmHead, C, -1, mb, d.lm_head, deps));
    if (p_.pp > 1) {
      Collective s = comm(peer_traffic(d.tokens, p_.pp_bytes_per_token), 1.0, 0.0, p_.sms_pp);
      s.p2p = true;
      s.to_peer = true;
      note(g_.add_collective(Phase::kPpSend, K, -1, mb, s, {c.last}));
    }
    out_.chunks.push_back(c);
    return c;
  }

  Chunk backward(int mb, int lane, std::vector<uint32_t> deps) {
    Chunk c{true, mb, lane, 0, 0};
    bool first = true;
    auto note = [&](uint32_t id) {
      if (first) c.first = id;
      first = false;
      c.last = id;
      return id;
    };
    const int C = compute_stream(lane), K = comm_stream(lane);
    const int W = p_.schedule == Schedule::kDualPipe ? static_cast<int>(kWgrad) : C;
    const DenseWork& d = dense_[mb];
    std::vector<uint32_t> wgrads;
    if (p_.lm_head) {
      note(g_.add_compute(Phase::kLmHeadBwd, C, -1, mb, d.lm_head_bwd, deps));
      deps = {c.last};
    }
    uint32_t reduced = 0;
    bool have_reduced = false;
    for (size_t i = work_[mb].size(); i-- > 0;) {
      const int layer = p_.first_decoder_layer + static_cast<int>(i);
      const LayerWork& w = work_[mb][i];
      if (p_.recompute) {
        // Full recompute re-runs the layer's forward with the saved plan (no gather, plan or weight_sync).
        const uint32_t a = note(g_.add_compute(Phase::kAttention, C, layer, mb, w.attention, deps, true));
        deps.clear();
        note(g_.add_compute(Phase::kRouter, C, layer, mb, w.router, {}, true));
        note(g_.add_compute(Phase::kSharedExpert, C, layer, mb, w.shared_expert, {}, true));
        const uint32_t dp = note(g_.add_collective(Phase::kDispatch, K, layer, mb,
                                                   a2a(w.tokens, p_.dispatch_bytes, false), {a}, true));
        const uint32_t ex = note(g_.add_compute(Phase::kExperts, C, layer, mb, w.experts, {dp}, true));
        deps = {note(g_.add_collective(Phase::kCombine, K, layer, mb, a2a(w.tokens, p_.combine_bytes, true),
                                       {ex}, true))};
      }
      std::vector<uint32_t> dgrad_deps;
      if (w.weight_restore) {
        std::vector<uint32_t> rdeps = deps;
        if (have_reduced) rdeps.push_back(reduced);  // the shared slots hold the previous layer's gradients
        Collective s = comm(w.weight_sync, 1.0, p_.weight_sync_launch_s, p_.sms_weight_sync);
        s.tail_s = w.weight_sync_tail_s;
        dgrad_deps.push_back(note(g_.add_collective(Phase::kWeightRestore, K, layer, mb, s, rdeps)));
      }
      const uint32_t cbb = note(g_.add_collective(Phase::kCombineBwd, K, layer, mb,
                                                  a2a(w.tokens, p_.combine_bwd_bytes, false), deps));
      dgrad_deps.push_back(cbb);
      const uint32_t dg = note(g_.add_compute(Phase::kExpertsDgrad, C, layer, mb, w.experts_dgrad, dgrad_deps));
      const uint32_t wg = g_.add_compute(Phase::kExpertsWgrad, W, layer, mb, w.experts_wgrad, {dg});
      if (W == C) note(wg);
      wgrads.push_back(wg);
      if (w.grad_reduce) {
        Collective r = comm(w.grad_reduce, 1.0, p_.weight_sync_launch_s, p_.sms_grad_reduce);
        r.min_s = w.grad_reduce_min_s;
        reduced = g_.add_collective(Phase::kGradReduce, kBackground, layer, mb, r, {wg});
        have_reduced = true;
      }
      const uint32_t dpb = note(g_.add_collective(Phase::kDispatchBwd, K, layer, mb,
                                                  a2a(w.tokens, p_.dispatch_bwd_bytes, true), {dg}));
      note(g_.add_compute(Phase::kSharedExpertBwd, C, layer, mb, w.shared_expert_bwd));
      note(g_.add_compute(Phase::kRouterBwd, C, layer, mb, w.router_bwd, {dpb}));
      deps = {note(g_.add_compute(Phase::kAttentionBwd, C, layer, mb, w.attention_bwd))};
    }
    for (int l = p_.num_dense_layers; l-- > 0;) {
      if (p_.recompute) {
        note(g_.add_compute(Phase::kDenseAttention, C, l, mb, d.attention, deps, true));
        deps.clear();
        note(g_.add_compute(Phase::kDenseFfn, C, l, mb, d.ffn, {}, true));
      }
      note(g_.add_compute(Phase::kDenseFfnBwd, C, l, mb, d.ffn_bwd, deps));
      deps = {note(g_.add_compute(Phase::kDenseAttentionBwd, C, l, mb, d.attention_bwd))};
    }
    // The chunk is done when its weight gradients are: a join on the compute stream.
    if (W != C && !wgrads.empty()) {
      std::vector<double> zero(g_.num_ranks(), 0.0);
      note(g_.add_compute(Phase::kExpertsWgrad, C, -1, mb, zero, wgrads));
    }
    if (p_.pp > 1) {
      Collective s = comm(peer_traffic(d.tokens, p_.pp_bytes_per_token), 1.0, 0.0, p_.sms_pp);
      s.p2p = true;
      s.to_peer = true;
      note(g_.add_collective(Phase::kPpSendBwd, K, -1, mb, s, {c.last}));
    }
    out_.chunks.push_back(c);
    return c;
  }

 private:
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
    if (p.schedule == Schedule::kTwoBatch) {
      RACKEP_CHECK(m % 2 == 0, "two-batch: microbatches come in halves");
      std::vector<uint32_t> deps;
      for (int pass = 0; pass < m / 2; ++pass) {
        const Chunk a = b.forward(2 * pass, 0, deps);
        const Chunk c = b.forward(2 * pass + 1, 1, deps);
        deps = {a.last, c.last};
      }
    } else {
      std::vector<uint32_t> deps;
      for (int mb = 0; mb < m; ++mb) deps = {b.forward(mb, 0, deps).last};
    }
    return out;
  }
  std::vector<Chunk> fwd(m), bwd(m);
  // Forward chunks wait for the previous forward's PP send (its input comes from the previous stage in the
  // same cadence); backward chunks for their own forward and the previous backward's PP send.
  auto next_fwd = [&](int mb, int lane, std::vector<uint32_t> extra) {
    if (mb > 0) extra.push_back(fwd[mb - 1].last);
    fwd[mb] = b.forward(mb, lane, extra);
  };
  auto next_bwd = [&](int mb, int lane, std::vector<uint32_t> extra) {
    extra.push_back(fwd[mb].last);
    if (mb > 0) extra.push_back(bwd[mb - 1].last);
    bwd[mb] = b.backward(mb, lane, extra);
  };
  switch (p.schedule) {
    case Schedule::kSequential:
      for (int mb = 0; mb < m; ++mb) {
        next_fwd(mb, 0, mb > 0 ? std::vector<uint32_t>{bwd[mb - 1].last} : std::vector<uint32_t>{});
        next_bwd(mb, 0, {});
      }
      break;
    case Schedule::k1F1B: {
      const int warmup = std::min(p.pp - 1, m);
      for (int mb = 0; mb < warmup; ++mb) next_fwd(mb, 0, {});
      for (int i = 0; i + warmup < m; ++i) {
        next_fwd(i + warmup, 0, i > 0 ? std::vector<uint32_t>{bwd[i - 1].last} : std::vector<uint32_t>{});
        next_bwd(i, 0, {});
      }
      for (int i = std::max(0, m - warmup); i < m; ++i) next_bwd(i, 0, {});
      break;
    }
    case Schedule::kDualPipe:
      // Pair k runs F(k) on lane 0 against B(k-1) on lane 1; the next pair starts when both are done.
      next_fwd(0, 0, {});
      for (int k = 1; k <= m; ++k) {
        if (k < m) next_fwd(k, 0, k >= 2 ? std::vector<uint32_t>{bwd[k - 2].last} : std::vector<uint32_t>{});
        next_bwd(k - 1, 1, k >= 2 ? std::vector<uint32_t>{fwd[k - 1].last} : std::vector<uint32_t>{});
      }
      break;
    case Schedule::kTwoBatch:
      RACKEP_CHECK(false, "two-batch is a prefill schedule");
  }
  return out;
}

}  // namespace rackep::sim
