// Work in progress: replaced by the real `rackep trace` command.
#include "tools/commands.hpp"

namespace rackep::tools {

void add_trace_command(CLI::App& app) { app.add_subcommand("trace", "(in progress)"); }

}  // namespace rackep::tools
