// The `rackep` command: plan, trace, bench, simulate, sweep; the GPU commands run-layer, calibrate and
// bench kernels are forwarded to `rackep-gpu` (tools/gpu_forward.cpp), so this executable maps no CUDA
// library.
#include <CLI/CLI.hpp>

#include "lplb/lplb.hpp"
#include "tools/cli_main.hpp"
#include "tools/commands.hpp"

int main(int argc, char** argv) {
  rackep::register_lplb_balancer();
  CLI::App app{"rackep: exact-load expert balancing for EP MoE on rack-scale nodes"};
  rackep::tools::add_plan_command(app);
  rackep::tools::add_trace_command(app);
  CLI::App* bench = rackep::tools::add_bench_command(app);
  rackep::tools::add_simulate_command(app);
  rackep::tools::add_sweep_command(app);
  rackep::tools::add_gpu_forwarders(app, *bench, argv);
  return rackep::tools::run_cli(app, argc, argv);
}
