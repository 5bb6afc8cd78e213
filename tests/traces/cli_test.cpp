// `rackep trace synth|import|stat` end to end through the built binary: outputs, and exit codes on bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.hpp"
#include "tests/cli_util.hpp"

namespace rackep {
namespace {

const std::string kData = std::string(RACKEP_SOURCE_DIR) + "/traces/data/esft-deepseek-v2-lite";

using test::CliRun;

CliRun run(const std::string& args) {
  return test::run_rackep(args);
}

TEST(TraceCli, SynthThenStat) {
  test::TempDir tmp;
  const std::string out = tmp.path("t");
  const CliRun s = run("--log-level warn trace synth --out " + out +
                       " --kind switch --ranks 8 --experts 32 --top-k 4 --tokens-per-rank 256 --layers 3"
                       " --microbatches 4 --imbalance 2 --seed 9 --switch-every 2 --chunk-records 5");
  ASSERT_EQ(s.exit_code, 0) << s.text();
  EXPECT_NE(s.text().find("records: 12"), std::string::npos) << s.text();
  const CliRun st = run("--log-level warn trace stat " + out + " --json --hot 4");
  ASSERT_EQ(st.exit_code, 0) << st.text();
  const nlohmann::json j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j["records"], 12);
  EXPECT_EQ(j["microbatches"], 4);
  EXPECT_EQ(j["layers"].size(), 3u);
  EXPECT_EQ(j["layers"][0]["predict_previous"]["pairs"], 3);
  EXPECT_EQ(j["layers"][0]["hottest"].size(), 4u);
  EXPECT_NEAR(j["overall"]["imbalance"]["mean"].get<double>(), 2.0, 0.3);
  EXPECT_EQ(j["provenance"]["kind"], "switch");
  // The same seed gives the same files.
  const CliRun again = run("--log-level warn trace synth --out " + tmp.path("t2") +
                           " --kind switch --ranks 8 --experts 32 --top-k 4 --tokens-per-rank 256 --layers 3"
                           " --microbatches 4 --imbalance 2 --seed 9 --switch-every 2 --chunk-records 5");
  ASSERT_EQ(again.exit_code, 0) << again.text();
  for (const char* f :
       {"manifest.json", "chunk-000000.loads.npy", "chunk-000002.loads.npy", "chunk-000001.index.npy"})
    EXPECT_EQ(test::read_bytes(out + "/" + f), test::read_bytes(tmp.path("t2/") + f)) << f;
  // Text output with a --ranks override (32 experts over 4 ranks).
  const CliRun text = run("--log-level warn trace stat " + out + " --ranks 4");
  ASSERT_EQ(text.exit_code, 0) << text.text();
  EXPECT_NE(text.text().find("EP 4, 8 consecutive experts per rank"), std::string::npos) << text.text();
}

TEST(TraceCli, ImportEsft) {
  test::TempDir tmp;
  const CliRun r = run("--log-level warn trace import --from esft " + kData + "/intent " + kData +
                       "/summary --ranks 8 --tokens-per-rank 512 --policy pack --seed 3 --layers 1-4 --out " +
                       tmp.path("esft"));
  ASSERT_EQ(r.exit_code, 0) << r.text();
  EXPECT_NE(r.text().find("intent: 127 sequences, 8222 tokens"), std::string::npos) << r.text();
  EXPECT_NE(r.text().find("summary: 13 sequences, 8479 tokens"), std::string::npos) << r.text();
  // 16701 tokens -> 4 microbatches of 8 x 512 = 4096, 317 dropped.
  EXPECT_NE(r.text().find("4 microbatches of 8 ranks; 317 tokens dropped"), std::string::npos) << r.text();
  EXPECT_TRUE(std::filesystem::exists(tmp.path("esft/SOURCE.md")));
  const CliRun st = run("--log-level warn trace stat " + tmp.path("esft") + " --json");
  ASSERT_EQ(st.exit_code, 0) << st.text();
  const nlohmann::json j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j["records"], 16);
  EXPECT_EQ(j["layers"][0]["layer"], 1);
  EXPECT_EQ(j["overall"]["tokens"], 16 * 8 * 512 * 6);
}

TEST(TraceCli, BadInputExitsNonZeroWithTheFileName) {
  test::TempDir tmp;
  const CliRun missing = run("trace stat " + tmp.path("none"));
  EXPECT_EQ(missing.exit_code, 2) << missing.text();
  EXPECT_NE(missing.text().find("none"), std::string::npos) << missing.text();

  ASSERT_EQ(run("--log-level warn trace synth --out " + tmp.path("t") +
                " --ranks 4 --experts 8 --top-k 2 --tokens-per-rank 16 --layers 1 --microbatches 2")
                .exit_code,
            0);
  const std::string chunk = tmp.path("t/chunk-000000.loads.npy");
  const std::string bytes = test::read_bytes(chunk);
  test::write_bytes(chunk, bytes.substr(0, bytes.size() - 1));
  const CliRun truncated = run("trace stat " + tmp.path("t"));
  EXPECT_EQ(truncated.exit_code, 2) << truncated.text();
  EXPECT_NE(truncated.text().find("chunk-000000.loads.npy: size"), std::string::npos) << truncated.text();

  const CliRun overwrite = run("trace synth --out " + tmp.path("t") + " --ranks 4 --experts 8 --top-k 2");
  EXPECT_EQ(overwrite.exit_code, 2) << overwrite.text();
  EXPECT_NE(overwrite.text().find("refusing to overwrite"), std::string::npos) << overwrite.text();
  EXPECT_EQ(test::read_bytes(chunk), bytes.substr(0, bytes.size() - 1));

  const CliRun bad_task = run("trace import --from esft " + tmp.path("nope") +
                              " --ranks 8 --tokens-per-rank 64 --out " + tmp.path("o"));
  EXPECT_EQ(bad_task.exit_code, 2) << bad_task.text();
  EXPECT_FALSE(std::filesystem::exists(tmp.path("o")));
  const CliRun bad_kind = run("trace synth --out " + tmp.path("k") + " --kind burst");
  EXPECT_EQ(bad_kind.exit_code, 2) << bad_kind.text();
}

}  // namespace
}  // namespace rackep
