// File: tools/commands.hpp
// Each `rackep` subcommand lives in its own tools/cmd_*.cpp and registers itself on the CLI11 app here.
// A command's callback throws on error; main() turns exceptions into a message and a non-zero exit.
#pragma once

#include <CLI/CLI.hpp>

namespace rackep::tools {

void add_plan_command(CLI::App& app);
void add_trace_command(CLI::App& app);
void add_bench_command(CLI::App& app);
// Simulator commands (tools/cmd_simulate.cpp, tools/cmd_sweep.cpp).
void add_simulate_command(CLI::App& app);
void add_sweep_command(CLI::App& app);
// GPU commands of the CUDA backend (tools/cmd_run_layer.cpp, cmd_calibrate.cpp, cmd_bench_kernels.cpp). They
// are always registered; without the backend or without a GPU they fail with a clear message and a non-zero
// exit.
void add_run_layer_command(CLI::App& app);
void add_calibrate_command(CLI::App& app);
/// Registers `kernels` under the `bench` subcommand: cmd_bench.cpp calls it with its `bench` app.
void add_bench_kernels_command(CLI::App& bench);

}  // namespace rackep::tools
