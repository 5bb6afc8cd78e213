// `rackep plan` end to end on the shipped real trace: tables at EP 8/16/32, JSON, determinism, and bad input
// (shapes that cannot be planned, unknown balancers, missing or malformed traces) ending with a clear message
// naming the offending flag or file and exit code 2.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.hpp"

namespace rackep {
namespace {

using test::run_rackep;

TEST(PlanCli, BundledTraceAtEp8_16_32) {
  for (int n : {8, 16, 32}) {
    const test::CliRun r =
        run_rackep("--log-level warn plan --no-timing --json --ranks " + std::to_string(n));
    ASSERT_EQ(r.exit_code, 0) << r.text();
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["shape"]["ranks"], n);
    EXPECT_EQ(j["shape"]["experts"], 64);
    ASSERT_EQ(j["balancers"].size(), 6u);
    double none_after = 0, ultraep_after = 0, ideal_after = 0;
    for (const auto& b : j["balancers"]) {
      EXPECT_FALSE(b.contains("planner_us")) << "--no-timing must drop wall-clock fields";
      if (b["name"] == "none") none_after = b["imbalance_after"]["mean"];
      if (b["name"] == "ultraep") ultraep_after = b["imbalance_after"]["mean"];
      if (b["name"] == "ideal") ideal_after = b["imbalance_after"]["mean"];
    }
    // The real routing is imbalanced; ultraep brings it within a few percent of the ideal.
    EXPECT_GT(none_after, 1.2) << "EP " << n;
    EXPECT_LT(ultraep_after, 1.05) << "EP " << n;
    EXPECT_LT(ultraep_after, none_after);
    EXPECT_NEAR(ideal_after, 1.0, 1e-3);
  }
}

TEST(PlanCli, SameInputsGiveByteIdenticalOutput) {
  const std::string args = "--log-level warn plan --no-timing --ranks 16 --max-records 52";
  const test::CliRun a = run_rackep(args);
  const test::CliRun b = run_rackep(args);
  ASSERT_EQ(a.exit_code, 0) << a.text();
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.text().find("ultraep"), std::string::npos);
}

TEST(PlanCli, ImpossibleShapesAreRejected) {
  struct Case {
    std::string args, expect;
  };
  for (const Case& c :
       {Case{"plan --ranks 3", "--ranks"}, Case{"plan --ranks 8 --domain 3", "domain"},
        Case{"plan --ranks 8 --slots -1", "slots"}, Case{"plan --balancers ultraep,foo", "foo"},
        Case{"plan --model nosuchmodel", "--model"}, Case{"plan --eplb-policy sideways", "sideways"}}) {
    const test::CliRun r = run_rackep(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.text();
    EXPECT_NE(r.text().find(c.expect), std::string::npos) << c.args << "\n" << r.text();
  }
}

TEST(PlanCli, MissingOrMalformedTraceNamesTheFile) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "rackep_plan_cli_bad";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  test::CliRun r = run_rackep("plan --trace " + dir.string());
  EXPECT_EQ(r.exit_code, 2) << r.text();
  EXPECT_NE(r.text().find("manifest.json"), std::string::npos) << r.text();
  std::ofstream(dir / "manifest.json") << "{\"format\": \"rackep-trace\", \"num_ranks\": ";
  r = run_rackep("plan --trace " + dir.string());
  EXPECT_EQ(r.exit_code, 2) << r.text();
  EXPECT_NE(r.text().find("manifest.json"), std::string::npos) << r.text();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rackep
