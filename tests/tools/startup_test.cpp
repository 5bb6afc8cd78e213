// The `rackep` executable and its GPU companion `rackep-gpu` (tools/gpu_forward.cpp): `rackep` maps no CUDA
// library (checked with the dynamic loader's own trace, LD_DEBUG=libs, which lists every library it loads),
// the GPU commands still answer through it, and the progress line appears only where it is asked for.
#include <gtest/gtest.h>

#include <string>

#include "tests/cli_util.hpp"

namespace {

using rackep::test::run_command;
using rackep::test::run_rackep;

const char* const kCudaLibraries[] = {"libcuda.so", "libcudart", "libcublas", "libnccl", "libnvrtc"};

TEST(Startup, HelpLoadsNoCudaLibrary) {
  const auto r = run_command("LD_DEBUG=libs " + std::string(RACKEP_BINARY_DIR) + "/rackep --help");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  ASSERT_NE(r.out.find("calling init"), std::string::npos) << "LD_DEBUG gave no trace: " << r.out;
  for (const char* lib : kCudaLibraries)
    EXPECT_EQ(r.out.find(lib), std::string::npos) << lib << "\n" << r.out;
  EXPECT_NE(r.out.find("run-layer"), std::string::npos) << r.out;  // the GPU commands are still listed
}

TEST(Startup, CpuCommandLoadsNoCudaLibrary) {
  const auto r = run_command("LD_DEBUG=libs " + std::string(RACKEP_BINARY_DIR) +
                             "/rackep plan --ranks 8 --balancers none,ultraep --no-timing");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* lib : kCudaLibraries) EXPECT_EQ(r.out.find(lib), std::string::npos) << lib;
}

TEST(Startup, GpuCommandsAreForwardedToRackepGpu) {
  const auto help = run_rackep("run-layer --help");
  EXPECT_EQ(help.exit_code, 0) << help.out;
  EXPECT_NE(help.out.find("--balancer"), std::string::npos) << help.out;  // rackep-gpu's own option list
  const auto bench = run_rackep("bench kernels --help");
  EXPECT_EQ(bench.exit_code, 0) << bench.out;
  EXPECT_NE(bench.out.find("--repeats"), std::string::npos) << bench.out;
  // Without the backend, or without a GPU, the command fails with a message and status 1 (never a crash).
  const auto cal =
      run_rackep("calibrate --out " + std::string(RACKEP_BINARY_DIR) + "/startup_test_calib.json");
  EXPECT_EQ(cal.exit_code, 1) << cal.out;
  EXPECT_TRUE(cal.out.find("built without the CUDA backend") != std::string::npos ||
              cal.out.find("no CUDA GPU found") != std::string::npos)
      << cal.out;
}

TEST(Startup, ProgressOnlyWhenAsked) {
  const std::string base = std::string(RACKEP_BINARY_DIR) +
                           "/rackep --log-level warn trace import --from esft " + RACKEP_SOURCE_DIR +
                           "/traces/data/esft-deepseek-v2-lite/intent --ranks 4 " +
                           "--tokens-per-rank 256 --out " + RACKEP_BINARY_DIR + "/startup_test_import_";
  run_command("rm -rf " + std::string(RACKEP_BINARY_DIR) + "/startup_test_import_*");
  const auto quiet = run_command(base + "a");  // output captured: not a terminal
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out;
  EXPECT_EQ(quiet.out.find("records/s"), std::string::npos) << quiet.out;
  const auto shown = run_command("RACKEP_PROGRESS=1 " + base + "b");
  ASSERT_EQ(shown.exit_code, 0) << shown.out;
  EXPECT_NE(shown.out.find("import: "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("records/s"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("(100%)"), std::string::npos) << shown.out;
  run_command("rm -rf " + std::string(RACKEP_BINARY_DIR) + "/startup_test_import_*");
}

}  // namespace
