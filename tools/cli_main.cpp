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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const InputError& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rackep: error: %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace rackep::tools
