// The command line of plan, simulate, sweep, trace and run-layer: one config behind every command (--config,
// --set, flags), numeric options with one valid range each ("default" is an absent option, never 0 or a
// negative number), errors naming the option that is wrong, exit codes (2 bad input including every parse
// error, 1 runtime / no GPU), refused balancers as rows, and the echoed config re-running a result.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/cli_util.hpp"

namespace rackep {
namespace {

using test::CliRun;
using test::run_rackep;

TEST(CliConfig, NumericOptionsOutsideTheirRangeNameTheOption) {
  struct Case {
    std::string args, expect;
  };
  for (const Case& c :
       {Case{"simulate --ranks -1", "--ranks"}, Case{"simulate --seq-len -5", "--seq-len"},
        Case{"simulate --tokens-per-rank -1", "--tokens-per-rank"},
        Case{"simulate --microbatches 0", "--microbatches"},
        Case{"simulate --ranks 1000000", "--ranks: 1000000: must be in [1, 65536]"},
        Case{"simulate --slots 1000000000", "--slots: 1000000000: must be in [0, 1024]"},
        Case{"simulate --pp 0", "--pp"}, Case{"simulate --schedule gpipe", "gpipe"},
        Case{"simulate --eplb-window 0", "--eplb-window"}, Case{"sweep --grid slots=1,2 --jobs 0", "--jobs"},
        Case{"sweep --grid slots=1,-2", "--grid: slots: must be in [0, 1024]"},
        Case{"plan --ranks 0", "--ranks: 0: must be in [1, 65536]"}, Case{"plan --domain 0", "--domain"},
        Case{"plan --max-records -1", "--max-records"}, Case{"plan --lplb-directions 0", "--lplb-directions"},
        Case{"trace stat /nonexistent --ranks 0", "--ranks"},
        Case{"trace import --from esft /nonexistent --out /tmp/x --replication 0", "--replication"},
        Case{"trace synth --out /tmp/x --ranks 0", "--ranks"},
        Case{"run-layer --model deepseek-v2-lite --trace /nonexistent --gpus 0", "--gpus"}}) {
    const CliRun r = run_rackep(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.text();
    EXPECT_NE(r.text().find(c.expect), std::string::npos) << c.args << "\n" << r.text();
    EXPECT_EQ(r.text().find("--passes"), std::string::npos) << c.args << "\n" << r.text();
  }
}

TEST(CliConfig, ParseErrorsExitTwo) {
  for (const std::string args :
       {"plan --bogus", "simulate --ranks", "simulate --ranks x", "nosuchcommand", "trace stat",
        "sweep --ranks 8", "simulate --set nosuch=1", "simulate --config /nonexistent/cfg.json"}) {
    const CliRun r = run_rackep(args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.text();
  }
  EXPECT_EQ(run_rackep("simulate --help").exit_code, 0);
}

TEST(CliConfig, RuntimeFailuresExitOne) {
  // No GPU here (or no CUDA backend in this build): a runtime failure, not bad input.
  const CliRun r = run_rackep("run-layer --model deepseek-v2-lite --trace /nonexistent");
  if (r.text().find("no CUDA GPU") == std::string::npos &&
      r.text().find("without the CUDA backend") == std::string::npos)
    GTEST_SKIP() << "a GPU is present: " << r.text();
  EXPECT_EQ(r.exit_code, 1) << r.text();
}

TEST(CliConfig, EveryDefaultBalancerOfMixtralIsARow) {
  // lplb refuses Mixtral's 8 experts at EP 8 (one expert per rank, R = 2): its row says why, the rest run.
  const CliRun table = run_rackep("--log-level warn simulate --model mixtral-8x7b --ranks 8");
  ASSERT_EQ(table.exit_code, 0) << table.text();
  for (const std::string name : {"none", "eplb", "lplb", "ultraep", "ideal"})
    EXPECT_NE(table.text().find("\n" + name + " "), std::string::npos) << name << "\n" << table.text();
  EXPECT_NE(table.text().find("refused: "), std::string::npos) << table.text();
  const CliRun json = run_rackep("--log-level warn simulate --model mixtral-8x7b --ranks 8 --json");
  ASSERT_EQ(json.exit_code, 0) << json.text();
  const auto j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j["balancers"].size(), 5u);
  int refused = 0;
  for (const auto& b : j["balancers"]) {
    if (b.contains("refused")) {
      ++refused;
      EXPECT_FALSE(b["refused"].get<std::string>().empty());
      EXPECT_FALSE(b.contains("step_s"));
    } else {
      EXPECT_GT(b["step_s"].get<double>(), 0.0) << b.dump();
    }
  }
  EXPECT_GE(refused, 1);
  EXPECT_EQ(j["config"]["model"], "mixtral-8x7b");
}

TEST(CliConfig, EchoedConfigReRunsThePlan) {
  const CliRun first = run_rackep(
      "--log-level warn plan --json --no-timing --ranks 8 --max-records 20 "
      "--balancers none,eplb,ultraep --eplb-window 2 --set slots=1");
  ASSERT_EQ(first.exit_code, 0) << first.text();
  const auto j = nlohmann::json::parse(first.out);
  EXPECT_EQ(j["config"]["eplb"]["window"], 2);
  EXPECT_EQ(j["config"]["slots"], 1);
  EXPECT_EQ(j["expert"]["model"], "DeepSeek-V2-Lite");
  EXPECT_EQ(j["expert"]["model_source"], "the trace's recorded model");
  const std::string path = (std::filesystem::temp_directory_path() / "rackep_plan_echo.json").string();
  std::ofstream(path) << j["config"].dump(2);
  const CliRun again = run_rackep("--log-level warn plan --json --no-timing --config " + path);
  ASSERT_EQ(again.exit_code, 0) << again.text();
  EXPECT_EQ(again.out, first.out);
  // --model chooses the expert sizes and says so.
  const CliRun other = run_rackep(
      "--log-level warn plan --json --no-timing --ranks 8 --max-records 2 "
      "--balancers ultraep --model qwen3-235b-a22b");
  ASSERT_EQ(other.exit_code, 0) << other.text();
  const auto o = nlohmann::json::parse(other.out);
  EXPECT_EQ(o["expert"]["model_source"], "--model");
  EXPECT_EQ(o["expert"]["hidden"], 4096);
}

TEST(CliConfig, SimulateTakesBalancerOptionsAndConfigFiles) {
  const std::string path = (std::filesystem::temp_directory_path() / "rackep_sim_cfg.json").string();
  std::ofstream(path) << R"({"trace": "synthetic:zipf", "ranks": 8, "microbatches": 2, "tokens_per_rank": 256,
                             "fidelity": "flow", "balancers": ["eplb"], "eplb": {"window": 1, "period": 2}})";
  const CliRun r = run_rackep("--log-level warn simulate --config " + path + " --set eplb.window=2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.text();
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["config"]["eplb"]["window"], 2) << "--set overrides the file";
  EXPECT_EQ(j["config"]["eplb"]["period"], 2);
  EXPECT_TRUE(j["config"]["schedule"].is_null()) << "absent: the mode's overlapped schedule";
  EXPECT_EQ(j["inputs"]["schedule"], "dualpipe");
  EXPECT_EQ(j["config"]["pp"], 1);
  const std::string bad = (std::filesystem::temp_directory_path() / "rackep_sim_bad.json").string();
  std::ofstream(bad) << R"({"eplb": {"widow": 2}})";
  const CliRun e = run_rackep("simulate --config " + bad);
  EXPECT_EQ(e.exit_code, 2) << e.text();
  EXPECT_NE(e.text().find(bad + ": eplb.widow: unknown key"), std::string::npos) << e.text();
}

}  // namespace
}  // namespace rackep
