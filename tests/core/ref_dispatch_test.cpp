// Dispatch/combine reference (core/ref_dispatch.hpp) on a two-rank case laid out by hand.
#include <gtest/gtest.h>

#include <vector>

#include "core/error.hpp"
#include "core/ref_bf16.hpp"
#include "core/ref_dispatch.hpp"

namespace {

// N = 2, M = 1, R = 1 (S = 2): rank 0 holds physical 0 (slot 0) and 1 (slot 1); rank 1 holds 2 and 3.
// Source 0 (3 tokens, top-2): t0 -> [0, 3], t1 -> [2, 1], t2 -> [3, 0]. Source 1 (2 tokens): t0 -> [1, 2], t1
// -> [0, 3]. Rank 0 rows, by (slot, source, token, k): slot 0: s0 t0k0, s0 t2k1, s1 t1k0 (rows 0-2); slot 1:
// s0 t1k1, s1 t0k0 (3-4). Rank 1 rows: slot 0: s0 t1k0, s1 t0k1 (0-1); slot 1: s0 t0k1, s0 t2k0, s1 t1k1
// (2-4).
const rackep::ClusterShape kShape{2, 1, 1, 2};
const std::vector<std::vector<int32_t>> kIds = {{0, 3, 2, 1, 3, 0}, {1, 2, 0, 3}};

TEST(RefDispatch, LayoutMatchesHandWorkedRows) {
  const rackep::DispatchLayout lay = rackep::build_dispatch_layout(kShape, kIds, 2);
  EXPECT_EQ(lay.slot_offsets[0], (std::vector<int64_t>{0, 3, 5}));
  EXPECT_EQ(lay.slot_offsets[1], (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(lay.row_source[0], (std::vector<int32_t>{0, 0, 1, 0, 1}));
  EXPECT_EQ(lay.row_token[0], (std::vector<int32_t>{0, 2, 1, 1, 0}));
  EXPECT_EQ(lay.row_k[0], (std::vector<int32_t>{0, 1, 0, 1, 0}));
  EXPECT_EQ(lay.row_source[1], (std::vector<int32_t>{0, 1, 0, 0, 1}));
  EXPECT_EQ(lay.row_token[1], (std::vector<int32_t>{1, 0, 0, 2, 1}));
  EXPECT_EQ(lay.send_counts, (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(lay.dest_rank[0], (std::vector<int32_t>{0, 1, 1, 0, 1, 0}));
  EXPECT_EQ(lay.dest_row[0], (std::vector<int64_t>{0, 2, 0, 3, 3, 1}));
  // Source 0's rows on rank 1 in receive order are rows 0, 2, 3 -> wire positions 0, 1, 2.
  EXPECT_EQ(lay.wire_pos[0], (std::vector<int64_t>{0, 1, 0, 2, 2, 1}));
  // Staging on rank 0: source 0's segment (rows 0, 1, 3), then source 1's (rows 2, 4).
  EXPECT_EQ(lay.recv_from_staging[0], (std::vector<int64_t>{0, 1, 3, 2, 4}));
  EXPECT_EQ(lay.staging_offset(0, 1), 3);
  EXPECT_EQ(lay.send_offset(1, 1), 2);
}

TEST(RefDispatch, RowsCarryTheirOriginAndCombineRestoresTokens) {
  const int64_t hidden = 8;
  const rackep::DispatchLayout lay = rackep::build_dispatch_layout(kShape, kIds, 2);
  std::vector<std::vector<uint16_t>> x(2);
  for (int s = 0; s < 2; ++s)
    for (int64_t t = 0; t < lay.num_tokens[s]; ++t)
      for (int64_t h = 0; h < hidden; ++h) x[s].push_back(rackep::origin_payload(s, t, h));
  std::vector<std::vector<uint16_t>> recv;
  std::vector<std::vector<int32_t>> origin;
  rackep::dispatch_reference(lay, x, hidden, recv, origin);
  for (int d = 0; d < 2; ++d) EXPECT_EQ(rackep::first_misrouted_row(lay, d, recv[d], origin[d], hidden), -1);
  // A row whose payload came from the wrong token is caught.
  auto bad = recv[1];
  std::copy(recv[1].begin() + 3 * hidden, recv[1].begin() + 4 * hidden, bad.begin() + 2 * hidden);
  EXPECT_EQ(rackep::first_misrouted_row(lay, 1, bad, origin[1], hidden), 2);
  // Identity experts, probabilities 0.25 / 0.75: every product and sum is exact, so combine returns x.
  std::vector<std::vector<float>> probs = {{0.25f, 0.75f, 0.25f, 0.75f, 0.25f, 0.75f},
                                           {0.25f, 0.75f, 0.25f, 0.75f}};
  std::vector<std::vector<float>> out;
  rackep::combine_reference(lay, recv, probs, hidden, out);
  for (int s = 0; s < 2; ++s)
    for (size_t i = 0; i < x[s].size(); ++i)
      EXPECT_EQ(out[s][i], rackep::bf16_to_float(x[s][i])) << s << " " << i;
}

TEST(RefDispatch, RejectsBadIds) {
  EXPECT_THROW(rackep::build_dispatch_layout(kShape, {{0, 4}, {}}, 2), rackep::InputError);
  EXPECT_THROW(rackep::build_dispatch_layout(kShape, {{0, 1, 2}, {}}, 2), rackep::InputError);
}

}  // namespace
