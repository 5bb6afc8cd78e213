// File: tests/cli_util.hpp
// Runs the built `rackep` binary (or any command) for command-line tests and captures its exit code, its
// stdout and its stderr apart, so that JSON read from stdout never holds a log line or a sanitizer report.
// Usage:
//   rackep::test::CliRun r = rackep::test::run_rackep("plan --ranks 3");  // or run_command("any shell line")
//   EXPECT_EQ(r.exit_code, 2) << r.text();
//   nlohmann::json j = nlohmann::json::parse(r.out);                     // stdout only
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace rackep::test {

struct CliRun {
  int exit_code = -1;  ///< -1 when the process did not exit normally
  std::string out;     ///< stdout
  std::string err;     ///< stderr
  /// stdout then stderr, for messages and for failure output.
  std::string text() const { return out + err; }
};

/// Runs `command` through the shell; stdout and stderr are captured apart.
inline CliRun run_command(const std::string& command) {
  CliRun r;
  char err_path[] = "/tmp/rackep-cli-stderr-XXXXXX";
  const int fd = mkstemp(err_path);
  if (fd < 0) return r;
  ::close(fd);
  const std::string cmd = "(" + command + ") 2>" + err_path;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    std::remove(err_path);
    return r;
  }
  std::array<char, 4096> buf;
  size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(err_path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  r.err = s.str();
  std::remove(err_path);
  return r;
}

/// Runs `<build>/rackep <args>` (args are not quoted for you).
inline CliRun run_rackep(const std::string& args) {
  return run_command(std::string(RACKEP_BINARY_DIR) + "/rackep " + args);
}

}  // namespace rackep::test
