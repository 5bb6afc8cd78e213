// File: sim/cost_model.hpp
// Compute time and memory of one rank (docs/HARDWARE.md "Cost model"): FLOPs from the model config, peak rates and
// HBM bandwidth from the topology's GPU, efficiencies from the calibration file. Pure functions of their
// inputs. Usage:
//   CostModel cm(model, topology.gpu, calibration, Precision::kFp8, Precision::kFp8);
//   MoeLayerCompute c = cm.moe_layer(4096, 4096 * 2048.5, {4096, 3900, 0, 12}, /*train=*/true);
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
/// "bf16" / "fp8"; InputError(flag, ...).
Precision parse_precision(const std::string& text, const std::string& flag = "--precision");
const char* to_string(Precision p);

/// Compute time of one MoE layer on one rank, seconds at the whole GPU (docs/HARDWARE.md "Cost model").
/// Every phase = its GEMMs (FLOPs / (peak x efficiency)) + its memory-bound kernels (bytes / (HBM bandwidth x
/// memory-bound efficiency)) + one launch cost.
struct MoeLayerCompute {
  double attention = 0.0, router = 0.0, shared_expert = 0.0, experts = 0.0;
  double attention_bwd = 0.0, router_bwd = 0.0, shared_expert_bwd = 0.0, experts_dgrad = 0.0,
         experts_wgrad = 0.0;
};
struct DenseLayerCompute {
  double attention = 0.0, ffn = 0.0, attention_bwd = 0.0, ffn_bwd = 0.0;
};

class CostModel {
 public:
  /// `backward_comm` is the element type of combine_bwd (the gradient before the down-projection).
  CostModel(const ModelConfig& model, const GpuSpec& gpu, const Calibration& calibration, Precision precision,
            Precision backward_comm);

  /// time = flops / (peak x eta(rows)) with eta from the calibration curve of `pass`.
  double gemm_s(double flops, double rows, GemmPass pass = GemmPass::kForward) const;
  /// bytes / (HBM bandwidth x memory-bound efficiency).
  double memory_s(double bytes) const;

  /// One MoE layer of a rank with `tokens` source tokens attending to `attended_keys` keys in all, hosting
  /// expert instances that receive `instance_tokens` routed pairs each. Backward fields stay 0 unless
  /// `train`.
  MoeLayerCompute moe_layer(double tokens, double attended_keys, const std::vector<int64_t>& instance_tokens,
                            bool train) const;
  DenseLayerCompute dense_layer(double tokens, double attended_keys, bool train) const;
  double lm_head_forward_s(double tokens) const;

  /// Attention forward / backward alone (used by moe_layer and dense_layer).
  double attention_forward_s(double tokens, double attended_keys) const;
  double attention_backward_s(double tokens, double attended_keys) const;

  /// Bytes of one dispatched token copy (BF16: 2h; FP8: h + h/128 x 4 scale bytes) and of one combined copy.
  double dispatch_bytes_per_token() const;
  double combine_bytes_per_token() const { return 2.0 * model_.hidden; }
  /// Backward all-to-alls: combine_bwd carries the gradient before the down-projection along the dispatch
  /// direction, dispatch_bwd the input gradients back along the combine direction (docs/HARDWARE.md).
  double combine_bwd_bytes_per_token() const;
  double dispatch_bwd_bytes_per_token() const { return 2.0 * model_.hidden; }
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
  const AttentionEfficiency& attention_efficiency() const { return attention_eff_; }

 private:
  double quantize_bytes(double elements) const;
  double attention_bytes_per_token() const;  ///< memory-bound kernels around attention, forward  ///< BF16 -> FP8 cast with 1x128 scales (0 in BF16)
  double expert_gemm_s(const std::vector<int64_t>& instance_tokens, double flops_factor, GemmPass pass,
                       double weight_reads) const;

  const ModelConfig& model_;
  const GpuSpec& gpu_;
  const Calibration& cal_;
  Precision precision_;
  Precision backward_comm_;
  double gemm_peak_ = 0.0;
  double bf16_peak_ = 0.0;
  AttentionEfficiency attention_eff_;
};

}  // namespace rackep::sim
