// File: tools/commands.hpp
// Each `rackep` subcommand lives in its own tools/cmd_*.cpp and registers itself on the CLI11 app here.
// A command's callback throws on error; main() turns exceptions into a message and a non-zero exit.
#pragma once

#include <CLI/CLI.hpp>

namespace rackep::tools {

void add_plan_command(CLI::App& app);
void add_trace_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace rackep::tools
