// Every file of tests/fixtures/hostile/ (README.md there says what each exercises) given to the command that
// reads it: exit code 2 and an error naming the file and the field, never a crash, a huge allocation or a
// silent wrong answer. Outputs: an existing file is refused and left as it was.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/cli_util.hpp"
#include "tests/traces/test_util.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;

const std::string kHostile = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/hostile/";
const std::string kImport = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/";
const std::string kUltraepId = "epg7f00aa_gr0_r0_1700000000000";

// Runs rackep `args`; expects exit 2 and "<...source_part...>: <field>: " in the error.
void expect_refused(const std::string& args, const std::string& source_part, const std::string& field) {
  const test::CliRun r = test::run_rackep("--log-level warn " + args);
  EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.text();
  const size_t at = r.err.find(": " + field + ": ");
  ASSERT_NE(at, std::string::npos) << "field '" << field << "' not named: " << args << "\n" << r.text();
  EXPECT_NE(r.err.rfind(source_part, at), std::string::npos)
      << "source '" << source_part << "' not named: " << args << "\n"
      << r.text();
}

// An UltraEP profile directory holding `manifest` and `chunk` under the fixture's trace id.
std::string ultraep_dir(const test::TempDir& tmp, const std::string& manifest, const std::string& chunk) {
  const std::string dir = tmp.path("uep");
  fs::create_directories(dir);
  fs::copy_file(manifest, dir + "/" + kUltraepId + ".manifest.json");
  fs::copy_file(chunk, dir + "/" + kUltraepId + ".chunk000000.npz");
  return dir;
}

TEST(Hostile, ZipSmallerThanZip64RecordIsRefused) {
  test::TempDir tmp;
  const std::string dir =
      ultraep_dir(tmp, kImport + "ultraep/" + kUltraepId + ".manifest.json", kHostile + "zip-tiny-zip64.npz");
  expect_refused("trace import --from ultraep " + dir + " --top-k 2 --out " + tmp.path("out"),
                 "chunk000000.npz", "zip");
  EXPECT_FALSE(fs::exists(tmp.path("out")));
}

TEST(Hostile, ZipMemberSizeClaimIsCheckedBeforeAllocating) {
  test::TempDir tmp;
  const std::string dir =
      ultraep_dir(tmp, kImport + "ultraep/" + kUltraepId + ".manifest.json", kHostile + "zip-size-claim.npz");
  expect_refused("trace import --from ultraep " + dir + " --top-k 2 --out " + tmp.path("out"),
                 "chunk000000.npz", "layers.npy");
}

TEST(Hostile, UltraepExpertCountProductDoesNotOverflow) {
  test::TempDir tmp;
  const std::string dir = ultraep_dir(tmp, kHostile + "ultraep-overflow.manifest.json",
                                      kImport + "ultraep/" + kUltraepId + ".chunk000000.npz");
  expect_refused("trace import --from ultraep " + dir + " --top-k 2 --out " + tmp.path("out"),
                 "manifest.json", "num_global_logical_experts");
}

TEST(Hostile, TorchTensorStrideOverflowIsRefusedNotWrapped) {
  test::TempDir tmp;
  expect_refused(
      "trace import --from sglang " + kHostile + "pt-stride-overflow.pt --top-k 2 --out " + tmp.path("out"),
      "pt-stride-overflow.pt", "logical_count");
}

TEST(Hostile, PickleNestingIsBounded) {
  test::TempDir tmp;
  expect_refused(
      "trace import --from sglang " + kHostile + "pt-deep-pickle.pt --top-k 2 --out " + tmp.path("out"),
      "pt-deep-pickle.pt", "pickle");
}

TEST(Hostile, PickleCycleIsRefused) {
  test::TempDir tmp;
  expect_refused(
      "trace import --from sglang " + kHostile + "pt-cycle-pickle.pt --top-k 2 --out " + tmp.path("out"),
      "pt-cycle-pickle.pt", "pickle");
}

TEST(Hostile, ManifestClaimingTwoToTheSixtyTwoRecords) {
  expect_refused("trace stat " + kHostile + "trace-2e62-records", "chunk-000000.loads.npy", "shape");
}

