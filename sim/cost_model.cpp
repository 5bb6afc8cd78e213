#include "sim/cost_model.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::sim {

Precision parse_precision(const std::string& text, const std::string& flag) {
  if (text == "bf16") return Precision::kBf16;
  if (text == "fp8") return Precision::kFp8;
  throw InputError(flag, text, "must be bf16 or fp8");
}

const char* to_string(Precision p) {
  return p == Precision::kFp8 ? "fp8" : "bf16";
}

namespace {
const char* attention_type(const ModelConfig& m) {
  return m.attention.kind == AttentionKind::kMla ? "mla" : "gqa";
}
}  // namespace

CostModel::CostModel(const ModelConfig& model, const GpuSpec& gpu, const Calibration& calibration,
                     Precision precision, Precision backward_comm)
    : model_(model),
      gpu_(gpu),
      cal_(calibration),
      precision_(precision),
      backward_comm_(backward_comm),
      attention_eff_(calibration.attention_for(gpu.arch, attention_type(model))) {
  bf16_peak_ = gpu.bf16_flops_per_s.value;
  gemm_peak_ = precision == Precision::kFp8 ? gpu.fp8_flops_per_s.value : bf16_peak_;
}

double CostModel::gemm_s(double flops, double rows, GemmPass pass) const {
  if (flops <= 0.0) return 0.0;
  return flops / (gemm_peak_ * cal_.gemm_efficiency(rows, pass));
}

double CostModel::memory_s(double bytes) const {
  if (bytes <= 0.0) return 0.0;
  return bytes / (gpu_.hbm_bytes_per_s.value * cal_.memory_bound_efficiency.value);
}

double CostModel::quantize_bytes(double elements) const {
  // FP8 training casts every GEMM input: read BF16, write FP8 plus one fp32 scale per 1x128 tile.
  return precision_ == Precision::kFp8 ? elements * (2.0 + 1.0 + 4.0 / 128.0) : 0.0;
}

// Memory-bound kernels of one decoder layer, bytes per token (docs/HARDWARE.md "Memory-bound kernels"):
//   attention: input RMSNorm (read + write 2h), its FP8 cast, MLA's q/kv latent norms, RoPE on the rope
//              dimensions of q and k, the cast of the attention output for o_proj, the residual add
//              (read 2 x 2h, write 2h);
//   router:    fp32 logits -> scores, top-k, weights (read + write 4E, + top-k indices and weights);
//   experts:   per routed pair: permute into the grouped-GEMM layout (read + write one dispatched copy),
//              SwiGLU over the fc1 output (read 2 x 2f, write 2f) and the FP8 cast of its output, unpermute
//              of the fc2 output (read + write 2h);
//   shared:    SwiGLU and casts per token;
//   backward:  every element-wise kernel reads its input and the incoming gradient and writes a gradient
//              (2x the forward bytes), plus the transposed FP8 copies the wgrad GEMMs read.
double CostModel::attention_bytes_per_token() const {
  const AttentionConfig& a = model_.attention;
  const double h = model_.hidden;
  double rope = 0.0, latent = 0.0, out = 0.0;
  if (a.kind == AttentionKind::kMla) {
    rope = 2.0 * 2.0 * (static_cast<double>(a.num_heads) + 1.0) * a.qk_rope_head_dim;
    latent = 2.0 * 2.0 * (a.q_lora_rank + a.kv_lora_rank) + quantize_bytes(a.q_lora_rank + a.kv_lora_rank);
    out = static_cast<double>(a.num_heads) * a.v_head_dim;
  } else {
    rope = 2.0 * 2.0 * (static_cast<double>(a.num_heads) + a.num_kv_heads) * a.head_dim;
    out = static_cast<double>(a.num_heads) * a.head_dim;
  }
  return 4.0 * h + quantize_bytes(h) + latent + rope + quantize_bytes(out) + 6.0 * h;
}

double CostModel::attention_forward_s(double tokens, double attended_keys) const {
  if (tokens <= 0.0) return 0.0;
  const double proj = gemm_s(model_.attention_projection_flops_per_token() * tokens, tokens);
  const double core = model_.attention_core_flops_per_key() * attended_keys /
                      (bf16_peak_ * attention_eff_.forward.value);
  return proj + core + memory_s(attention_bytes_per_token() * tokens) + cal_.kernel_launch_s.value;
}

double CostModel::attention_backward_s(double tokens, double attended_keys) const {
  if (tokens <= 0.0) return 0.0;
  const double flops = model_.attention_projection_flops_per_token() * tokens;
  const double proj = gemm_s(flops, tokens, GemmPass::kDgrad) + gemm_s(flops, tokens, GemmPass::kWgrad);
  // The core backward recomputes QK^T inside the kernel: 2.5x the forward FLOPs (FlashAttention-2 paper).
  const double core = 2.5 * model_.attention_core_flops_per_key() * attended_keys /
                      (bf16_peak_ * attention_eff_.backward.value);
  const double bytes = 2.0 * attention_bytes_per_token() + quantize_bytes(model_.hidden);
  return proj + core + memory_s(bytes * tokens) + cal_.kernel_launch_s.value;
}

