#include "sim/model_config.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep::sim {

double causal_average_context(int seq_len, int window) {
  if (seq_len <= 0) return 0.0;
  const double s = seq_len;
  if (window <= 0 || window >= seq_len) return (s + 1.0) / 2.0;
  const double w = window;
  return (w * (w + 1.0) / 2.0 + (s - w) * w) / s;
}

double ModelConfig::attention_projection_flops_per_token() const {
  const AttentionConfig& a = attention;
  const double h = hidden;
  if (a.kind == AttentionKind::kMla) {
    const double qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    const double q = a.q_lora_rank > 0
                         ? h * a.q_lora_rank + static_cast<double>(a.q_lora_rank) * a.num_heads * qk
                         : h * a.num_heads * qk;
    const double kv = h * (a.kv_lora_rank + a.qk_rope_head_dim) +
                      static_cast<double>(a.kv_lora_rank) * a.num_heads * (a.qk_nope_head_dim + a.v_head_dim);
    const double out = static_cast<double>(a.num_heads) * a.v_head_dim * h;
    return 2.0 * (q + kv + out);
  }
  const double qkv = h * (static_cast<double>(a.num_heads) * a.head_dim + 2.0 * a.num_kv_heads * a.head_dim);
  const double out = static_cast<double>(a.num_heads) * a.head_dim * h;
  return 2.0 * (qkv + out);
}

double ModelConfig::attention_core_flops_per_key() const {
  const AttentionConfig& a = attention;
  if (a.kind == AttentionKind::kMla) {
    return 2.0 * a.num_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim);
  }
  return 4.0 * a.num_heads * a.head_dim;
}

double ModelConfig::attention_flops_per_token(double avg_context) const {
  return attention_projection_flops_per_token() + attention_core_flops_per_key() * avg_context;
}

double ModelConfig::attention_saved_bytes_per_token() const {
  const AttentionConfig& a = attention;
  // Layer input + norm output (2h), q, k, v, attention output, and fp32 log-sum-exp per head.
  double qkv = 0.0, out = 0.0;
  if (a.kind == AttentionKind::kMla) {
    const double qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    qkv = a.num_heads * (2.0 * qk + a.v_head_dim) + a.kv_lora_rank + a.q_lora_rank;
    out = static_cast<double>(a.num_heads) * a.v_head_dim;
  } else {
    qkv = static_cast<double>(a.num_heads) * a.head_dim + 2.0 * a.num_kv_heads * a.head_dim;
    out = static_cast<double>(a.num_heads) * a.head_dim;
  }
  return 2.0 * (2.0 * hidden + qkv + out) + 4.0 * a.num_heads;
}

ModelConfig load_model(const std::string& path) {
  const nlohmann::json doc = read_json_file(path);
  JsonFields root(doc, path, "");
  ModelConfig m;
  m.file = path;
  m.as_read = doc;
  m.name = root.string("name");
  m.source = root.string("source");
  m.num_layers = root.integer("num_layers", 1, 100000);
  m.num_dense_layers = root.integer("num_dense_layers", 0, 100000);
  m.hidden = root.integer("hidden", 1, 1 << 20);
  m.expert_ffn = root.integer("expert_ffn", 1, 1 << 22);
  m.dense_ffn = root.integer("dense_ffn", 0, 1 << 22);
  m.num_experts = root.integer("num_experts", 1, kMaxExperts);
  m.num_shared_experts = root.integer("num_shared_experts", 0, 64);
  m.top_k = root.integer("top_k", 1, 1024);
  m.vocab = root.integer("vocab", 1, 1 << 24);
  if (m.num_dense_layers >= m.num_layers) root.fail("num_dense_layers", "must leave at least one MoE layer");
  if (m.top_k > m.num_experts) root.fail("top_k", "exceeds num_experts");
  if (root.has("max_domains_per_token"))
    m.max_domains_per_token = root.integer("max_domains_per_token", 1, 1 << 20);
  if (m.num_dense_layers > 0 && m.dense_ffn == 0)
    root.fail("dense_ffn", "must be positive with dense layers");
  {
    JsonFields a = root.object("attention");
    const std::string kind = a.string("type");
    AttentionConfig& c = m.attention;
    c.num_heads = a.integer("num_heads", 1, 1 << 16);
    if (kind == "mla") {
      c.kind = AttentionKind::kMla;
      c.q_lora_rank = a.integer("q_lora_rank", 0, 1 << 20);
      c.kv_lora_rank = a.integer("kv_lora_rank", 1, 1 << 20);
      c.qk_nope_head_dim = a.integer("qk_nope_head_dim", 1, 1 << 16);
      c.qk_rope_head_dim = a.integer("qk_rope_head_dim", 0, 1 << 16);
      c.v_head_dim = a.integer("v_head_dim", 1, 1 << 16);
      c.num_kv_heads = c.num_heads;
    } else if (kind == "gqa" || kind == "mha") {
      c.kind = AttentionKind::kGqa;
      c.num_kv_heads = kind == "mha" ? c.num_heads : a.integer("num_kv_heads", 1, 1 << 16);
      c.head_dim = a.integer("head_dim", 1, 1 << 16);
      if (c.num_heads % c.num_kv_heads != 0) a.fail("num_kv_heads", "must divide num_heads");
    } else {
      a.fail("type", "must be \"mla\", \"gqa\" or \"mha\", got \"" + kind + "\"");
    }
    if (a.has("sliding_window")) {
      c.sliding_window = a.integer("sliding_window", 1, 1 << 24);
      c.sliding_window_fraction = a.number("sliding_window_fraction", 0.0, 1.0);
    }
    a.finish();
  }
  root.finish();
  return m;
}

}  // namespace rackep::sim
