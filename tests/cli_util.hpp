// File: tests/cli_util.hpp
// Runs the built `rackep` binary for command-line tests and captures its exit code and output.
// Usage:
//   rackep::test::CliRun r = rackep::test::run_rackep("plan --ranks 3");  // or run_command("any shell line")
//   EXPECT_EQ(r.exit_code, 2) << r.out;
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace rackep::test {

struct CliRun {
  int exit_code = -1;  ///< -1 when the process did not exit normally
  std::string out;     ///< stdout and stderr together
};

/// Runs `command` through the shell with stderr merged into stdout.
inline CliRun run_command(const std::string& command) {
  CliRun r;
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

/// Runs `<build>/rackep <args>` (args are not quoted for you).
inline CliRun run_rackep(const std::string& args) {
  return run_command(std::string(RACKEP_BINARY_DIR) + "/rackep " + args);
}

}  // namespace rackep::test
