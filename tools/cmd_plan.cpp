// Work in progress: replaced by the real `rackep plan` command.
#include "tools/commands.hpp"

namespace rackep::tools {

void add_plan_command(CLI::App& app) { app.add_subcommand("plan", "(in progress)"); }

}  // namespace rackep::tools
