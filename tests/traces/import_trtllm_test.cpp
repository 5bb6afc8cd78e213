// The TensorRT-LLM expert-statistic importer: the shipped fixture (tools/make_import_fixtures.py), the round
// trip canonical -> trtllm -> canonical, and every kind of bad input (truncated safetensors, mismatched
// shapes, missing keys, layers outside the model), each with the file and field named and nothing written.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "traces/import_common.hpp"
#include "traces/import_trtllm.hpp"
#include "traces/synthetic.hpp"
#include "traces/trace_reader.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;
const std::string kFixture = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/trtllm";

using test::drain;

// A copy of the fixture that a test may damage.
std::string copy_fixture(const test::TempDir& tmp) {
  const std::string d = tmp.path("in");
  fs::copy(kFixture, d);
  return d;
}

TEST(ImportTrtllm, Fixture) {
  ImportReport report;
  auto s = open_trtllm_stats(kFixture, {}, report);
  const TraceManifest& m = s->manifest();
  EXPECT_EQ(m.num_ranks, 4);
  EXPECT_EQ(m.num_experts, 16);
  EXPECT_EQ(m.top_k, 2);
  EXPECT_EQ(m.layers, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(m.num_records, 9);
  const auto records = drain(*s);
  ASSERT_EQ(records.size(), 9u);
  EXPECT_EQ(records[0].microbatch, 10);
  EXPECT_EQ(records[0].layer, 1);
  EXPECT_EQ(records[8].microbatch, 12);
  EXPECT_EQ(records[8].layer, 3);
  // Every row is a bincount of top-2 ids, so it sums to exactly 2 x the rank's token count, which
  // rank{r}_numtokens.json records independently.
  int64_t max_tokens = 0;
  for (int r = 0; r < 4; ++r) {
    const nlohmann::json nt =
        nlohmann::json::parse(test::read_bytes(kFixture + "/rank" + std::to_string(r) + "_numtokens.json"));
    for (const TraceRecord& rec : records) {
      const int64_t tokens =
          nt.at(std::to_string(rec.microbatch) + "_" + std::to_string(rec.layer)).get<int64_t>();
      EXPECT_EQ(rec.loads.source_totals()[r], 2 * tokens) << rec.microbatch << "_" << rec.layer;
      max_tokens = std::max(max_tokens, tokens);
    }
  }
  EXPECT_EQ(m.tokens_per_rank, max_tokens);
  EXPECT_FALSE(report.found.empty());
}

TEST(ImportTrtllm, RoundTripIsIdentity) {
  test::TempDir tmp;
  SynthConfig c;
  c.num_ranks = 4;
  c.num_experts = 32;
  c.top_k = 4;
  c.tokens_per_rank = 64;
  c.layers = {3, 5, 7};
  c.num_microbatches = 5;
  c.variable_tokens = true;
  SyntheticStream gen(c);
  write_trtllm_stats(gen, tmp.path("trt"));
  SyntheticStream again(c);
  const auto want = drain(again);
  ImportReport report;
  auto s = open_trtllm_stats(tmp.path("trt"), {}, report);
  EXPECT_EQ(s->manifest().num_ranks, 4);
  EXPECT_EQ(s->manifest().num_experts, 32);
  EXPECT_EQ(s->manifest().top_k, 4);
  EXPECT_EQ(s->manifest().layers, c.layers);
  const auto got = drain(*s);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].layer, want[i].layer);
    EXPECT_EQ(got[i].microbatch, want[i].microbatch);
    EXPECT_EQ(got[i].loads, want[i].loads) << i;
  }
  // And through the canonical writer: the file trace reads back the same records.
  auto s2 = open_trtllm_stats(tmp.path("trt"), {}, report);
  write_trace_atomic(*s2, tmp.path("canon"), {4});
  TraceReader reader(tmp.path("canon"));
  const auto read = drain(reader);
  ASSERT_EQ(read.size(), want.size());
  for (size_t i = 0; i < read.size(); ++i) EXPECT_EQ(read[i].loads, want[i].loads);
}

const std::string kFix = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import";

// The values of tensor `key` of a safetensors file, read straight from its header (test oracle).
std::vector<int64_t> tensor_of(const std::string& path, const std::string& key) {
  const std::string bytes = test::read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  const auto& t = h.at(key);
  const size_t begin = 8 + n + t["data_offsets"][0].get<size_t>(),
               end = 8 + n + t["data_offsets"][1].get<size_t>();
  const size_t width = t["dtype"] == "I64" ? 8 : 4;
  std::vector<int64_t> out;
  for (size_t at = begin; at < end; at += width) {
    int64_t v = 0;
    if (width == 8)
      std::memcpy(&v, bytes.data() + at, 8);
    else {
      int32_t w = 0;
      std::memcpy(&w, bytes.data() + at, 4);
      v = w;
    }
    out.push_back(v);
  }
  return out;
}