double CostModel::expert_gemm_s(const std::vector<int64_t>& instance_tokens, double flops_factor, GemmPass pass,
                                double weight_reads) const {
  const double weight_read_s =
      weight_reads * 3.0 * model_.hidden * model_.expert_ffn * weight_elt_bytes() / gpu_.hbm_bytes_per_s.value;
  double t = 0.0;
  for (int64_t n : instance_tokens) {
    if (n <= 0) continue;
    const double x = static_cast<double>(n);
    t += std::max(gemm_s(flops_factor * model_.expert_flops_per_pair() * x, x, pass), weight_read_s);
  }
  return t;
}

MoeLayerCompute CostModel::moe_layer(double tokens, double attended_keys,
                                     const std::vector<int64_t>& instance_tokens, bool train) const {
  MoeLayerCompute c;
  const double h = model_.hidden, f = model_.expert_ffn, e = model_.num_experts, k = model_.top_k;
  const double launch = cal_.kernel_launch_s.value;
  double pairs = 0.0;
  for (int64_t n : instance_tokens) pairs += static_cast<double>(std::max<int64_t>(n, 0));
  // Bytes of the memory-bound kernels (see the banner above attention_forward_s).
  const double router_bytes = 2.0 * 4.0 * e + 8.0 * k;
  const double copy_bytes = precision_ == Precision::kFp8 ? h + h / 128.0 * 4.0 : 2.0 * h;
  const double pair_bytes = 2.0 * copy_bytes + 6.0 * f + quantize_bytes(f) + 4.0 * h;
  const double shared_bytes = model_.num_shared_experts * (6.0 * f + quantize_bytes(f));
  if (tokens > 0.0) {
    c.attention = attention_forward_s(tokens, attended_keys);
    c.router = gemm_s(model_.router_flops_per_token() * tokens, tokens) + memory_s(router_bytes * tokens) + launch;
    if (model_.num_shared_experts > 0) {
      const double weights = 3.0 * h * f * model_.num_shared_experts * weight_elt_bytes();
      c.shared_expert = std::max(gemm_s(model_.shared_expert_flops_per_token() * tokens, tokens),
                                 weights / gpu_.hbm_bytes_per_s.value) +
                        memory_s(shared_bytes * tokens) + launch;
    }
  }
  if (pairs > 0.0) c.experts = expert_gemm_s(instance_tokens, 1.0, GemmPass::kForward, 1.0) +
                               memory_s(pair_bytes * pairs) + launch;
  if (!train) return c;
  if (tokens > 0.0) {
    c.attention_bwd = attention_backward_s(tokens, attended_keys);
    c.router_bwd = 2.0 * gemm_s(model_.router_flops_per_token() * tokens, tokens, GemmPass::kDgrad) +
                   memory_s(2.0 * router_bytes * tokens) + launch;
    if (model_.num_shared_experts > 0) {
      const double flops = model_.shared_expert_flops_per_token() * tokens;
      c.shared_expert_bwd = gemm_s(flops, tokens, GemmPass::kDgrad) + gemm_s(flops, tokens, GemmPass::kWgrad) +
                            memory_s(2.0 * shared_bytes * tokens + quantize_bytes(h + f) * tokens) + launch;
    }
  }
  if (pairs > 0.0) {
    c.experts_dgrad = expert_gemm_s(instance_tokens, 1.0, GemmPass::kDgrad, 1.0) +
                      memory_s(2.0 * pair_bytes * pairs) + launch;
    // wgrad reads the transposed FP8 copies of the fc1 and fc2 inputs.
    c.experts_wgrad = expert_gemm_s(instance_tokens, 1.0, GemmPass::kWgrad, 1.0) +
                      memory_s(quantize_bytes(h + f) * pairs) + launch;
  }
  return c;
}

DenseLayerCompute CostModel::dense_layer(double tokens, double attended_keys, bool train) const {
  DenseLayerCompute c;
  if (tokens <= 0.0) return c;
  const double h = model_.hidden, f = model_.dense_ffn;
  const double launch = cal_.kernel_launch_s.value;
  const double ffn_flops = model_.dense_ffn_flops_per_token() * tokens;
  const double ffn_bytes = (4.0 * h + quantize_bytes(h) + 6.0 * f + quantize_bytes(f) + 6.0 * h) * tokens;
  c.attention = attention_forward_s(tokens, attended_keys);
  c.ffn = gemm_s(ffn_flops, tokens) + memory_s(ffn_bytes) + launch;
  if (train) {
    c.attention_bwd = attention_backward_s(tokens, attended_keys);
    c.ffn_bwd = gemm_s(ffn_flops, tokens, GemmPass::kDgrad) + gemm_s(ffn_flops, tokens, GemmPass::kWgrad) +
                memory_s(2.0 * ffn_bytes + quantize_bytes(h + f) * tokens) + launch;
  }
  return c;
}

double CostModel::lm_head_forward_s(double tokens) const {
  if (tokens <= 0.0) return 0.0;
  return gemm_s(model_.lm_head_flops_per_token() * tokens, tokens) + cal_.kernel_launch_s.value;
}

double CostModel::dispatch_bytes_per_token() const {
  const double h = model_.hidden;
  if (precision_ == Precision::kFp8) return h + (h / 128.0) * 4.0;
  return 2.0 * h;
}

double CostModel::combine_bwd_bytes_per_token() const {
  const double h = model_.hidden;
  if (backward_comm_ == Precision::kFp8) return h + (h / 128.0) * 4.0;
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
