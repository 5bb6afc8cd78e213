// Global load matrices (`--from loads`, and vLLM's expert_load_view.pt): DeepSeek EPLB's weight as .npy,
// vllm-ascend's torch.save'd tensor; each row becomes a record whose column sums equal the file exactly.
#include <gtest/gtest.h>

#include <cstring>

#include "test_util.hpp"
#include "traces/import_loads.hpp"
#include "traces/npy.hpp"

namespace rackep {
namespace {

const std::string kDir = std::string(RACKEP_SOURCE_DIR) + "/tests/fixtures/import/loads";

ImportOptions spread(int ranks) {
  ImportOptions o;
  o.top_k = 2;
  o.num_ranks = ranks;
  o.seed = 9;
  return o;
}

TEST(ImportLoads, EplbWeightNpy) {
  ImportReport report;
  auto s = open_global_loads({kDir + "/eplb_weight.npy"}, spread(4), report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{1, 2, 3}));  // row 0 all zero: dense
  EXPECT_EQ(s->manifest().num_ranks, 4);
  const auto recs = test::drain(*s);
  ASSERT_EQ(recs.size(), 3u);
  // The file's rows, read independently of the importer: 50 tokens x top-2 per MoE layer.
  const std::string bytes = test::read_bytes(kDir + "/eplb_weight.npy");
  const NpyArrayInfo info = parse_npy_header(bytes, "eplb_weight.npy");
  ASSERT_EQ(info.shape, (std::vector<int64_t>{4, 16}));
  for (const TraceRecord& r : recs) {
    std::vector<int64_t> want(16);
    std::memcpy(want.data(), bytes.data() + info.data_offset_bytes + r.layer * 16 * 8, 16 * 8);
    EXPECT_EQ(r.loads.expert_totals(), want);
    EXPECT_EQ(r.loads.total(), 100);
  }
}

TEST(ImportLoads, ExpertLoadViewPt) {
  ImportReport report;
  auto s = open_global_loads({kDir + "/expert_load_view.pt"}, spread(2), report);
  EXPECT_EQ(s->manifest().layers, (std::vector<int>{0, 1, 2}));                 // MoE-local rows
  for (const TraceRecord& r : test::drain(*s)) EXPECT_EQ(r.loads.total(), 60);  // 30 tokens x top-2
  test::expect_input_error([&] { open_global_loads({kDir + "/expert_load_view.pt"}, {}, report); }, "--ranks",
                           "--ranks");
  ImportOptions wrong = spread(2);
  wrong.num_experts = 8;
  test::expect_input_error([&] { open_global_loads({kDir + "/expert_load_view.pt"}, wrong, report); },
                           "expert_load_view.pt", "tensor");
  test::TempDir tmp;
  test::write_bytes(tmp.path("w.json"), R"({"weight": [[1, 2], [3]]})");
  test::expect_input_error([&] { open_global_loads({tmp.path("w.json")}, spread(2), report); }, "w.json",
                           "weight");
  test::write_bytes(tmp.path("f.json"), R"({"weight": [[1.5, 2], [3, 4]]})");
  test::expect_input_error([&] { open_global_loads({tmp.path("f.json")}, spread(2), report); }, "f.json",
                           "weight");
}

}  // namespace
}  // namespace rackep
