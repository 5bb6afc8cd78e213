// File: sim/calibration.hpp
// The efficiency side of the cost model (docs/HARDWARE.md, docs/ALGORITHMS.md §3.5-3.6, §7): GEMM efficiency as a
// function of tokens per expert, attention efficiency, achieved link bandwidths, fixed per-kernel costs and
// the modelled planner/reroute time of each balancer. The default (configs/calibration/default.json) is
// derived from datasheets and public measured curves, each value with its source; `rackep calibrate` writes
// one measured on a real GPU in the same format. Usage:
//   Calibration c = load_calibration(resolve_data_file("default", "configs/calibration", "--calibration"));
//   double eta = c.gemm_efficiency(4096, GemmPass::kWgrad);
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sim/config_io.hpp"

namespace rackep::sim {

/// One point of a grouped-GEMM efficiency curve: achieved / peak at `tokens` rows per group.
struct EfficiencyPoint {
  double tokens = 0.0;
  double efficiency = 0.0;
  std::string source;
};

/// The three GEMMs of a layer: forward (M = tokens), dgrad (M = tokens, N and K swapped) and wgrad (tokens
/// are the reduction dimension K).
enum class GemmPass { kForward = 0, kDgrad = 1, kWgrad = 2 };
constexpr int kNumGemmPasses = 3;
const char* to_string(GemmPass p);

/// Achieved / peak BF16 of the attention core (QK^T, softmax, AV) on one GPU architecture and attention type.
struct AttentionEfficiency {
  std::string arch;  ///< "hopper", "blackwell", ...
  std::string type;  ///< "mla", "gqa"
  Sourced forward;
  Sourced backward;
};

/// What one GPU architecture achieves on the fabric (measured all-to-all bandwidth / nominal).
struct ArchEfficiency {
  Sourced scale_up_efficiency;   ///< achieved / nominal NVLink bandwidth of an EP all-to-all
  Sourced scale_out_efficiency;  ///< achieved / nominal NIC bandwidth
};

/// SMs a communication kernel holds while it runs (concurrent compute on that GPU runs on the rest).
struct CommSms {
  Sourced all_to_all;  ///< dispatch / combine and their backward
  Sourced weight_sync;
  Sourced grad_reduce;
  Sourced load_allgather;
  Sourced pp_send;
};

/// Modelled critical-path time of one balancer's planning step: fixed_s + per_expert_s x L, and of its
/// reroute: reroute_fixed_s + reroute_per_pair_s x (routed pairs of the rank). Both sit on the forward
/// critical path of every (layer, microbatch); reroute overlaps weight_sync (docs/ALGORITHMS.md §2.2).
struct PlannerCost {
  double fixed_s = 0.0;
  double per_expert_s = 0.0;
  double reroute_fixed_s = 0.0;
  double reroute_per_pair_s = 0.0;
  bool needs_load_allgather = false;  ///< gathers the N x L per-rank loads before planning (§2.2 step 3)
  std::string source;
};

struct Calibration {
  std::string file;
  std::string name;
  std::vector<EfficiencyPoint> gemm_curves[kNumGemmPasses];  ///< increasing tokens
  std::vector<AttentionEfficiency> attention;
  std::map<std::string, ArchEfficiency> archs;  ///< by GPU architecture
  Sourced memory_bound_efficiency;  ///< achieved / nominal HBM bandwidth of the memory-bound kernels
  Sourced kernel_launch_s;          ///< fixed cost of one compute phase (a few fused kernels)
  Sourced all_to_all_launch_s;      ///< fixed cost of one dispatch or combine call
  Sourced allgather_launch_s;       ///< fixed cost of the per-rank load all-gather
  Sourced weight_sync_launch_s;     ///< t0 of docs/ALGORITHMS.md §3.5
  Sourced grad_reduce_bytes_per_sm_s;
  CommSms comm_sms;
  std::map<std::string, PlannerCost> planners;  ///< by balancer name; "default" for names not listed

  /// Piecewise linear in log2(tokens) between the curve points, clamped at both ends; 0 tokens -> first
  /// point.
  double gemm_efficiency(double tokens, GemmPass pass = GemmPass::kForward) const;
  const PlannerCost& planner(const std::string& balancer) const;
  /// Throws InputError(file, "attention", ...) when no entry matches the architecture and type.
  const AttentionEfficiency& attention_for(const std::string& arch, const std::string& type) const;
  /// Throws InputError(file, "architectures", ...) for an architecture the file does not describe.
  const ArchEfficiency& arch(const std::string& arch) const;
};

/// Throws InputError(path, field, ...) for a missing or unknown field, a curve that is not increasing in
/// tokens, an efficiency outside (0, 1], or a missing "default" planner entry.
Calibration load_calibration(const std::string& path);

}  // namespace rackep::sim
