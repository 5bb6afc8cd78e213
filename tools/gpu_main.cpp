// `rackep-gpu`: the commands of the CUDA backend (run-layer, calibrate, bench kernels). Users type them as
// `rackep run-layer ...`; `rackep` replaces itself with this executable (tools/gpu_forward.cpp).
#include <CLI/CLI.hpp>

#include "tools/cli_main.hpp"
#include "tools/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rackep GPU commands (CUDA backend); normally started as `rackep <command>`"};
  app.name("rackep");
  rackep::tools::add_run_layer_command(app);
  rackep::tools::add_calibrate_command(app);
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  rackep::tools::add_bench_kernels_command(*bench);
  return rackep::tools::run_cli(app, argc, argv);
}