TEST(ImportTrtllm, FinalIterationMissingOnSomeRanks) {
  // Ranks 2 and 3 stopped before iteration 12: iterations 10 and 11 are kept, 12 dropped and said so.
  ImportReport report;
  auto s = open_trtllm_stats(kFix + "/trtllm_partial", {}, report);
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs.back().microbatch, 11);
  bool said = false;
  for (const auto& l : report.assumed) said |= l.find("1 final iteration(s) (12)") == 0;
  EXPECT_TRUE(said);
  // Every row equals its rank's file.
  for (const TraceRecord& r : recs)
    for (int rank = 0; rank < 4; ++rank) {
      const auto want = tensor_of(kFix + "/trtllm_partial/rank" + std::to_string(rank) + ".safetensors",
                                  std::to_string(r.microbatch) + "_" + std::to_string(r.layer));
      for (int e = 0; e < 16; ++e) EXPECT_EQ(r.loads.at(rank, e), want[static_cast<size_t>(e)]);
    }
}

TEST(ImportTrtllm, LoadBalancerSlotsMapToExperts) {
  const std::string dir = kFix + "/trtllm_eplb";
  ImportReport report;
  ImportOptions o;
  o.placement = dir + "/moe_load_balancer.yaml";
  auto s = open_trtllm_stats(dir, o, report);
  EXPECT_EQ(s->manifest().num_experts, 16);  // 20 slots, experts 0..3 twice
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 9u);
  for (const TraceRecord& r : recs) {
    EXPECT_EQ(r.loads.source_totals(), (std::vector<int64_t>{48, 48}));
    for (int rank = 0; rank < 2; ++rank) {  // slot s holds expert s (s < 16) or s - 16 (the placement)
      const auto slots = tensor_of(dir + "/rank" + std::to_string(rank) + ".safetensors",
                                   std::to_string(r.microbatch) + "_" + std::to_string(r.layer));
      ASSERT_EQ(slots.size(), 20u);
      for (int e = 0; e < 16; ++e)
        EXPECT_EQ(r.loads.at(rank, e), slots[e] + (e < 4 ? slots[16 + e] : 0)) << e;
    }
  }
  // Without the placement, --experts 16 < 20 recorded ids is refused with the reason.
  ImportOptions no_map;
  no_map.num_experts = 16;
  test::expect_input_error([&] { open_trtllm_stats(dir, no_map, report); }, "meta_info.json", "num_experts");
  // A placement that moves experts during the run cannot map slots.
  test::TempDir tmp;
  const std::string moving = tmp.path("lb.yaml");
  std::string text = test::read_bytes(o.placement);
  text.replace(text.find("layer_updates_per_iter: 0"), 25, "layer_updates_per_iter: 2");
  test::write_bytes(moving, text);
  ImportOptions dyn;
  dyn.placement = moving;
  test::expect_input_error([&] { open_trtllm_stats(dir, dyn, report); }, "lb.yaml", "layer_updates_per_iter");
}

TEST(ImportTrtllm, RawTokenSelectedExperts) {
  // rank{r}_raw.safetensors: [tokens, 2] ids per key; rows are their bincounts, T the most tokens of a rank.
  ImportReport report;
  auto s = open_trtllm_stats(kFix + "/trtllm_raw", {}, report);
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 9u);
  int64_t max_tokens = 0;
  for (const TraceRecord& r : recs) {
    for (int rank = 0; rank < 2; ++rank) {  // row = bincount of the raw ids
      const auto ids = tensor_of(kFix + "/trtllm_raw/rank" + std::to_string(rank) + "_raw.safetensors",
                                 std::to_string(r.microbatch) + "_" + std::to_string(r.layer));
      std::vector<int32_t> want(16, 0);
      for (int64_t e : ids) ++want[static_cast<size_t>(e)];
      for (int e = 0; e < 16; ++e) EXPECT_EQ(r.loads.at(rank, e), want[e]);
    }
    for (int64_t t : r.loads.source_totals()) {
      EXPECT_EQ(t % 2, 0);
      EXPECT_GE(t, 20);  // 10..20 tokens x top-2
      EXPECT_LE(t, 40);
      max_tokens = std::max(max_tokens, t / 2);
    }
  }
  EXPECT_EQ(s->manifest().tokens_per_rank, max_tokens);
}

