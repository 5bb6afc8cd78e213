// `rackep sweep` over the training-memory keys: the table and the CSV carry each configuration's memory, and
// ZeRO-1 over more data-parallel replicas can only lower it (the step time does not depend on either key).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli_util.hpp"

namespace rackep {
namespace {

std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, sep)) out.push_back(cell);
  if (!line.empty() && line.back() == sep) out.emplace_back();
  return out;
}

TEST(Sweep, MemoryColumnsFollowZeroAndDataParallelism) {
  const std::string csv_path = std::string(::testing::TempDir()) + "/rackep_sweep_memory.csv";
  std::remove(csv_path.c_str());
  const test::CliRun r = test::run_rackep(
      "--log-level warn sweep --trace synthetic:zipf --ranks 8 --microbatches 1 --tokens-per-rank 256 "
      "--balancers ultraep --grid zero=0,1 --grid dp=1,4 --csv " +
      csv_path);
  ASSERT_EQ(r.exit_code, 0) << r.text();
  EXPECT_NE(r.out.find("mem GiB"), std::string::npos) << r.out;
  std::ifstream in(csv_path);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const std::vector<std::string> head = split(line, ',');
  ASSERT_EQ(head.size(), 16u) << line;  // zero, dp + 14 result columns
  EXPECT_EQ(head[13], "memory_gib");
  EXPECT_EQ(head[14], "oom");
  std::vector<double> mem;
  std::vector<std::string> step;
  while (std::getline(in, line)) {
    const std::vector<std::string> row = split(line, ',');
    ASSERT_EQ(row.size(), head.size()) << line;
    mem.push_back(std::stod(row[13]));
    step.push_back(row[4]);
    EXPECT_EQ(row[14], "false") << line;
  }
  ASSERT_EQ(mem.size(), 4u);         // (zero, dp) = (0,1), (0,4), (1,1), (1,4)
  EXPECT_DOUBLE_EQ(mem[0], mem[1]);  // no sharding: DP changes nothing
  EXPECT_LT(mem[2], mem[0]);         // ZeRO-1 over the EP ranks
  EXPECT_LT(mem[3], mem[2]);         // and over 4 replicas more
  for (const std::string& s : step) EXPECT_EQ(s, step[0]);
  std::remove(csv_path.c_str());
}

}  // namespace
}  // namespace rackep
