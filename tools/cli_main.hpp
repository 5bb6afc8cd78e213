// File: tools/cli_main.hpp
// The shared body of the two executables, `rackep` (tools/main.cpp) and `rackep-gpu` (tools/gpu_main.cpp):
// the global --log-level option, parsing, and the mapping of exceptions to messages and exit codes
// (InputError: 2, any other error: 1, CLI usage errors: CLI11's code).
#pragma once

#include <CLI/CLI.hpp>

namespace rackep::tools {

/// Adds --log-level to `app`, parses argv and runs the selected subcommand's callback.
int run_cli(CLI::App& app, int argc, char** argv);

/// `rackep run-layer|calibrate|bench kernels ...`: registered in `rackep` as forwarders that replace the
/// process with `rackep-gpu` (same directory, same arguments), so the CUDA libraries are mapped only by the
/// GPU commands.
void add_gpu_forwarders(CLI::App& app, CLI::App& bench, char** argv);

}  // namespace rackep::tools
