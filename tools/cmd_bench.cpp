// Work in progress: replaced by the real `rackep bench` command.
#include "tools/commands.hpp"

namespace rackep::tools {

void add_bench_command(CLI::App& app) { app.add_subcommand("bench", "(in progress)"); }

}  // namespace rackep::tools
