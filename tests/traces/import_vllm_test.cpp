// The vLLM routed-experts importer: saved API responses (prompt + choices) become sequences, MoE-local layer
// ids are mapped by --layers, and the sequences are composed into microbatches by TokenComposer.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.hpp"
#include "traces/import_vllm.hpp"

namespace rackep {
namespace {

const std::string kFile = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/vllm/responses.jsonl";

TEST(ImportVllm, Fixture) {
  ImportReport report;
  ImportOptions o;
  o.num_experts = 16;
  const TokenRouting r = read_vllm_routed_experts({kFile}, o, report);
  EXPECT_EQ(r.layers, (std::vector<int>{0, 1, 2}));  // nested lists: vLLM's MoE-local ids
  EXPECT_EQ(r.top_k, 2);
  EXPECT_EQ(r.num_experts, 16);
  // From the responses' usage: 6 prompt+first-choice sequences and one extra choice.
  std::istringstream in(test::read_bytes(kFile));
  int64_t tokens = 0, sequences = 0;
  std::vector<int64_t> lengths;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const auto& choices = j["choices"];
    const int64_t gen = choices[0]["routed_experts"].size();
    lengths.push_back(j["usage"]["prompt_tokens"].get<int64_t>() + gen);
    for (size_t c = 1; c < choices.size(); ++c) lengths.push_back(choices[c]["routed_experts"].size());
    tokens += j["usage"]["prompt_tokens"].get<int64_t>() + j["usage"]["completion_tokens"].get<int64_t>();
    sequences += static_cast<int64_t>(choices.size());
  }
  EXPECT_EQ(r.num_tokens(), tokens);
  EXPECT_EQ(r.num_sequences(), sequences);
  for (size_t s = 0; s < lengths.size(); ++s)
    EXPECT_EQ(r.sequence_length(static_cast<int64_t>(s)), lengths[s]);
  // Token 0 of sequence 0, layer 1 = the first prompt token's ids in MoE-local layer 0.
  std::istringstream again(test::read_bytes(kFile));
  std::string first;
  std::getline(again, first);
  const nlohmann::json j0 = nlohmann::json::parse(first);
  EXPECT_EQ(r.expert_ids[0][0], j0["prompt_routed_experts"][0][0][0].get<int>());
  EXPECT_EQ(r.expert_ids[2][1], j0["prompt_routed_experts"][0][2][1].get<int>());

  // Composed: 2 ranks x 32 tokens per microbatch; every record routes 2 x 32 x top-2 pairs.
  o.num_ranks = 2;
  o.tokens_per_rank = 32;
  o.seed = 4;
  ImportReport composed_report;
  auto s = open_vllm_routed_experts({kFile}, o, composed_report);
  EXPECT_EQ(s->manifest().num_records, 3 * (tokens / 64));
  TraceRecord rec;
  while (s->next(rec)) EXPECT_EQ(rec.loads.total(), 2 * 32 * 2);
}

TEST(ImportVllm, CaptureBufferRows) {
  // Current vLLM: base64 .npy / envelope of int32 [prompt + generated, 4 hidden layers, 2], prompt rows
  // included, dense layer 0 all zero; the last response has n = 2 choices that both repeat the prompt rows.
  const std::string file = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/vllm/capture.jsonl";
  ImportReport report;
  ImportOptions o;
  o.num_experts = 16;
  const TokenRouting r = read_vllm_routed_experts({file}, o, report);
  EXPECT_EQ(r.layers, (std::vector<int>{1, 2, 3}));  // model ids; layer 0 dropped as dense
  EXPECT_EQ(r.top_k, 2);
  std::istringstream in(test::read_bytes(file));
  std::vector<int64_t> lengths;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    const int64_t p = j["usage"]["prompt_tokens"], c = j["usage"]["completion_tokens"];
    const size_t n = j["choices"].size();
    lengths.push_back(p + c / static_cast<int64_t>(n));  // first choice: prompt + its generated tokens
    for (size_t i = 1; i < n; ++i) lengths.push_back(c / static_cast<int64_t>(n));  // the prompt counted once
  }
  ASSERT_EQ(r.num_sequences(), static_cast<int64_t>(lengths.size()));
  for (size_t i = 0; i < lengths.size(); ++i)
    EXPECT_EQ(r.sequence_length(static_cast<int64_t>(i)), lengths[i]);
  for (const auto& ids : r.expert_ids)
    for (uint16_t e : ids) EXPECT_LT(e, 16);  // no dense row kept, no padding
  bool dense = false;
  for (const auto& l : report.assumed) dense |= l.find("layers 0 route no token: dense, dropped") == 0;
  EXPECT_TRUE(dense);
  o.top_k = 4;
  test::expect_input_error([&] { read_vllm_routed_experts({file}, o, report); }, "--top-k", "--top-k");
}

TEST(ImportVllm, BadInput) {
  test::TempDir tmp;
  ImportReport report;
  ImportOptions o;
  test::expect_input_error([&] { open_vllm_routed_experts({kFile}, o, report); }, "--ranks", "--ranks");
  o.layers = {1, 5};  // MoE-local ids 0..2 only
  test::expect_input_error([&] { read_vllm_routed_experts({kFile}, o, report); }, "--layers", "--layers");
  o.layers.clear();
  o.num_experts = 4;
  test::expect_input_error([&] { read_vllm_routed_experts({kFile}, o, report); }, "responses.jsonl:1",
                           "prompt_routed_experts");
  const std::string f = tmp.path("r.jsonl");
  auto expect = [&](const std::string& line, const std::string& field) {
    test::write_bytes(f, R"({"prompt_routed_experts":[[[0,1],[2,3]]]})"
                         "\n" +
                             line + "\n");
    test::expect_input_error([&] { read_vllm_routed_experts({f}, {}, report); }, "r.jsonl:2", field);
  };
  expect(R"({"prompt_routed_experts":[[[0,1]]]})", "prompt_routed_experts");            // one layer, not two
  expect(R"({"prompt_routed_experts":[[[0,1,2],[2,3,4]]]})", "prompt_routed_experts");  // top-3, not 2
  expect(R"({"prompt_routed_experts":[[[1,1],[2,3]]]})", "prompt_routed_experts");      // repeated id
  expect(R"({"choices":[{"routed_experts":[[[0,-2],[2,3]]]}]})", "choices[0].routed_experts");
  expect(R"({"choices":[{"text":"no routing"}]})", "routed_experts");
  expect("[1,2", "json");
}

}  // namespace
}  // namespace rackep
