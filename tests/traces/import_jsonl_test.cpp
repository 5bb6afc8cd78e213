// The per-token JSONL importer: the shipped fixture (dense layer 0 as [-1, -1] rows, -1 padding), the round
// trip canonical -> jsonl -> canonical, layer ids outside the model, and malformed objects.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.hpp"
#include "traces/import_jsonl.hpp"
#include "traces/synthetic.hpp"

namespace rackep {
namespace {

const std::string kFixture = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/jsonl/routing.jsonl";

using test::drain;

TEST(ImportJsonl, Fixture) {
  ImportReport report;
  ImportOptions o;
  o.num_experts = 16;
  auto s = open_token_jsonl({kFixture}, o, report);
  const TraceManifest& m = s->manifest();
  EXPECT_EQ(m.num_ranks, 4);
  EXPECT_EQ(m.num_experts, 16);
  EXPECT_EQ(m.top_k, 2);
  EXPECT_EQ(m.layers, (std::vector<int>{1, 2, 3}));  // layer 0 is all padding: dense, dropped
  const auto records = drain(*s);
  ASSERT_EQ(records.size(), 9u);
  // Independent count per (batch, layer, origin row): the non-padding expert slots of its tokens.
  std::istringstream in(test::read_bytes(kFixture));
  size_t checked = 0;
  int64_t max_tokens = 0;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    std::vector<int64_t> want(4, 0), tokens(4, 0);
    for (size_t t = 0; t < j["origin_rows"].size(); ++t) {
      const int row = j["origin_rows"][t];
      ++tokens[row];
      for (int e : j["topk_experts"][t]) want[row] += e >= 0 ? 1 : 0;
    }
    for (int64_t n : tokens) max_tokens = std::max(max_tokens, n);
    if (j["layer"] == 0) continue;
    for (const TraceRecord& r : records) {
      if (r.layer != j["layer"] || r.microbatch != j["batch_id"]) continue;
      EXPECT_EQ(r.loads.source_totals(), want);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9u);
  EXPECT_EQ(m.tokens_per_rank, max_tokens);
  bool padding_reported = false;
  for (const auto& l : report.assumed) padding_reported |= l.find("-1 padding dropped") != std::string::npos;
  EXPECT_TRUE(padding_reported);
}

TEST(ImportJsonl, RoundTripIsIdentity) {
  test::TempDir tmp;
  SynthConfig c;
  c.num_ranks = 4;
  c.num_experts = 16;
  c.top_k = 3;
  c.tokens_per_rank = 40;
  c.layers = {2, 4};
  c.num_microbatches = 3;
  SyntheticStream gen(c);
  write_token_jsonl(gen, tmp.path("t.jsonl"));
  ImportReport report;
  ImportOptions o;
  o.num_ranks = 4;
  o.num_experts = 16;
  auto s = open_token_jsonl({tmp.path("t.jsonl")}, o, report);
  EXPECT_EQ(s->manifest().layers, c.layers);
  EXPECT_EQ(s->manifest().top_k, 3);
  EXPECT_EQ(s->manifest().tokens_per_rank, 40);
  SyntheticStream again(c);
  const auto want = drain(again);
  const auto got = drain(*s);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].layer, want[i].layer);
    EXPECT_EQ(got[i].microbatch, want[i].microbatch);
    EXPECT_EQ(got[i].loads, want[i].loads) << i;
  }
}

TEST(ImportJsonl, LayersPickAndTokensCountedOnce) {
  ImportReport report;
  ImportOptions o;
  o.num_experts = 16;
  o.layers = {3, 1};  // layer 2 routes tokens but is not listed: left out and reported
  auto s = open_token_jsonl({kFixture}, o, report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{3, 1}));
  EXPECT_EQ(drain(*s).size(), 6u);
  bool left_out = false, tokens = false;
  for (const auto& l : report.assumed)
    left_out |= l.find("layers 2 route tokens but are not in --layers") == 0;
  // Batches of 24, 28 and 32 tokens: 84 tokens, not 84 x 4 layers.
  for (const auto& l : report.found) tokens |= l.find(", 84 tokens, 3 batches") != std::string::npos;
  EXPECT_TRUE(left_out);
  EXPECT_TRUE(tokens) << report.found[0];
}

