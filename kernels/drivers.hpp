// File: kernels/drivers.hpp
// The measuring drivers behind `rackep run-layer`, `rackep calibrate` and `rackep bench kernels`. They take
// plain inputs (shapes, load matrices) and return plain results; the tools/ commands read models and traces,
// print and write files. Every driver first calls require_gpus() and so throws GpuUnavailable ("no CUDA GPU
// found ...") on a machine without a usable GPU. Times are measured with CUDA events. Usage:
//   rackep::kernels::RunLayerConfig cfg{...};
//   rackep::kernels::RunLayerReport rep = rackep::kernels::run_layers(cfg, records);
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/load_matrix.hpp"
#include "core/ref_expert_ffn.hpp"
#include "core/step_driver.hpp"
#include "core/transfer.hpp"

namespace rackep::kernels {

// ---------------------------------------------------------------------------------------------------------------
// run-layer
// ---------------------------------------------------------------------------------------------------------------

/// One (layer, microbatch) of a trace slice.
struct LayerRecord {
  int layer = 0;
  int64_t microbatch = 0;
  LoadMatrix loads;  ///< N x L routed (token, expert) pairs per source rank
};

struct RunLayerConfig {
  ClusterShape shape;                ///< N emulated or real ranks, M, R, G
  FfnDims dims;                      ///< expert H and F (bf16 weights)
  std::string balancer = "ultraep";  ///< "ultraep" plans on the GPU; other names plan with core on the host
  BalancerOptions options;
  WeightSyncOptions weight_sync;
  bool backward = false;  ///< also run grad_reduce (fp32 gradients of every slot)
  int warmup = 1;         ///< untimed runs of the first record
  bool check = true;      ///< compare the first record against the CPU references (reroute, dispatch)
  bool check_plans = check_plans_by_default();  ///< ALGORITHMS.md §2.8 checks on every plan (StepDriver)
  /// GPUs of this process: 0 = every GPU found (the largest count <= found that divides N), 1 = all ranks
  /// emulated on GPU 0, K >= 2 = N / K ranks on each of GPUs 0..K-1 (N % K == 0; needs NCCL and peer access).
  int gpus = 0;
  /// One process per GPU under MPI (RACKEP_HAVE_MPI): the job's K processes hold N / K ranks each, process p
  /// on GPU (node-local rank mod GPUs found); `gpus` is ignored. run_layers initialises MPI if needed.
  bool mpi = false;
};

/// Per-phase times of one record, milliseconds (max over ranks where ranks run concurrently).
struct PhaseTimes {
  double plan_ms = 0.0;
  double reroute_ms = 0.0;
  double weight_sync_ms = 0.0;
  double dispatch_ms = 0.0;
  double expert_ffn_ms = 0.0;
  double combine_ms = 0.0;
  double grad_reduce_ms = 0.0;
  double total_ms = 0.0;  ///< first event to last event of the record
};

struct LayerResult {
  int layer = 0;
  int64_t microbatch = 0;
  PhaseTimes times;
  double imbalance_before = 1.0;
  double imbalance_after = 1.0;
  int64_t replicas = 0;
  int64_t weight_bytes_copied = 0;
  int64_t routed_pairs = 0;
};

struct RunLayerReport {
  std::string mode;                  ///< e.g. "4 emulated ranks on 1 GPU (NVIDIA H200)"
  std::vector<std::string> devices;  ///< this process's GPUs
  int num_gpus = 1;                  ///< GPUs holding ranks (all processes)
  int ranks_per_gpu = 1;
  int process_rank = 0;     ///< MPI rank (0 without MPI): only process 0 should print
  int64_t remote_rows = 0;  ///< rows of the last record that crossed GPUs (all processes), one direction
  std::vector<LayerResult> layers;
  bool checked = false;  ///< the first record matched the CPU references
};

/// Executes every record: plan -> reroute -> weight_sync -> dispatch -> expert FFN (grouped GEMM) -> combine
/// (-> grad_reduce). What each record plans and moves comes from a StepDriver (core/step_driver.hpp): the
/// weight_sync of fixed-master balancers and the resident-set diffs of eplb/lplb are executed and timed
/// alike; grad_reduce runs where the step reduces (every record is a step of its own). Ranks sit in
/// contiguous blocks on the GPUs (kernels/ep_layout.hpp), each rank's buffers its own allocation and its
/// kernels on its own stream; between GPUs dispatch/combine go through NCCL (kernels/ep_exchange.hpp) and
/// weight_sync/grad_reduce copy through peer access (one process) or CUDA IPC (MPI). Phase times are CUDA
/// events per GPU, max over ranks and GPUs. Throws GpuUnavailable, InputError (shapes, balancer, GPU count),
/// VerificationError (a GPU result differs from its CPU reference) or CudaError; under MPI the caller ends
/// the job when one process throws (tools/cmd_run_layer.cpp).
RunLayerReport run_layers(const RunLayerConfig& config, const std::vector<LayerRecord>& records,
                          const std::function<void(const LayerResult&)>& on_layer = {});

// ---------------------------------------------------------------------------------------------------------------
// calibrate
// ---------------------------------------------------------------------------------------------------------------

struct CalibrateConfig {
  FfnDims dims;                                                            ///< the model's expert shape
  std::vector<int64_t> tokens{64, 128, 256, 512, 1024, 2048, 4096, 8192};  ///< tokens per expert to measure
  int experts_per_gemm = 8;                                                ///< groups in each grouped GEMM
  double peak_flops = 0.0;  ///< bf16 dense peak; 0 = from the device (H100/H200: 989e12, B200: 2250e12)
  int repeats = 20;
};

struct Measured {
  double x = 0.0;  ///< tokens, bytes or experts
  double y = 0.0;  ///< efficiency, bytes/s or seconds
};

struct CalibrationMeasurements {
  std::string device;
  double peak_flops = 0.0;
  std::vector<Measured> gemm_efficiency;  ///< tokens per expert -> achieved / peak (grouped SwiGLU FFN GEMMs)
  std::vector<Measured> copy_bytes_per_s;   ///< copy size -> device-to-device copy-kernel bandwidth
  double hbm_bytes_per_s = 0.0;             ///< large cudaMemcpy D2D: 2 x bytes / time
  double kernel_launch_s = 0.0;             ///< empty kernel, launch to completion
  double weight_sync_launch_s = 0.0;        ///< intercept of weight_sync time vs bytes
  double weight_sync_bytes_per_s = 0.0;     ///< slope of that fit
  double grad_reduce_bytes_per_sm_s = 0.0;  ///< pulled bytes / time / blocks
  int grad_reduce_num_sms = 42;
  std::vector<Measured> planner_s;  ///< experts L -> GPU planner time
  double planner_fixed_s = 0.0, planner_per_expert_s = 0.0;
  std::vector<Measured> reroute_s;  ///< routed pairs -> reroute time
  double reroute_fixed_s = 0.0, reroute_per_pair_s = 0.0;
  double peer_bytes_per_s = 0.0;  ///< GPU 0 -> GPU 1 copy bandwidth (0: fewer than 2 GPUs)
};

/// Runs every measurement on GPU 0. Throws GpuUnavailable or CudaError.
CalibrationMeasurements calibrate(const CalibrateConfig& config);

// ---------------------------------------------------------------------------------------------------------------
// bench kernels
// ---------------------------------------------------------------------------------------------------------------

struct BenchKernelsConfig {
  ClusterShape shape{64, 4, 2, 64};  ///< EP 64, L = 256, R = 2
  FfnDims dims{4096, 1536};          ///< Qwen3-235B-sized expert: 36 MiB of bf16 weights
  double imbalance = 2.0;            ///< rank imbalance of the synthetic loads
  int top_k = 8;
  int64_t tokens_per_rank = 8192;
  int repeats = 50;
};

struct BenchLine {
  std::string name;
  double value = 0.0;
  std::string unit;
  std::string target;  ///< what the issue asks for, e.g. "<= 30 us"
  bool meets = true;
};

/// Planner latency, weight_sync bandwidth against the device copy bandwidth, grouped GEMM TFLOPS against
/// cuBLAS dense GEMM at the same shapes. Throws GpuUnavailable or CudaError.
std::vector<BenchLine> bench_kernels(const BenchKernelsConfig& config);

}  // namespace rackep::kernels
