// `rackep bench kernels`: the kernel benchmarks of the CUDA backend (kernels/drivers.hpp): planner latency at
// EP 64, L = 256, R = 2 (target <= 30 us; the paper's kernel: 67-78 us), weight_sync bandwidth as a fraction
// of the device's copy bandwidth (target >= 85 %), grouped GEMM TFLOPS against cuBLAS dense GEMM at the same
// shapes. Registered under `rackep bench` by add_bench_kernels_command (tools/commands.hpp).
#include <cstdio>
#include <string>

#include "config/experiment.hpp"
#include "core/error.hpp"
#include "rackep/config.hpp"
#include "tools/commands.hpp"
#include "tools/gpu_common.hpp"
#if RACKEP_HAVE_CUDA
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"
#endif

namespace rackep::tools {
namespace {

struct BenchKernelsArgs {
  int ranks = 64;
  int experts = 256;
  int redundant = 2;
  int64_t hidden = 4096;
  int64_t ffn = 1536;
  double imbalance = 2.0;
  int repeats = 50;
};

void run([[maybe_unused]] const BenchKernelsArgs& a) {
  require_cuda_build("bench kernels");
#if RACKEP_HAVE_CUDA
  kernels::require_gpus(1);
  kernels::BenchKernelsConfig cfg;
  cfg.shape =
      ClusterShape::from_experts(a.ranks, a.experts, a.redundant, a.ranks, "--ranks/--experts/--redundant");
  cfg.dims = FfnDims{a.hidden, a.ffn};
  cfg.imbalance = a.imbalance;
  cfg.repeats = a.repeats;
  std::printf("%-44s %14s %-8s %-16s %s\n", "benchmark", "value", "unit", "target", "meets");
  for (const kernels::BenchLine& l : kernels::bench_kernels(cfg))
    std::printf("%-44s %14.3f %-8s %-16s %s\n", l.name.c_str(), l.value, l.unit.c_str(), l.target.c_str(),
                l.target.empty() ? "-" : (l.meets ? "yes" : "NO"));
#endif
}

}  // namespace

void add_bench_kernels_command(CLI::App& bench) {
  auto args = std::make_shared<BenchKernelsArgs>();
  CLI::App* cmd = bench.add_subcommand("kernels", kBenchKernelsHelp);
  using namespace config;  // the ranges shared with the experiment config
  cmd->add_option("--ranks", args->ranks, "EP ranks N (one NVLink domain)")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxRanks));
  cmd->add_option("--experts", args->experts, "logical experts L")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxExperts));
  cmd->add_option("--slots", args->redundant, "R: redundant slots per rank")
      ->capture_default_str()
      ->check(CLI::Range(0, kMaxSlots));
  cmd->add_option("--hidden", args->hidden, "expert hidden size H")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  cmd->add_option("--ffn", args->ffn, "expert FFN size F")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--imbalance", args->imbalance, "rank imbalance of the synthetic loads")
      ->capture_default_str()
      ->check(CLI::Range(1.0, kMaxImbalance));
  cmd->add_option("--repeats", args->repeats, "timed repetitions")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  cmd->callback([args] { run(*args); });
}

}  // namespace rackep::tools
