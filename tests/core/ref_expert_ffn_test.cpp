// SwiGLU expert FFN reference (core/ref_expert_ffn.hpp) on a case worked out by hand, plus the tolerance
// check.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.hpp"
#include "core/ref_bf16.hpp"
#include "core/ref_expert_ffn.hpp"

namespace {

using rackep::float_to_bf16;

std::vector<uint16_t> bf16(const std::vector<float>& v) {
  std::vector<uint16_t> out;
  for (float f : v) out.push_back(float_to_bf16(f));
  return out;
}

// H = 2, F = 1. x = [1, 2]; fc1 rows: gate [1, 0], up [0.5, 0.5] -> g = 1, u = 1.5 (both exact in bf16).
// silu(1) = 1 / (1 + e^-1) = 0.7310586; a = 0.7310586 * 1.5 = 1.0965879 -> bf16 1 + 12/128 = 1.09375
// (0.0965879 * 128 = 12.36, rounds to 12). fc2 rows (H x F): [1], [-2] -> y = [1.09375, -2.1875], both exact.
TEST(RefExpertFfn, HandWorkedSwiGlu) {
  const rackep::FfnDims dims{2, 1};
  const auto x = bf16({1.0f, 2.0f});
  const auto fc1 = bf16({1.0f, 0.0f, 0.5f, 0.5f});
  const auto fc2 = bf16({1.0f, -2.0f});
  std::vector<uint16_t> y(2, 0);
  rackep::expert_ffn_reference(x.data(), 1, fc1.data(), fc2.data(), dims, y.data());
  EXPECT_EQ(y[0], 0x3F8C);  // 1.09375
  EXPECT_EQ(y[1], 0xC00C);  // -2.1875
}

// Two slots: the first gets token rows 0..1, the second row 2; an empty third slot needs no weights.
TEST(RefExpertFfn, GroupedUsesEachSlotsWeights) {
  const rackep::FfnDims dims{2, 1};
  const auto x = bf16({1.0f, 2.0f, 1.0f, 2.0f, 1.0f, 2.0f});
  const auto fc1_a = bf16({1.0f, 0.0f, 0.5f, 0.5f});
  const auto fc2_a = bf16({1.0f, -2.0f});
  const auto fc1_b = bf16({0.0f, 0.0f, 1.0f, 1.0f});  // g = 0 -> silu 0 -> y = 0
  const auto fc2_b = bf16({1.0f, 1.0f});
  std::vector<uint16_t> y(6, 0xFFFF);
  rackep::grouped_expert_ffn_reference(x.data(), {0, 2, 3, 3}, {fc1_a.data(), fc1_b.data(), nullptr},
                                       {fc2_a.data(), fc2_b.data(), nullptr}, dims, y.data());
  EXPECT_EQ(y[0], 0x3F8C);
  EXPECT_EQ(y[3], 0xC00C);
  EXPECT_EQ(rackep::bf16_to_float(y[4]), 0.0f);
  EXPECT_EQ(rackep::bf16_to_float(y[5]), 0.0f);
  EXPECT_THROW(rackep::grouped_expert_ffn_reference(x.data(), {0, 1}, {nullptr}, {nullptr}, dims, y.data()),
               rackep::InputError);
}

TEST(RefExpertFfn, CompareAcceptsRoundingAndRejectsRealErrors) {
  // Row [1, 1, 1, 1]: rms 1, so the tolerance is 1/32 * |ref| + 1/32 = 1/16 per element.
  const auto ref = bf16({1.0f, 1.0f, 1.0f, 1.0f});
  auto one_ulp = ref;
  one_ulp[1] = float_to_bf16(1.0078125f);  // next bf16 above 1.0
  EXPECT_TRUE(rackep::compare_ffn_outputs(ref, one_ulp, 1, 4).ok);
  auto wrong = ref;
  wrong[2] = float_to_bf16(1.125f);  // 0.125 > 1/16
  const rackep::FfnCompare c = rackep::compare_ffn_outputs(ref, wrong, 1, 4);
  EXPECT_FALSE(c.ok);
  EXPECT_EQ(c.num_bad, 1);
  EXPECT_EQ(c.first_bad, 2);
  EXPECT_DOUBLE_EQ(c.max_abs_err, 0.125);
}

}  // namespace
