// The GPU commands as seen from `rackep`: each forwarder takes every argument unparsed and execs `rackep-gpu`
// (built beside `rackep`, installed beside it) with the original command line, so `rackep` itself never links
// or maps the CUDA libraries (tests/tools/startup_test.cpp checks it).
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "tools/cli_main.hpp"
#include "tools/commands.hpp"

namespace rackep::tools {
namespace {

std::string gpu_executable() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw std::runtime_error(std::string("cannot read /proc/self/exe: ") + std::strerror(errno));
  std::string self(buf, static_cast<size_t>(n));
  const size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string(".") : self.substr(0, slash)) + "/rackep-gpu";
}

void add_forwarder(CLI::App& parent, const std::string& name, const std::string& description, char** argv) {
  CLI::App* cmd = parent.add_subcommand(name, description + " (runs rackep-gpu; `rackep " +
                                                  (parent.get_parent() ? parent.get_name() + " " : "") +
                                                  name + " --help` lists its options)");
  cmd->set_help_flag();  // --help goes to rackep-gpu, which knows the options
  cmd->prefix_command();
  cmd->callback([argv] {
    const std::string exe = gpu_executable();
    std::fflush(stdout);
    std::fflush(stderr);
    argv[0] = const_cast<char*>(exe.c_str());
    execv(exe.c_str(), argv);
    throw std::runtime_error("cannot start " + exe +
                             " (the GPU commands' executable, built beside rackep): " + std::strerror(errno));
  });
}

}  // namespace

void add_gpu_forwarders(CLI::App& app, CLI::App& bench, char** argv) {
  add_forwarder(app, "run-layer", kRunLayerHelp, argv);
  add_forwarder(app, "calibrate", kCalibrateHelp, argv);
  add_forwarder(bench, "kernels", kBenchKernelsHelp, argv);
}

}  // namespace rackep::tools
