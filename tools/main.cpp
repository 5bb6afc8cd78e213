// The `rackep` command: plan, trace, bench (and later simulate, sweep, calibrate, validate).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "core/error.hpp"
#include "tools/commands.hpp"
#include "tools/logging.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rackep: exact-load expert balancing for EP MoE on rack-scale nodes"};
  app.require_subcommand(1);
  std::string log_spec = "info";
  app.add_option("--log-level", log_spec, "log level, or per module: sim=debug,traces=warn")
      ->capture_default_str();
  app.parse_complete_callback([&] { rackep::tools::setup_logging(log_spec); });
  rackep::tools::add_plan_command(app);
  rackep::tools::add_trace_command(app);
  rackep::tools::add_bench_command(app);
  rackep::tools::add_simulate_command(app);
  rackep::tools::add_sweep_command(app);
  rackep::tools::add_run_layer_command(app);
  rackep::tools::add_calibrate_command(app);
  // Exit codes (README "Exit codes"): 0 success, 2 bad input (including every command-line parse error), 1 a
  // runtime failure (no GPU, CUDA/NCCL/MPI, a child process, an internal check), 3 a verification mismatch.
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and the usage hint
    return rackep::exit_code(rackep::ErrorKind::kInput);
  } catch (const rackep::Error& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return rackep::exit_code(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return rackep::exit_code(rackep::ErrorKind::kRuntime);
  }
  return 0;
}
