#include "sim/cost_model.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::sim {

Precision parse_precision(const std::string& text) {
  if (text == "bf16") return Precision::kBf16;
  if (text == "fp8") return Precision::kFp8;
  throw InputError("--precision", text, "must be bf16 or fp8");
}

const char* to_string(Precision p) {
  return p == Precision::kFp8 ? "fp8" : "bf16";
}

CostModel::CostModel(const ModelConfig& model, const GpuSpec& gpu, const Calibration& calibration,
                     Precision precision)
    : model_(model), gpu_(gpu), cal_(calibration), precision_(precision) {
  bf16_peak_ = gpu.bf16_flops_per_s.value;
  gemm_peak_ = precision == Precision::kFp8 ? gpu.fp8_flops_per_s.value : bf16_peak_;
}

double CostModel::gemm_s(double flops, double rows) const {
  if (flops <= 0.0) return 0.0;
  return flops / (gemm_peak_ * cal_.gemm_efficiency(rows));
}

double CostModel::attention_forward_s(double tokens, double attended_keys) const {
  if (tokens <= 0.0) return 0.0;
  const double proj = gemm_s(model_.attention_projection_flops_per_token() * tokens, tokens);
  const double core = model_.attention_core_flops_per_key() * attended_keys /
                      (bf16_peak_ * cal_.attention_forward_efficiency.value);
  return proj + core + cal_.kernel_launch_s.value;
}

double CostModel::attention_backward_s(double tokens, double attended_keys) const {
  if (tokens <= 0.0) return 0.0;
  const double proj = 2.0 * gemm_s(model_.attention_projection_flops_per_token() * tokens, tokens);
  const double core = 2.5 * model_.attention_core_flops_per_key() * attended_keys /
                      (bf16_peak_ * cal_.attention_backward_efficiency.value);
  return proj + core + cal_.kernel_launch_s.value;
}

double CostModel::router_forward_s(double tokens) const {
  if (tokens <= 0.0) return 0.0;
  return gemm_s(model_.router_flops_per_token() * tokens, tokens) + cal_.kernel_launch_s.value;
}

double CostModel::shared_experts_forward_s(double tokens) const {
  if (tokens <= 0.0 || model_.num_shared_experts == 0) return 0.0;
  const double weights =
      3.0 * model_.hidden * model_.expert_ffn * model_.num_shared_experts * weight_elt_bytes();
  return std::max(gemm_s(model_.shared_expert_flops_per_token() * tokens, tokens),
                  weights / gpu_.hbm_bytes_per_s.value) +
         cal_.kernel_launch_s.value;
}

double CostModel::dense_ffn_forward_s(double tokens) const {
  if (tokens <= 0.0) return 0.0;
  return gemm_s(model_.dense_ffn_flops_per_token() * tokens, tokens) + cal_.kernel_launch_s.value;
}

double CostModel::lm_head_forward_s(double tokens) const {
  if (tokens <= 0.0) return 0.0;
  return gemm_s(model_.lm_head_flops_per_token() * tokens, tokens) + cal_.kernel_launch_s.value;
}

double CostModel::experts_forward_s(const std::vector<int64_t>& instance_tokens) const {
  const double weight_read_s =
      3.0 * model_.hidden * model_.expert_ffn * weight_elt_bytes() / gpu_.hbm_bytes_per_s.value;
  double t = 0.0;
  for (int64_t n : instance_tokens) {
    if (n <= 0) continue;
    t += std::max(gemm_s(model_.expert_flops_per_pair() * static_cast<double>(n), static_cast<double>(n)),
                  weight_read_s);
  }
  return t + cal_.kernel_launch_s.value;
}

double CostModel::experts_backward_s(const std::vector<int64_t>& instance_tokens) const {
  const double weight_read_s =
      3.0 * model_.hidden * model_.expert_ffn * weight_elt_bytes() / gpu_.hbm_bytes_per_s.value;
  double t = 0.0;
  for (int64_t n : instance_tokens) {
    if (n <= 0) continue;
    t += std::max(
        2.0 * gemm_s(model_.expert_flops_per_pair() * static_cast<double>(n), static_cast<double>(n)),
        2.0 * weight_read_s);
  }
  return t + cal_.kernel_launch_s.value;
}

double CostModel::dispatch_bytes_per_token() const {
  const double h = model_.hidden;
  if (precision_ == Precision::kFp8) return h + (h / 128.0) * 4.0;
  return 2.0 * h;
}

double CostModel::moe_layer_saved_bytes(double tokens, double received_pairs) const {
  const double h = model_.hidden, f = model_.expert_ffn;
  const double attention = model_.attention_saved_bytes_per_token() * tokens;
  const double router = 4.0 * model_.num_experts * tokens;  // fp32 gate probabilities
  // expert input (2h), fc1 output (2 x 2f), SwiGLU output (2f), all BF16, per routed pair.
  const double experts = received_pairs * (2.0 * h + 6.0 * f);
  const double shared = tokens * model_.num_shared_experts * 6.0 * f;
  return attention + router + experts + shared + 2.0 * h * tokens;  // + the combine output
}

double CostModel::dense_layer_saved_bytes(double tokens) const {
  const double h = model_.hidden;
  return model_.attention_saved_bytes_per_token() * tokens + tokens * (2.0 * h + 6.0 * model_.dense_ffn);
}

}  // namespace rackep::sim
