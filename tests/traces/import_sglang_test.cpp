// The SGLang recorder importer and the allow-listed pickle reader under it: per_pass (per-source-rank,
// physical slots mapped to logical experts), stat (global, spread), the legacy CSV, all three agreeing on the
// same made-up recording; a pickle asking for os.system is refused without running anything; damaged files.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.hpp"
#include "traces/import_sglang.hpp"
#include "traces/pickle_reader.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/sglang";

using test::drain;

ImportOptions top2(int ranks = 0) {
  ImportOptions o;
  o.top_k = 2;
  o.num_ranks = ranks;
  return o;
}

TEST(ImportSglang, PerPassStatAndCsvAgree) {
  ImportReport report;
  auto pp = open_sglang_recording({kDir + "/per_pass"}, top2(), report);
  const TraceManifest& m = pp->manifest();
  EXPECT_EQ(m.num_ranks, 2);
  EXPECT_EQ(m.num_experts, 16);                      // 20 physical slots mapped back to 16 logical experts
  EXPECT_EQ(m.layers, (std::vector<int>{1, 2, 3}));  // layer 0 is dense: all zero, dropped
  const auto per_pass = drain(*pp);
  ASSERT_EQ(per_pass.size(), 9u);  // 3 forward passes x 3 MoE layers
  // Rank r routes 16 + 4r tokens x top-2 per layer and pass.
  for (const TraceRecord& r : per_pass) EXPECT_EQ(r.loads.source_totals(), (std::vector<int64_t>{32, 40}));

  // stat holds the same passes summed over ranks, plus one unused (all-zero) buffer row.
  auto st = open_sglang_recording({kDir + "/stat"}, top2(2), report);
  EXPECT_EQ(st->manifest().layers, m.layers);
  const auto stat = drain(*st);
  ASSERT_EQ(stat.size(), per_pass.size());
  for (size_t i = 0; i < stat.size(); ++i) {
    EXPECT_EQ(stat[i].microbatch, per_pass[i].microbatch);
    EXPECT_EQ(stat[i].loads.expert_totals(), per_pass[i].loads.expert_totals()) << i;
  }
  bool unused_reported = false;
  for (const auto& l : report.assumed)
    unused_reported |= l.find("1 forward passes route no token") != std::string::npos;
  EXPECT_TRUE(unused_reported);

  // The legacy CSV holds each rank's total over the passes.
  auto csv = open_sglang_recording({kDir + "/csv"}, top2(), report);
  const auto rows = drain(*csv);
  ASSERT_EQ(rows.size(), 3u);
  for (const TraceRecord& r : rows) {
    LoadMatrix want(2, 16);
    for (const TraceRecord& p : per_pass)
      if (p.layer == r.layer)
        for (size_t k = 0; k < want.values().size(); ++k) want.values()[k] += p.loads.values()[k];
    EXPECT_EQ(r.loads, want) << r.layer;
  }
}

TEST(ImportSglang, PerTokenWithoutGlobalPhysicalCount) {
  // Older per_token dumps: counted from topk_ids_of_layer [4, T, 8] (physical ids, -1 padding).
  ImportReport report;
  auto s = open_sglang_recording({kDir + "/per_token_old"}, top2(), report);
  EXPECT_EQ(s->manifest().num_ranks, 2);
  EXPECT_EQ(s->manifest().num_experts, 16);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{1, 2, 3}));  // layer 0: all -1, dense
  const auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 6u);  // 2 forward passes x 3 layers
  // Rank r routes 6 + 2r + pass tokens x top-2 in every MoE layer.
  for (const TraceRecord& r : recs)
    EXPECT_EQ(r.loads.source_totals(),
              (std::vector<int64_t>{2 * (6 + r.microbatch), 2 * (8 + r.microbatch)}));
  bool said = false;
  for (const auto& l : report.assumed) said |= l.find("counted from topk_ids_of_layer") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(ImportSglang, SeveralDumps) {
  ImportReport report;
  test::expect_input_error([&] { open_sglang_recording({kDir + "/two_dumps"}, top2(), report); }, "two_dumps",
                           "dump");
  ImportOptions one = top2();
  one.dump = "1700000500";
  auto s = open_sglang_recording({kDir + "/two_dumps"}, one, report);
  auto recs = drain(*s);
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(recs.front().microbatch, 2);
  ImportOptions merge = top2();
  merge.merge_dumps = true;
  recs = drain(*open_sglang_recording({kDir + "/two_dumps"}, merge, report));
  ASSERT_EQ(recs.size(), 12u);  // passes 0..3 x 3 MoE layers
  for (const TraceRecord& r : recs) EXPECT_EQ(r.loads.source_totals(), (std::vector<int64_t>{24, 24}));
  one.dump = "42";
  test::expect_input_error([&] { open_sglang_recording({kDir + "/two_dumps"}, one, report); }, "--dump",
                           "--dump");
}

TEST(ImportSglang, LegacyTorchSaveIsNamed) {
  ImportReport report;
  try {
    open_sglang_recording({kDir + "/legacy"}, top2(2), report);
    FAIL() << "a legacy torch.save file was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "format");
    EXPECT_NE(std::string(e.what()).find("legacy (non-zip) torch.save"), std::string::npos) << e.what();
  }
}

