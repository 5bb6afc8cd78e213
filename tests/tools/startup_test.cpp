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
  ASSERT_EQ(r.exit_code, 0) << r.text();
  ASSERT_NE(r.text().find("calling init"), std::string::npos) << "LD_DEBUG gave no trace: " << r.text();
  for (const char* lib : kCudaLibraries)
    EXPECT_EQ(r.text().find(lib), std::string::npos) << lib << "\n" << r.text();
  EXPECT_NE(r.text().find("run-layer"), std::string::npos) << r.text();  // the GPU commands are still listed
}

TEST(Startup, CpuCommandLoadsNoCudaLibrary) {
  const auto r = run_command("LD_DEBUG=libs " + std::string(RACKEP_BINARY_DIR) +
                             "/rackep plan --ranks 8 --balancers none,ultraep --no-timing");
  ASSERT_EQ(r.exit_code, 0) << r.text();
  for (const char* lib : kCudaLibraries) EXPECT_EQ(r.text().find(lib), std::string::npos) << lib;
}

TEST(Startup, GpuCommandsAreForwardedToRackepGpu) {
  const auto help = run_rackep("run-layer --help");
  EXPECT_EQ(help.exit_code, 0) << help.text();
  // rackep-gpu's own option list
  EXPECT_NE(help.text().find("--balancer"), std::string::npos) << help.text();
  const auto bench = run_rackep("bench kernels --help");
  EXPECT_EQ(bench.exit_code, 0) << bench.text();
  EXPECT_NE(bench.text().find("--repeats"), std::string::npos) << bench.text();
  // Without the backend, or without a GPU, the command fails with a message and status 1 (never a crash).
  const auto cal =
      run_rackep("calibrate --out " + std::string(RACKEP_BINARY_DIR) + "/startup_test_calib.json");
  EXPECT_EQ(cal.exit_code, 1) << cal.text();
  EXPECT_TRUE(cal.text().find("built without the CUDA backend") != std::string::npos ||
              cal.text().find("no CUDA GPU found") != std::string::npos)
      << cal.text();
}

TEST(Startup, ProgressOnlyWhenAsked) {
  const std::string base = std::string(RACKEP_BINARY_DIR) +
                           "/rackep --log-level warn trace import --from esft " + RACKEP_SOURCE_DIR +
                           "/traces/data/esft-deepseek-v2-lite/intent --ranks 4 " +
                           "--tokens-per-rank 256 --out " + RACKEP_BINARY_DIR + "/startup_test_import_";
  run_command("rm -rf " + std::string(RACKEP_BINARY_DIR) + "/startup_test_import_*");
  const auto quiet = run_command(base + "a");  // output captured: not a terminal
  ASSERT_EQ(quiet.exit_code, 0) << quiet.text();
  EXPECT_EQ(quiet.text().find("records/s"), std::string::npos) << quiet.text();
  const auto shown = run_command("RACKEP_PROGRESS=1 " + base + "b");
  ASSERT_EQ(shown.exit_code, 0) << shown.text();
  EXPECT_NE(shown.text().find("import: "), std::string::npos) << shown.text();
  EXPECT_NE(shown.text().find("records/s"), std::string::npos) << shown.text();
  EXPECT_NE(shown.text().find("(100%)"), std::string::npos) << shown.text();
  run_command("rm -rf " + std::string(RACKEP_BINARY_DIR) + "/startup_test_import_*");
}

}  // namespace
