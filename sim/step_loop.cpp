#include "sim/step_loop.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::sim {
namespace {

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end());
}

class Loop {
 public:
  Loop(const ComposeParams& p, TimelineSink* sink, int n) : p_(p), sink_(sink), t_(n, 0.0) {}

  void forward(const std::vector<LayerStep>& layers, const DenseInputs& dense, int64_t mb, StepTimes& out) {
    mb_ = mb;
    for (int d = 0; d < p_.num_dense_layers; ++d) {
      layer_ = d;
      compute("attention", dense.attention_fwd_s);
      compute("dense FFN", dense.ffn_fwd_s);
    }
    for (size_t l = 0; l < layers.size(); ++l) {
      layer_ = p_.num_dense_layers + static_cast<int>(l);
      moe_forward(layers[l], out, /*recomputed=*/false);
    }
    compute("LM head", dense.lm_head_fwd_s);
  }

  void backward(const std::vector<LayerStep>& layers, const DenseInputs& dense, int64_t mb, StepTimes& out) {
    mb_ = mb;
    compute("LM head backward", dense.lm_head_fwd_s, 2.0);
    for (size_t i = layers.size(); i-- > 0;) {
      layer_ = p_.num_dense_layers + static_cast<int>(i);
      moe_backward(layers[i], out);
    }
    for (int d = p_.num_dense_layers; d-- > 0;) {
      layer_ = d;
      if (p_.recompute) {
        compute("attention (recompute)", dense.attention_fwd_s);
        compute("dense FFN (recompute)", dense.ffn_fwd_s);
      }
      compute("dense FFN backward", dense.ffn_fwd_s, 2.0);
      compute("attention backward", dense.attention_bwd_s);
    }
  }

  double sync() const { return max_of(t_); }
  void barrier() { std::fill(t_.begin(), t_.end(), sync()); }

 private:
  void emit(int rank, int lane, const char* name, double start, double end) {
    if (sink_ != nullptr && end > start) sink_->on_event({rank, lane, name, start, end, layer_, mb_});
  }
  void compute(const char* name, const std::vector<double>& d, double factor = 1.0) {
    if (d.empty()) return;
    for (size_t r = 0; r < t_.size(); ++r) {
      const double end = t_[r] + factor * d[r];
      emit(static_cast<int>(r), 0, name, t_[r], end);
      t_[r] = end;
    }
  }
  // A collective that starts when every rank is ready.
  void collective(const char* name, const std::vector<double>& d, double launch_s) {
    const double start = sync();
    for (size_t r = 0; r < t_.size(); ++r) {
      const double end = start + launch_s + d[r];
      emit(static_cast<int>(r), 1, name, start, end);
      t_[r] = end;
    }
  }

  void moe_forward(const LayerStep& s, StepTimes& out, bool recomputed) {
    compute(recomputed ? "attention (recompute)" : "attention", s.attention_fwd_s);
    compute("router", s.router_fwd_s);
    const size_t n = t_.size();
    std::vector<double> shared_end(n);
    if (!recomputed) {
      const double start = sync();
      double c = start;
      if (!s.allgather_s.empty()) {
        const double end = c + p_.allgather_launch_s + max_of(s.allgather_s);
        for (size_t r = 0; r < n; ++r) emit(static_cast<int>(r), 1, "load all-gather", c, end);
        c = end;
      }
      const double plan_end = c + s.plan_s;
      for (size_t r = 0; r < n; ++r) emit(static_cast<int>(r), 0, "plan", c, plan_end);
      double ws_end = plan_end;
      if (!s.weight_sync_s.empty()) {
        ws_end = plan_end + p_.weight_sync_launch_s + max_of(s.weight_sync_s);
        for (size_t r = 0; r < n; ++r) emit(static_cast<int>(r), 1, "weight_sync", plan_end, ws_end);
      }
      double ready_max = start;
      double reroute_max = plan_end;
      for (size_t r = 0; r < n; ++r) {
        const double reroute_end = plan_end + s.reroute_s[r];
        emit(static_cast<int>(r), 0, "reroute", plan_end, reroute_end);
        shared_end[r] = reroute_end + s.shared_fwd_s[r];
        emit(static_cast<int>(r), 0, "shared expert", reroute_end, shared_end[r]);
        t_[r] = std::max(ws_end, reroute_end);
        ready_max = std::max(ready_max, t_[r]);
        reroute_max = std::max(reroute_max, reroute_end);
      }
      out.exposed_overhead_s += ready_max - start;
      out.exposed_plan_s += plan_end - start;
      out.exposed_weight_sync_s += ready_max - reroute_max;  // weight_sync not hidden under reroute
    } else {
      for (size_t r = 0; r < n; ++r) {
        shared_end[r] = t_[r] + s.shared_fwd_s[r];
        emit(static_cast<int>(r), 0, "shared expert (recompute)", t_[r], shared_end[r]);
      }
    }
    collective(recomputed ? "dispatch (recompute)" : "dispatch", s.dispatch_s, p_.all_to_all_launch_s);
    for (size_t r = 0; r < n; ++r) {
      const double begin = std::max(t_[r], shared_end[r]);
      t_[r] = begin + s.experts_fwd_s[r];
      emit(static_cast<int>(r), 0, recomputed ? "experts (recompute)" : "experts", begin, t_[r]);
    }
    collective(recomputed ? "combine (recompute)" : "combine", s.combine_s, p_.all_to_all_launch_s);
  }