TEST(Hostile, ManifestChunkRecordSumOverflow) {
  expect_refused("trace stat " + kHostile + "trace-records-overflow", "manifest.json", "chunks[1].records");
}

TEST(Hostile, NpySizeOverflow) {
  expect_refused("trace stat " + kHostile + "trace-npy-overflow", "chunk-000000.loads.npy", "shape");
}

TEST(Hostile, ManifestNumberOutOfRangeNamesTheKey) {
  expect_refused("trace stat " + kHostile + "trace-1e999", "manifest.json", "tokens_per_rank");
}

TEST(Hostile, JsonlLineClaimingAHugeMatrix) {
  test::TempDir tmp;
  expect_refused("trace import --from jsonl " + kHostile + "jsonl-huge-claim.jsonl --out " + tmp.path("out"),
                 "jsonl-huge-claim.jsonl", "num_experts");
}

TEST(Hostile, SglangCsvRankOutOfIntRange) {
  test::TempDir tmp;
  const std::string csv =
      kHostile + "sglang-csv/expert_distribution_rank99999999999999999999_timestamp1700000000.csv";
  expect_refused("trace import --from sglang " + csv + " --top-k 2 --out " + tmp.path("out"),
                 "timestamp1700000000.csv", "rank");
}

TEST(Hostile, TrtllmCountsThatWouldOverflowTheRowSum) {
  test::TempDir tmp;
  expect_refused("trace import --from trtllm " + kHostile + "trtllm-count-overflow --out " + tmp.path("out"),
                 "rank0.safetensors", "10_1 expert 0");
}

TEST(Hostile, SafetensorsHeaderNestingIsBounded) {
  test::TempDir tmp;
  expect_refused("trace import --from trtllm " + kHostile + "trtllm-deep-header --out " + tmp.path("out"),
                 "rank0.safetensors", "json");
}

TEST(Hostile, DeeplyNestedSimulatorFiles) {
  for (const char* flag : {"--model", "--topology", "--calibration"})
    expect_refused(std::string("simulate ") + flag + " " + kHostile + "model-deep.json", "model-deep.json",
                   "json");
}

TEST(Hostile, ModelNumberOutOfRangeNamesTheKey) {
  expect_refused("simulate --model " + kHostile + "model-1e999.json", "model-1e999.json", "hidden.value");
}

TEST(Hostile, ModelWithTooManyExpertsBlamesTheModelFile) {
  expect_refused("simulate --model " + kHostile + "model-2e20-experts.json", "model-2e20-experts.json",
                 "num_experts");
}

TEST(Hostile, ExistingOutputsAreRefusedAndKept) {
  test::TempDir tmp;
  const std::string keep = tmp.path("keep.json");
  test::write_bytes(keep, "precious\n");
  expect_refused("simulate --timeline " + keep, "keep.json", "--timeline");
  expect_refused("simulate --dump-topology " + keep, "keep.json", "--dump-topology");
  expect_refused("sweep --grid slots=1,2 --csv " + keep, "keep.json", "--csv");
  expect_refused("plan --ranks 8 --no-timing --report " + keep, "keep.json", "--report");
  const std::string trace = tmp.path("trace");
  const test::CliRun synth =
      test::run_rackep("--log-level warn trace synth --out " + trace +
                       " --ranks 2 --experts 4 --top-k 2 --tokens-per-rank 8 --layers 1"
                       " --microbatches 1 --imbalance 1.2");
  ASSERT_EQ(synth.exit_code, 0) << synth.text();
  expect_refused("trace synth --out " + trace + " --ranks 2 --experts 4 --top-k 2 --imbalance 1.2", "trace",
                 "--out");
  expect_refused("trace export --to jsonl " + trace + " --out " + keep, "keep.json", "--out");
  EXPECT_EQ(test::read_bytes(keep), "precious\n");
  // Nothing but the user's files is left in the directory (no temporaries).
  for (const auto& e : fs::directory_iterator(tmp.path("")))
    EXPECT_TRUE(e.path().filename() == "keep.json" || e.path().filename() == "trace") << e.path();
}

}  // namespace
}  // namespace rackep
