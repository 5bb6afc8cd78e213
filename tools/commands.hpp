// File: tools/commands.hpp
// Each `rackep` subcommand lives in its own tools/cmd_*.cpp and registers itself on the CLI11 app here.
// A command's callback throws on error; main() turns exceptions into a message and a non-zero exit.
#pragma once

#include <CLI/CLI.hpp>

namespace rackep::tools {

void add_plan_command(CLI::App& app);
void add_trace_command(CLI::App& app);
// Simulator commands (tools/cmd_simulate.cpp, tools/cmd_sweep.cpp).
void add_simulate_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
// GPU commands of the CUDA backend (tools/cmd_run_layer.cpp, cmd_calibrate.cpp, cmd_bench_kernels.cpp), built
// into `rackep-gpu` (tools/gpu_main.cpp); `rackep` forwards to it (tools/gpu_forward.cpp). Without the
// backend or without a GPU they fail with a clear message and a non-zero exit.
inline constexpr const char* kRunLayerHelp =
    "execute MoE layers of a trace slice on the GPUs found (CUDA backend)";
inline constexpr const char* kCalibrateHelp = "measure the cost-model calibration on GPU 0 (CUDA backend)";
inline constexpr const char* kBenchKernelsHelp = "GPU kernel benchmarks: planner, weight_sync, grouped GEMM";
void add_run_layer_command(CLI::App& app);
void add_calibrate_command(CLI::App& app);
/// Registers `kernels` under a `bench` subcommand.
void add_bench_kernels_command(CLI::App& bench);
/// `rackep bench`: returns the `bench` subcommand (planner registered when built with Google Benchmark).
CLI::App* add_bench_command(CLI::App& app);

}  // namespace rackep::tools
