#include "tools/cli_main.hpp"

#include <cstdio>
#include <exception>
#include <string>

#include "core/error.hpp"
#include "tools/logging.hpp"

namespace rackep::tools {

int run_cli(CLI::App& app, int argc, char** argv) {
  app.require_subcommand(1);
  std::string log_spec = "info";
  app.add_option("--log-level", log_spec, "log level, or per module: sim=debug,traces=warn")
      ->capture_default_str();
  app.parse_complete_callback([&] { setup_logging(log_spec); });
  // Exit codes (README "Exit codes"): 0 success, 2 bad input (including every command-line parse error), 1 a
  // runtime failure (no GPU, CUDA/NCCL/MPI, a child process, an internal check), 3 a verification mismatch.
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message and the usage hint
    return exit_code(ErrorKind::kInput);
  } catch (const Error& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return exit_code(e.kind());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return exit_code(ErrorKind::kRuntime);
  }
  return 0;
}

}  // namespace rackep::tools
