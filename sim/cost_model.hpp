// File: sim/cost_model.hpp
// Compute time and memory of one rank (HARDWARE.md §E.2, §E.4): FLOPs from the model config, peak rates and
// HBM bandwidth from the topology's GPU, efficiencies from the calibration file. Pure functions of their
// inputs. Usage:
//   CostModel cm(model, topology.gpu, calibration, Precision::kBf16);
//   double t_s = cm.experts_forward_s({4096, 3900, 0, 12});   // tokens of each instance hosted by a rank
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/calibration.hpp"
#include "sim/model_config.hpp"
#include "sim/topology.hpp"

namespace rackep::sim {

/// GEMM precision: the peak rate used for GEMMs and the element size of dispatched tokens and expert weights.
/// Attention cores and combine always run in BF16.
enum class Precision { kBf16, kFp8 };
Precision parse_precision(const std::string& text);  ///< "bf16" / "fp8"; InputError("--precision", ...)
const char* to_string(Precision p);

class CostModel {
 public:
  CostModel(const ModelConfig& model, const GpuSpec& gpu, const Calibration& calibration,
            Precision precision);

  /// time = flops / (peak x eta(rows)) with eta from the calibration curve.
  double gemm_s(double flops, double rows) const;
  /// Attention forward of `tokens` tokens whose attended keys sum to `attended_keys` (projections as GEMMs,
  /// core at the calibrated attention efficiency) + one kernel launch. 0 tokens -> 0.
  double attention_forward_s(double tokens, double attended_keys) const;
  /// Backward: projections 2x, core 2.5x (FlashAttention-style recompute inside the kernel), HARDWARE.md
  /// §E.2.
  double attention_backward_s(double tokens, double attended_keys) const;
  double router_forward_s(double tokens) const;
  double shared_experts_forward_s(double tokens) const;  ///< 0 when the model has no shared expert
  double dense_ffn_forward_s(double tokens) const;
  double lm_head_forward_s(double tokens) const;
  /// Grouped GEMM over the rank's instances: sum over instances with n > 0 tokens of
  /// max(6hf n / (peak eta(n)), expert weight bytes / HBM bandwidth), + one launch.
  double experts_forward_s(const std::vector<int64_t>& instance_tokens) const;
  /// dgrad + wgrad: 12hf n per instance, floor of two weight reads.
  double experts_backward_s(const std::vector<int64_t>& instance_tokens) const;

  /// Bytes of one dispatched token copy (BF16: 2h; FP8: h + h/128 x 4 scale bytes) and of one combined copy.
  double dispatch_bytes_per_token() const;
  double combine_bytes_per_token() const { return 2.0 * model_.hidden; }
  /// Weight element size of the experts (1 for FP8, 2 for BF16).
  int weight_elt_bytes() const { return precision_ == Precision::kFp8 ? 1 : 2; }

  /// Activation bytes one MoE layer keeps for the backward pass on a rank with `tokens` source tokens and
  /// `received_pairs` routed pairs (attention state, router, expert inputs, fc1 outputs, SwiGLU outputs,
  /// shared experts), BF16.
  double moe_layer_saved_bytes(double tokens, double received_pairs) const;
  double dense_layer_saved_bytes(double tokens) const;
  /// With full recompute only the layer input (2h per token) is kept.
  double recompute_saved_bytes(double tokens) const { return 2.0 * model_.hidden * tokens; }

  const ModelConfig& model() const { return model_; }
  double gemm_peak_flops_per_s() const { return gemm_peak_; }

 private:
  const ModelConfig& model_;
  const GpuSpec& gpu_;
  const Calibration& cal_;
  Precision precision_;
  double gemm_peak_ = 0.0;
  double bf16_peak_ = 0.0;
};

}  // namespace rackep::sim