TEST(ImportSglang, ReturnedRoutedExpertsAndInitLocation) {
  // /generate responses: meta_info.routed_experts = raw int32 [prompt + completion - 1, 4 layers, k].
  ImportReport report;
  ImportOptions o = top2();
  o.num_experts = 16;
  o.num_ranks = 1;
  o.tokens_per_rank = 5;
  auto s = open_sglang_recording({kDir + "/responses.jsonl"}, o, report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{1, 2, 3}));  // layer 0: all-zero rows, dense
  int64_t tokens = 0;
  for (const TraceRecord& r : drain(*s)) {
    EXPECT_EQ(r.loads.total(), 5 * 2);
    tokens += r.layer == 1 ? 5 : 0;
  }
  std::istringstream in(test::read_bytes(kDir + "/responses.jsonl"));
  int64_t want = 0;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line)["meta_info"];
    want += j["prompt_tokens"].get<int64_t>() + j["completion_tokens"].get<int64_t>() - 1;
  }
  EXPECT_EQ(tokens, want / 5 * 5);
  ImportOptions no_k = o;
  no_k.top_k = 0;
  test::expect_input_error([&] { open_sglang_recording({kDir + "/responses.jsonl"}, no_k, report); },
                           "--top-k", "--top-k");
  // --init-expert-location JSON: {"logical_count": [4][16]}, global, spread over --ranks.
  ImportOptions g = top2(4);
  auto loc = open_sglang_recording({kDir + "/init_location.json"}, g, report);
  const auto recs = drain(*loc);
  ASSERT_EQ(recs.size(), 3u);
  const auto j = nlohmann::json::parse(test::read_bytes(kDir + "/init_location.json"))["logical_count"];
  for (const TraceRecord& r : recs) {
    std::vector<int64_t> col(16);
    for (int e = 0; e < 16; ++e) col[e] = j[r.layer][e].get<int64_t>();
    EXPECT_EQ(r.loads.expert_totals(), col);
  }
}

TEST(ImportSglang, PickleAllowList) {
  test::expect_input_error([] { TorchFile f(kDir + "/evil.pt"); }, "evil.pt", "pickle");
  try {
    TorchFile f(kDir + "/evil.pt");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("os.system"), std::string::npos) << e.what();
  }
  ImportReport report;
  test::expect_input_error([&] { open_sglang_recording({kDir + "/evil.pt"}, top2(), report); }, "evil.pt",
                           "pickle");
  // Truncated pickle and unsupported opcodes.
  test::expect_input_error([] { unpickle(std::string("\x80\x02}q\x00(X\x04\x00\x00\x00ra", 13), "p"); }, "p",
                           "pickle");
  test::expect_input_error([] { unpickle("\x80\x02\x81.", "p"); }, "p", "pickle");  // NEWOBJ
  const auto v = unpickle(std::string("\x80\x02}q\x00(X\x01\x00\x00\x00"
                                      "aK\x07u.",
                                      16),
                          "p");
  ASSERT_NE(v->get("a"), nullptr);
  EXPECT_EQ(v->get("a")->i, 7);
}

TEST(ImportSglang, BadInput) {
  test::TempDir tmp;
  ImportReport report;
  test::expect_input_error([&] { open_sglang_recording({kDir + "/per_pass"}, {}, report); }, "--top-k",
                           "--top-k");
  test::expect_input_error([&] { open_sglang_recording({kDir + "/stat"}, top2(), report); }, "--ranks",
                           "--ranks");
  ImportOptions model = top2();
  model.layers = {1, 2, 7};  // the dumps hold layers 0..3
  test::expect_input_error([&] { open_sglang_recording({kDir + "/per_pass"}, model, report); }, "--layers",
                           "--layers");
  ImportOptions rep = top2();
  rep.replication = 2;  // the two ranks hold different tokens
  test::expect_input_error([&] { open_sglang_recording({kDir + "/per_pass"}, rep, report); },
                           "recorder_1700000000_1", "--replication");
  ImportOptions few = top2();
  few.num_experts = 8;  // the map holds logical ids up to 15
  test::expect_input_error([&] { open_sglang_recording({kDir + "/per_pass"}, few, report); },
                           "recorder_1700000000_0", "last_physical_to_logical_map");
  // A truncated .pt.
  const std::string d = tmp.path("pp");
  fs::copy(kDir + "/per_pass", d);
  const std::string f = d + "/expert_distribution_recorder_1700000000_1.pt";
  const std::string bytes = test::read_bytes(f);
  test::write_bytes(f, bytes.substr(0, bytes.size() / 2));
  test::expect_input_error([&] { open_sglang_recording({d}, top2(), report); }, "recorder_1700000000_1.pt",
                           "zip");
  // A missing rank file.
  fs::remove(d + "/expert_distribution_recorder_1700000000_0.pt");
  test::write_bytes(f, bytes);
  test::expect_input_error([&] { open_sglang_recording({d}, top2(), report); }, "recorder_1700000000_1.pt",
                           "rank");
  // CSV: a bad header and a bad count.
  const std::string c = tmp.path("expert_distribution_rank0_timestamp1.csv");
  test::write_bytes(c, "layer,expert,count\n");
  test::expect_input_error([&] { open_sglang_recording({c}, top2(), report); }, "timestamp1.csv:1", "header");
  test::write_bytes(c, "layer_id,expert_id,count\n1,2,x\n");
  test::expect_input_error([&] { open_sglang_recording({c}, top2(), report); }, "timestamp1.csv:2", "count");
}

}  // namespace
}  // namespace rackep
