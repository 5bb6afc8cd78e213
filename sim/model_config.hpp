// File: sim/model_config.hpp
// MoE model descriptions (configs/models/*.json, numbers from docs/HARDWARE.md §D with sources) and the
// per-token FLOP and byte counts of docs/HARDWARE.md §E.2 derived from them. Usage:
//   ModelConfig m = load_model(resolve_data_file("deepseek-v3", "configs/models", "--model"));
//   double f = m.attention_flops_per_token(/*avg_context=*/2048.5);
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "sim/config_io.hpp"

namespace rackep::sim {

enum class AttentionKind { kGqa, kMla };

/// Attention shape. GQA/MHA: num_heads, num_kv_heads, head_dim. MLA (DeepSeek): q_lora_rank (0 = no query
/// compression), kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim. sliding_window > 0 applies to
/// the fraction `sliding_window_fraction` of layers (gpt-oss alternates window and full layers).
struct AttentionConfig {
  AttentionKind kind = AttentionKind::kGqa;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int q_lora_rank = 0;
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  int sliding_window = 0;
  double sliding_window_fraction = 0.0;
};

struct ModelConfig {
  std::string file;
  std::string name;
  std::string source;
  int num_layers = 0;        ///< decoder layers
  int num_dense_layers = 0;  ///< leading dense-FFN layers; MoE layers = num_layers - num_dense_layers
  int hidden = 0;            ///< h
  int expert_ffn = 0;        ///< f of one routed expert
  int dense_ffn = 0;         ///< FFN width of a dense layer (0 when there is none)
  int num_experts = 0;       ///< routed experts E
  int num_shared_experts = 0;
  int top_k = 0;
  /// Node-limited routing: each token's experts lie on at most this many NVLink domains when the EP group
  /// spans several (DeepSeek-V3: 4 nodes, through 8 expert groups and top-4 groups); 0 = no limit.
  int max_domains_per_token = 0;
  int vocab = 0;
  AttentionConfig attention;
  nlohmann::json as_read;  ///< the file's content, for reports

  int num_moe_layers() const { return num_layers - num_dense_layers; }
  /// Forward FLOPs of attention for one token that attends to `avg_context` keys on average (§E.2).
  double attention_flops_per_token(double avg_context) const;
  /// Projection part only (independent of the context).
  double attention_projection_flops_per_token() const;
  /// Core (QK^T and AV) FLOPs per attended key.
  double attention_core_flops_per_key() const;
  /// 6·h·f: forward FLOPs of one (token, routed expert) pair (SwiGLU).
  double expert_flops_per_pair() const { return 6.0 * hidden * expert_ffn; }
  double shared_expert_flops_per_token() const { return 6.0 * hidden * expert_ffn * num_shared_experts; }
  double dense_ffn_flops_per_token() const { return 6.0 * hidden * dense_ffn; }
  double router_flops_per_token() const { return 2.0 * hidden * num_experts; }
  double lm_head_flops_per_token() const { return 2.0 * hidden * vocab; }
  /// Bytes of the attention activations one token keeps for the backward pass (inputs of the projections,
  /// q/k/v, the attention output, softmax statistics), BF16.
  double attention_saved_bytes_per_token() const;
};

/// Parses and validates a model file; throws InputError(path, field, ...).
ModelConfig load_model(const std::string& path);

/// Mean number of keys a token attends to in causal attention over sequences of `seq_len` tokens, with an
/// optional sliding window (0 = none): (1/S) Σ_{p=1..S} min(p, w).
double causal_average_context(int seq_len, int window);

}  // namespace rackep::sim
