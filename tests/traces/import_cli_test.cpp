// `rackep trace import --from FORMAT` followed by `rackep plan` on the fixture of every recorded format,
// `rackep trace export` round trips, and bad input through the CLI: a non-zero exit naming the file and
// field, and nothing written at --out.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "test_util.hpp"
#include "tests/cli_util.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;
const std::string kFix = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import";

using test::CliRun;

CliRun run(const std::string& args) {
  return test::run_rackep("--log-level warn " + args);
}

// Imports, checks the report, then plans the trace with two balancers.
void import_then_plan(const std::string& import_args, const std::string& expect_found, int64_t records) {
  test::TempDir tmp;
  const std::string out = tmp.path("t");
  const CliRun imp = run("trace import " + import_args + " --out " + out);
  ASSERT_EQ(imp.exit_code, 0) << imp.text();
  EXPECT_NE(imp.text().find("found ("), std::string::npos) << imp.text();
  EXPECT_NE(imp.text().find("assumed:"), std::string::npos) << imp.text();
  EXPECT_NE(imp.text().find(expect_found), std::string::npos) << imp.text();
  EXPECT_NE(imp.text().find("records: " + std::to_string(records)), std::string::npos) << imp.text();
  const CliRun plan = run("plan --trace " + out + " --balancers none,ultraep --slots 1 --json --no-timing");
  ASSERT_EQ(plan.exit_code, 0) << plan.text();
  const nlohmann::json j = nlohmann::json::parse(plan.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << plan.text();
}

TEST(ImportCli, TrtllmThenPlan) {
  import_then_plan("--from trtllm " + kFix + "/trtllm", "4 rank files", 9);
}

TEST(ImportCli, JsonlThenPlan) {
  import_then_plan("--from jsonl " + kFix + "/jsonl/routing.jsonl --experts 16", "12 (layer, batch) objects",
                   9);
}

TEST(ImportCli, UltraepThenPlan) {
  import_then_plan("--from ultraep " + kFix + "/ultraep --top-k 2 --seed 3", "ep_size 4", 12);
}

TEST(ImportCli, SglangThenPlan) {
  import_then_plan("--from sglang " + kFix + "/sglang/per_pass --top-k 2", "mode per_pass", 9);
  import_then_plan("--from sglang " + kFix + "/sglang/stat --top-k 2 --ranks 4 --seed 1", "mode stat", 9);
  import_then_plan("--from sglang " + kFix + "/sglang/csv --top-k 2", "mode legacy csv", 3);
}

TEST(ImportCli, VllmThenPlan) {
  import_then_plan("--from vllm " + kFix +
                       "/vllm/responses.jsonl --experts 16 --layers 0-2 --ranks 2 --tokens-per-rank 32",
                   "6 responses", 9);
  import_then_plan("--from vllm " + kFix + "/vllm/capture.jsonl --experts 16 --ranks 2 --tokens-per-rank 8",
                   "5 sequences", 5 * 3);
  import_then_plan("--from vllm " + kFix + "/loads/expert_load_view.pt --top-k 2 --ranks 4",
                   "expert_load_view", 3);
}

TEST(ImportCli, NewerAndOlderFilesThenPlan) {
  import_then_plan("--from trtllm " + kFix + "/trtllm_partial", "2 iterations", 6);
  import_then_plan(
      "--from trtllm " + kFix + "/trtllm_eplb --placement " + kFix + "/trtllm_eplb/moe_load_balancer.yaml",
      "20 slots", 9);
  import_then_plan("--from trtllm " + kFix + "/trtllm_raw", "_raw.safetensors", 9);
  import_then_plan("--from sglang " + kFix + "/sglang/per_token_old --top-k 2", "mode per_token", 6);
  import_then_plan("--from sglang " + kFix + "/sglang/two_dumps --top-k 2 --merge-dumps", "2 dumps merged",
                   12);
  import_then_plan("--from sglang " + kFix + "/sglang/two_dumps --top-k 2 --dump 1700000000", "mode per_pass",
                   6);
  import_then_plan("--from ultraep " + kFix + "/ultraep_ooo --top-k 2", "ep_size 4", 9);
  import_then_plan("--from jsonl " + kFix + "/jsonl/no_origin.jsonl --ranks 2 --tokens-per-rank 9",
                   "3 batches", 6);
  import_then_plan("--from loads " + kFix + "/loads/eplb_weight.npy --top-k 2 --ranks 4", "DeepSeek EPLB", 3);
}

TEST(ImportCli, HelpListsEveryFormatAndErrorsExitTwo) {
  const CliRun help = run("trace import --help");
  for (const char* fmt : {"esft", "trtllm", "sglang", "vllm", "ultraep", "jsonl", "loads"})
    EXPECT_NE(help.text().find(fmt), std::string::npos) << fmt << "\n" << help.text();
  test::TempDir tmp;
  const CliRun legacy =
      run("trace import --from sglang " + kFix + "/sglang/legacy --top-k 2 --ranks 2 --out " + tmp.path("o"));
  EXPECT_EQ(legacy.exit_code, 2) << legacy.text();
  EXPECT_NE(legacy.text().find("expert_distribution_recorder_1600000000.pt: format: a legacy (non-zip)"),
            std::string::npos)
      << legacy.text();
  const CliRun dumps =
      run("trace import --from sglang " + kFix + "/sglang/two_dumps --top-k 2 --out " + tmp.path("o"));
  EXPECT_EQ(dumps.exit_code, 2) << dumps.text();
  EXPECT_NE(dumps.text().find("--merge-dumps"), std::string::npos) << dumps.text();
  const CliRun slots =
      run("trace import --from trtllm " + kFix + "/trtllm_eplb --experts 16 --out " + tmp.path("o"));
  EXPECT_EQ(slots.exit_code, 2) << slots.text();
  EXPECT_NE(slots.text().find("meta_info.json: num_experts:"), std::string::npos) << slots.text();
  const CliRun esft =
      run("trace import --from esft " + std::string(RACKEP_SOURCE_DIR) +
          "/traces/data/esft-deepseek-v2-lite/intent --ranks 2 --tokens-per-rank 64 --layers 1 "
          "--experts 32 --out " +
          tmp.path("o"));
  EXPECT_EQ(esft.exit_code, 2) << esft.text();  // ids reach 63: --experts 32 is honoured, so refused
  EXPECT_FALSE(fs::exists(tmp.path("o")));
}

TEST(ImportCli, EsftIsAtomicToo) {
  test::TempDir tmp;
  const std::string esft = std::string(RACKEP_SOURCE_DIR) + "/traces/data/esft-deepseek-v2-lite/intent";
  // T = 100000 fills no microbatch: the import fails and leaves nothing.
  const CliRun r = run("trace import --from esft " + esft +
                       " --ranks 8 --tokens-per-rank 100000 --layers 1 --out " + tmp.path("out"));
  EXPECT_NE(r.exit_code, 0) << r.text();
  EXPECT_FALSE(fs::exists(tmp.path("out")));
}

TEST(ImportCli, ExportRoundTrip) {
  test::TempDir tmp;
  ASSERT_EQ(run("trace import --from trtllm " + kFix + "/trtllm --out " + tmp.path("a")).exit_code, 0);
  for (const char* fmt : {"trtllm", "jsonl"}) {
    const std::string exported = tmp.path(std::string("x.") + fmt);
    const CliRun e =
        run(std::string("trace export --to ") + fmt + " " + tmp.path("a") + " --out " + exported);
    ASSERT_EQ(e.exit_code, 0) << e.text();
    const std::string back = tmp.path(std::string("b.") + fmt);
    const CliRun i = run(std::string("trace import --from ") + fmt + " " + exported +
                         " --ranks 4 --experts 16 --tokens-per-rank 40 --out " + back);
    ASSERT_EQ(i.exit_code, 0) << i.text();
    // Same records: the chunk files are byte-identical.
    EXPECT_EQ(test::read_bytes(tmp.path("a/chunk-000000.loads.npy")),
              test::read_bytes(back + "/chunk-000000.loads.npy"))
        << fmt;
    EXPECT_EQ(test::read_bytes(tmp.path("a/chunk-000000.index.npy")),
              test::read_bytes(back + "/chunk-000000.index.npy"))
        << fmt;
  }
}

TEST(ImportCli, BadInputWritesNothing) {
  test::TempDir tmp;
  const std::string in = tmp.path("in");
  fs::copy(kFix + "/trtllm", in);
  const std::string f = in + "/rank2.safetensors";
  test::write_bytes(f, test::read_bytes(f).substr(0, 900));
  const CliRun r = run("trace import --from trtllm " + in + " --out " + tmp.path("out"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.text().find("rank2.safetensors"), std::string::npos) << r.text();
  EXPECT_FALSE(fs::exists(tmp.path("out")));
  const CliRun u = run("trace import --from ultraep " + kFix + "/ultraep --out " + tmp.path("out"));
  EXPECT_NE(u.exit_code, 0);
  EXPECT_NE(u.text().find("--top-k"), std::string::npos) << u.text();
  const CliRun bad = run("trace import --from nosuch " + in + " --out " + tmp.path("out"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.text().find("unknown format"), std::string::npos) << bad.text();
  EXPECT_FALSE(fs::exists(tmp.path("out")));
  for (const auto& e : fs::directory_iterator(tmp.path("")))
    EXPECT_EQ(e.path().filename().string().find(".partial-"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace rackep