TEST(ImportJsonl, WithoutOriginRowsComposes) {
  // Objects without origin_rows: each batch is a sequence of 10, 13, 16 tokens; layer 0 holds the hook's
  // zero-filled [0, 0] rows (dense: dropped, its tokens kept).
  const std::string file = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/jsonl/no_origin.jsonl";
  ImportReport report;
  ImportOptions o;
  o.num_experts = 16;
  test::expect_input_error([&] { open_token_jsonl({file}, o, report); }, "--ranks", "--ranks");
  o.num_ranks = 2;
  o.tokens_per_rank = 9;
  o.policy = "pack";
  auto s = open_token_jsonl({file}, o, report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(s->manifest().num_ranks, 2);
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 2u * 3u);  // 39 tokens fill 2 microbatches of 2 x 9
  for (const TraceRecord& r : recs) EXPECT_EQ(r.loads.source_totals(), (std::vector<int64_t>{18, 18}));
  bool dense = false;
  for (const auto& l : report.assumed) dense |= l.find("layers 0 route no token: dense, dropped") == 0;
  EXPECT_TRUE(dense);
}

TEST(ImportJsonl, BadInput) {
  test::TempDir tmp;
  ImportReport report;
  ImportOptions model;
  model.layers = {1, 4};  // layer 4 is not in the data
  test::expect_input_error([&] { open_token_jsonl({kFixture}, model, report); }, "--layers", "--layers");
  const std::string f = tmp.path("bad.jsonl");
  auto expect = [&](const std::string& line, const std::string& field) {
    test::write_bytes(f, R"({"layer":1,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,1],[2,3]]})"
                         "\n" +
                             line + "\n");
    test::expect_input_error([&] { open_token_jsonl({f}, {}, report); }, "bad.jsonl:2", field);
  };
  expect("{\"layer\":1,", "json");
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0],"topk_experts":[[0,1],[2,3]]})", "topk_experts");
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,1],[2]]})", "topk_experts");
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[1,1],[2,3]]})", "topk_experts");
  expect(R"({"layer":2,"batch_id":0,"topk_experts":[[0,1],[2,3]]})", "origin_rows");  // mixed modes
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,-3],[2,3]]})", "topk_experts");
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0,-1],"topk_experts":[[0,1],[2,3]]})", "origin_rows");
  expect(R"({"layer":1,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,1],[2,3]]})", "batch_id");
  expect(R"({"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,1],[2,3]]})", "layer");
  expect(R"({"layer":2,"batch_id":0,"origin_rows":[0,1],"topk_experts":[[0,1],[2,3]],"topk_weights":[]})",
         "topk_weights");
  // An id outside --experts.
  ImportOptions small;
  small.num_experts = 3;
  test::write_bytes(f, R"({"layer":1,"batch_id":0,"origin_rows":[0],"topk_experts":[[0,3]]})"
                       "\n");
  test::expect_input_error([&] { open_token_jsonl({f}, small, report); }, "bad.jsonl:1", "topk_experts");
  // The exporter refuses a row that is no set of whole top-k tokens (7 pairs with k = 2).
  TraceManifest m;
  m.num_ranks = 1;
  m.num_experts = 4;
  m.top_k = 2;
  m.tokens_per_rank = 4;
  m.layers = {0};
  TraceRecord r;
  r.loads = LoadMatrix(1, 4, {4, 3, 0, 0});
  RecordListStream odd(m, {r});
  test::expect_input_error([&] { write_token_jsonl(odd, tmp.path("odd.jsonl")); }, "odd.jsonl", "loads");
  EXPECT_FALSE(std::filesystem::exists(tmp.path("odd.jsonl")));
}

}  // namespace
}  // namespace rackep
