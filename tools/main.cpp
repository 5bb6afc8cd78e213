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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const rackep::InputError& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
