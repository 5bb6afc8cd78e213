// bf16 rounding of the CPU references (core/ref_bf16.hpp), checked on hand-picked bit patterns.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>

#include "core/ref_bf16.hpp"

namespace {

float from_bits(uint32_t bits) {
  float f = 0.0f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TEST(RefBf16, ExactValuesKeepTheirUpperHalf) {
  EXPECT_EQ(rackep::float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(rackep::float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(rackep::float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(rackep::bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(rackep::bf16_to_float(0xC00C), -2.1875f);
}

TEST(RefBf16, RoundsToNearestTiesToEven) {
  // pi = 0x40490FDB: the dropped half 0x0FDB < 0x8000, so it rounds down to 0x4049 (3.140625).
  EXPECT_EQ(rackep::float_to_bf16(3.14159265f), 0x4049);
  // 0x3F808000 lies exactly between 0x3F80 and 0x3F81: ties go to the even 0x3F80.
  EXPECT_EQ(rackep::float_to_bf16(from_bits(0x3F808000u)), 0x3F80);
  // 0x3F818000 lies between 0x3F81 and 0x3F82: the even one is 0x3F82.
  EXPECT_EQ(rackep::float_to_bf16(from_bits(0x3F818000u)), 0x3F82);
  // Just above the tie rounds up.
  EXPECT_EQ(rackep::float_to_bf16(from_bits(0x3F808001u)), 0x3F81);
}

TEST(RefBf16, SpecialValues) {
  EXPECT_EQ(rackep::float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(rackep::float_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  // The largest float rounds to infinity (its upper half + carry overflows the exponent).
  EXPECT_EQ(rackep::float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  // A NaN whose payload sits only in the low half must stay a NaN (naive rounding would give infinity).
  EXPECT_EQ(rackep::float_to_bf16(from_bits(0x7F800001u)), 0x7FC0);
  EXPECT_EQ(rackep::float_to_bf16(from_bits(0xFF800001u)), 0xFFC0);
}

}  // namespace