TEST(ImportTrtllm, LayerMappingAndReplication) {
  ImportReport report;
  ImportOptions o;
  o.layers = {3, 2, 1};
  auto s = open_trtllm_stats(kFixture, o, report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{3, 2, 1}));
  const auto recs = drain(*s);
  EXPECT_EQ(recs[0].layer, 3);
  // A listed layer the recording does not hold (layer 0 is dense: not recorded) -> error.
  o.layers = {3, 2, 1, 0};
  test::expect_input_error([&] { open_trtllm_stats(kFixture, o, report); }, "--layers", "--layers");
  // Unlisted layers are left out, and said so.
  o.layers = {1, 2};
  ImportReport picked;
  EXPECT_EQ(drain(*open_trtllm_stats(kFixture, o, picked)).size(), 6u);
  bool said = false;
  for (const auto& l : picked.assumed) said |= l.find("layers 3 route tokens but are not in --layers") == 0;
  EXPECT_TRUE(said);
  // --replication 2 on ranks that differ is an error naming the file.
  ImportOptions rep;
  rep.replication = 2;
  test::expect_input_error([&] { open_trtllm_stats(kFixture, rep, report); }, "rank1.safetensors", "10_1");
  // Replicated ranks (TP attention) are detected and folded.
  test::TempDir tmp;
  SynthConfig c;
  c.num_ranks = 1;
  c.imbalance = 1.0;  // one rank: no rank imbalance to target
  c.num_experts = 8;
  c.top_k = 2;
  c.tokens_per_rank = 16;
  c.num_microbatches = 2;
  SyntheticStream one(c);
  write_trtllm_stats(one, tmp.path("one"));
  fs::create_directory(tmp.path("dup"));
  for (int r = 0; r < 3; ++r)
    fs::copy_file(tmp.path("one/rank0.safetensors"),
                  tmp.path("dup/rank" + std::to_string(r) + ".safetensors"));
  test::write_bytes(tmp.path("dup/meta_info.json"), R"({"num_experts": 8, "num_experts_per_token": 2})");
  ImportReport dup_report;
  auto dup = open_trtllm_stats(tmp.path("dup"), {}, dup_report);
  EXPECT_EQ(dup->manifest().num_ranks, 3);
  bool noted = false;
  for (const auto& line : dup_report.assumed) noted |= line.find("--replication 3") != std::string::npos;
  EXPECT_TRUE(noted);
  ImportOptions three;
  three.replication = 3;
  auto folded = open_trtllm_stats(tmp.path("dup"), three, dup_report);
  EXPECT_EQ(folded->manifest().num_ranks, 1);
  SyntheticStream ref(c);
  const auto want = drain(ref);
  const auto got = drain(*folded);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].loads, want[i].loads);
}

TEST(ImportTrtllm, BadInput) {
  test::TempDir tmp;
  ImportReport report;
  {  // truncated data: the header promises more bytes than the file holds
    const std::string d = copy_fixture(tmp);
    const std::string f = d + "/rank1.safetensors";
    const std::string bytes = test::read_bytes(f);
    test::write_bytes(f, bytes.substr(0, bytes.size() - 100));
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank1.safetensors", "12_3");
    test::write_bytes(f, bytes.substr(0, 60));  // cut inside the header
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank1.safetensors", "header");
    test::write_bytes(f, bytes.substr(0, 5));
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank1.safetensors", "header");
    fs::remove_all(d);
  }
  {  // shape and dtype mismatches
    const std::string d = copy_fixture(tmp);
    const std::string f = d + "/rank2.safetensors";
    std::string bytes = test::read_bytes(f);
    const size_t at = bytes.find("\"shape\":[16]");
    bytes.replace(at, 12, "\"shape\":[17]");
    test::write_bytes(f, bytes);
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank2.safetensors", "10_1");
    bytes.replace(at, 12, "\"shape\":[16]");
    bytes.replace(bytes.find("\"I64\""), 5, "\"F64\"");
    test::write_bytes(f, bytes);
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank2.safetensors", "10_1");
    fs::remove_all(d);
  }
  {  // a key missing from one rank; ep_size disagreeing with the files; bad meta_info
    const std::string d = copy_fixture(tmp);
    const std::string f = d + "/rank3.safetensors";
    std::string bytes = test::read_bytes(f);
    bytes.replace(bytes.find("\"11_2\""), 6, "\"11_9\"");
    test::write_bytes(f, bytes);
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "rank3.safetensors", "key");
    fs::remove(f);
    fs::remove(d + "/rank3_numtokens.json");
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "meta_info.json", "ep_size");
    test::write_bytes(d + "/meta_info.json", R"({"num_experts": 16})");
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "meta_info.json",
                             "num_experts_per_token");
    fs::remove(d + "/meta_info.json");
    test::expect_input_error([&] { open_trtllm_stats(d, {}, report); }, "meta_info.json", "meta_info.json");
    fs::remove_all(d);
  }
}

// A stream whose third record has the wrong shape: the writer fails midway and must leave nothing behind.
TEST(ImportTrtllm, FailedWriteLeavesNothing) {
  test::TempDir tmp;
  ImportReport report;
  auto s = open_trtllm_stats(kFixture, {}, report);
  std::vector<TraceRecord> records = drain(*s);
  records[2].loads = LoadMatrix(3, 16);
  RecordListStream bad(s->manifest(), records);
  const std::string out = tmp.path("sub/out");
  // The error names the user's path, never the temporary it was written to.
  test::expect_input_error([&] { write_trace_atomic(bad, out, {1}); }, "sub/out", "loads");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(tmp.path("sub")));
  // An existing target is refused before anything is written.
  fs::create_directories(out);
  RecordListStream good(s->manifest(), drain(*open_trtllm_stats(kFixture, {}, report)));
  test::expect_input_error([&] { write_trace_atomic(good, out, {1}); }, "out", "--out");
}

}  // namespace
}  // namespace rackep
