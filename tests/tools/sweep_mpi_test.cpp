// `mpirun -np 2 rackep sweep ...` spreads the configurations over two processes and prints, on rank 0, the
// same table and CSV as the local `--jobs 2` run (OpenMPI from Debian; --oversubscribe on a small machine).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/cli_util.hpp"

namespace rackep {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(SweepMpi, TwoRanksGiveTheLocalTableAndCsv) {
  if (RACKEP_TOOLS_MPI == 0) GTEST_SKIP() << "rackep was built without MPI";
  if (test::run_command("command -v mpirun").exit_code != 0) GTEST_SKIP() << "no mpirun";
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "rackep_sweep_mpi";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string bin = std::string(RACKEP_BINARY_DIR) +
                          "/rackep --log-level warn sweep --trace synthetic:zipf "
                          "--ranks 8 --microbatches 1 --tokens-per-rank 256 "
                          "--balancers none,ultraep --grid slots=0,1,2 --grid imbalance=1.5,2 ";
  const test::CliRun local = test::run_command(bin + "--jobs 2 --csv " + (dir / "local.csv").string() +
                                               " > " + (dir / "local.txt").string());
  ASSERT_EQ(local.exit_code, 0) << local.text();
  // Under ASan (tools/test.sh) OpenMPI's own leaks are suppressed by library name (tools/lsan.supp), which
  // needs whole stacks: OpenMPI has no frame pointers for the fast unwinder. Ignored by a release build.
  const test::CliRun mpi = test::run_command(
      "ASAN_OPTIONS=\"${ASAN_OPTIONS}:fast_unwind_on_malloc=0\" OMPI_ALLOW_RUN_AS_ROOT=1 "
      "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 " +
      bin + "--jobs 1 --csv " + (dir / "mpi.csv").string() + " > " + (dir / "mpi.txt").string());
  ASSERT_EQ(mpi.exit_code, 0) << mpi.text();
  const std::string table = slurp((dir / "local.txt").string());
  EXPECT_NE(table.find("ultraep"), std::string::npos) << table;
  EXPECT_EQ(slurp((dir / "mpi.txt").string()), table);
  EXPECT_EQ(slurp((dir / "mpi.csv").string()), slurp((dir / "local.csv").string()));
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 1 + 6 * 2);  // header + 6 configurations x 2
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rackep