  void moe_backward(const LayerStep& s, StepTimes& out) {
    const size_t n = t_.size();
    if (s.weight_restore) {
      const double start = sync();
      collective("weight restore", s.weight_sync_s, p_.weight_sync_launch_s);
      const double d = sync() - start;
      out.exposed_overhead_s += d;
      out.exposed_weight_sync_s += d;
    }
    if (p_.recompute) {
      // Full recompute re-runs the layer's forward (with the saved plan: no new planning or weight_sync).
      moe_forward(s, out, /*recomputed=*/true);
    }
    collective("combine backward", s.combine_bwd_s, p_.all_to_all_launch_s);
    compute("experts backward", s.experts_bwd_s);
    std::vector<double> gr_end;
    if (!s.grad_reduce_s.empty()) {
      const double start = sync();  // replica gradients exist once every rank's expert backward is done
      gr_end.resize(n);
      for (size_t r = 0; r < n; ++r) {
        gr_end[r] = start + p_.weight_sync_launch_s + s.grad_reduce_s[r];
        emit(static_cast<int>(r), 1, "grad_reduce", start, gr_end[r]);
      }
    }
    collective("dispatch backward", s.dispatch_bwd_s, p_.all_to_all_launch_s);
    compute("shared expert backward", s.shared_fwd_s, 2.0);
    compute("router backward", s.router_fwd_s, 2.0);
    compute("attention backward", s.attention_bwd_s);
    if (!gr_end.empty()) {
      const double before = sync();
      for (size_t r = 0; r < n; ++r) t_[r] = std::max(t_[r], gr_end[r]);
      const double d = sync() - before;
      out.exposed_overhead_s += d;
      out.exposed_grad_reduce_s += d;
    }
  }

  const ComposeParams& p_;
  TimelineSink* sink_;
  std::vector<double> t_;
  int layer_ = -1;
  int64_t mb_ = 0;
};

double peak_activation(const std::vector<std::vector<LayerStep>>& steps,
                       const std::vector<DenseInputs>& dense, const ComposeParams& p) {
  double peak = 0.0;
  for (size_t mb = 0; mb < steps.size(); ++mb) {
    const size_t n = dense[mb].saved_bytes.size();
    for (size_t r = 0; r < n; ++r) {
      double kept = 0.0, working = dense[mb].working_bytes[r];
      for (const LayerStep& s : steps[mb]) working = std::max(working, s.working_bytes[r]);
      if (p.mode == Mode::kTrain) {
        kept = p.num_dense_layers * dense[mb].saved_bytes[r];
        for (const LayerStep& s : steps[mb]) kept += s.saved_bytes[r];
        // Without recompute the largest layer's activations are part of `kept`; with it, one layer is
        // rebuilt.
        peak = std::max(peak, p.recompute ? kept + working : kept);
      } else {
        peak = std::max(peak, working);
      }
    }
  }
  return peak;
}

}  // namespace

StepTimes compose_step(const std::vector<std::vector<LayerStep>>& steps,
                       const std::vector<DenseInputs>& dense, const ComposeParams& params,
                       TimelineSink* sink) {
  RACKEP_CHECK(!steps.empty() && steps.size() == dense.size(), "compose_step: inputs do not match");
  const int n = static_cast<int>(dense[0].lm_head_fwd_s.size());
  Loop loop(params, sink, n);
  StepTimes out;
  for (size_t mb = 0; mb < steps.size(); ++mb) {
    const double begin = loop.sync();
    loop.forward(steps[mb], dense[mb], static_cast<int64_t>(mb), out);
    if (params.mode == Mode::kTrain) {
      loop.backward(steps[mb], dense[mb], static_cast<int64_t>(mb), out);
    } else {
      loop.barrier();  // the next prefill batch starts when this one has finished everywhere
    }
    out.pass_s.push_back(loop.sync() - begin);
  }
  out.total_s = loop.sync();
  out.peak_activation_bytes = peak_activation(steps, dense, params);
  return out;
}

}  // namespace rackep::sim
