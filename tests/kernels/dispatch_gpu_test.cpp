// Dispatch and combine on the GPU (kernels/moe_kernels.hpp) against core/ref_dispatch.hpp: rows land where
// the layout says and carry their (source rank, token, k) origin; the wire-order path used with NCCL (pack
// into one send buffer per source, segments exchanged, unpack from staging) gives the same rows; combine is
// bit-identical.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/ref_bf16.hpp"
#include "core/ref_dispatch.hpp"
#include "kernels/moe_kernels.hpp"
#include "kernels/timing.hpp"
#include "tests/kernels/gpu_test_util.hpp"

namespace {

using rackep::kernels::DeviceBuffer;
using Rows = std::vector<std::unique_ptr<DeviceBuffer<uint16_t>>>;
using Origins = std::vector<std::unique_ptr<DeviceBuffer<int32_t>>>;

class DispatchGpu : public rackep::test::GpuTest {
 protected:
  // 4 ranks, S = 3, top-2 routing of a different number of tokens per source.
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    std::mt19937_64 rng(3);
    ids_.resize(shape_.num_ranks);
    for (int s = 0; s < shape_.num_ranks; ++s) {
      const int tokens = 50 + 31 * s;
      for (int t = 0; t < tokens; ++t) {
        const int a = static_cast<int>(rng() % shape_.num_physical());
        int b = static_cast<int>(rng() % shape_.num_physical());
        if (b == a) b = (a + 1) % shape_.num_physical();
        ids_[s].push_back(a);
        ids_[s].push_back(b);
      }
    }
    lay_ = rackep::build_dispatch_layout(shape_, ids_, 2);
    x_.resize(shape_.num_ranks);
    for (int s = 0; s < shape_.num_ranks; ++s)
      for (int64_t t = 0; t < lay_.num_tokens[s]; ++t)
        for (int64_t h = 0; h < kHidden; ++h) x_[s].push_back(rackep::origin_payload(s, t, h));
    rackep::dispatch_reference(lay_, x_, kHidden, ref_recv_, ref_origin_);
  }
  static constexpr int64_t kHidden = 64;
  const rackep::ClusterShape shape_{4, 2, 1, 4};
  std::vector<std::vector<int32_t>> ids_;
  rackep::DispatchLayout lay_;
  std::vector<std::vector<uint16_t>> x_, ref_recv_;
  std::vector<std::vector<int32_t>> ref_origin_;
};

TEST_F(DispatchGpu, EmulatedRanksPushRowsWithTheirOrigin) {
  const int n = shape_.num_ranks;
  Rows recv;
  Origins origin;
  std::vector<uint16_t*> recv_ptrs;
  std::vector<int32_t*> origin_ptrs;
  for (int d = 0; d < n; ++d) {  // each rank's buffers: its own allocation
    recv.push_back(std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay_.rows(d) * kHidden + 1)));
    origin.push_back(std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(lay_.rows(d) * 3 + 1)));
    recv_ptrs.push_back(recv.back()->get());
    origin_ptrs.push_back(origin.back()->get());
  }
  DeviceBuffer<uint16_t*> d_recv(recv_ptrs);
  DeviceBuffer<int32_t*> d_origin(origin_ptrs);
  std::vector<std::unique_ptr<DeviceBuffer<uint16_t>>> xs;
  std::vector<std::unique_ptr<DeviceBuffer<int32_t>>> dr;
  std::vector<std::unique_ptr<DeviceBuffer<int64_t>>> rows;
  for (int s = 0; s < n; ++s) {
    xs.push_back(std::make_unique<DeviceBuffer<uint16_t>>(x_[s]));
    dr.push_back(std::make_unique<DeviceBuffer<int32_t>>(lay_.dest_rank[s]));
    rows.push_back(std::make_unique<DeviceBuffer<int64_t>>(lay_.dest_row[s]));
    rackep::kernels::ScatterArgs a{xs.back()->get(),
                                   static_cast<int64_t>(ids_[s].size()),
                                   2,
                                   kHidden,
                                   s,
                                   dr.back()->get(),
                                   rows.back()->get(),
                                   d_recv.get(),
                                   d_origin.get()};
    rackep::kernels::launch_scatter_rows(a, stream_);
  }
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::vector<std::vector<uint16_t>> got(n);
  for (int d = 0; d < n; ++d) {
    got[d] = recv[d]->download(static_cast<size_t>(lay_.rows(d) * kHidden));
    const auto org = origin[d]->download(static_cast<size_t>(lay_.rows(d) * 3));
    EXPECT_EQ(rackep::first_misrouted_row(lay_, d, got[d], org, kHidden), -1) << "rank " << d;
    EXPECT_EQ(got[d], ref_recv_[d]);
    EXPECT_EQ(org, ref_origin_[d]);
  }
  // Combine with "expert outputs" = the received rows themselves, probabilities with inexact products.
  std::vector<std::vector<float>> probs(n);
  std::mt19937_64 rng(8);
  for (int s = 0; s < n; ++s)
    for (size_t i = 0; i < ids_[s].size(); ++i)
      probs[s].push_back(std::uniform_real_distribution<float>(0, 1)(rng));
  std::vector<std::vector<float>> ref_out;
  rackep::combine_reference(lay_, got, probs, kHidden, ref_out);
  DeviceBuffer<const uint16_t*> d_y(std::vector<const uint16_t*>(recv_ptrs.begin(), recv_ptrs.end()));
  for (int s = 0; s < n; ++s) {
    DeviceBuffer<float> p(probs[s]), out(static_cast<size_t>(lay_.num_tokens[s] * kHidden));
    rackep::kernels::CombineArgs c{
        d_y.get(), dr[s]->get(), rows[s]->get(), p.get(), out.get(), lay_.num_tokens[s], 2, kHidden};
    rackep::kernels::launch_combine(c, stream_);
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    EXPECT_EQ(out.download(ref_out[s].size()), ref_out[s])
        << "combine of rank " << s << " is not bit-identical";
  }
}

// The NCCL path without NCCL: pack in wire order, move each (s -> d) segment with a copy (what
// ncclSend/ncclRecv do), unpack the staging buffer with recv_from_staging.
TEST_F(DispatchGpu, WireOrderPackExchangeUnpack) {
  const int n = shape_.num_ranks;
  Rows send, staging, recv;
  Origins send_o, staging_o, recv_o;
  for (int s = 0; s < n; ++s) {
    int64_t rows_out = 0;
    for (int d = 0; d < n; ++d) rows_out += lay_.send_count(s, d);
    send.push_back(std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(rows_out * kHidden + 1)));
    send_o.push_back(std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(rows_out * 3 + 1)));
    std::vector<int64_t> wire_row(ids_[s].size());
    for (size_t e = 0; e < wire_row.size(); ++e)
      wire_row[e] = lay_.send_offset(s, lay_.dest_rank[s][e]) + lay_.wire_pos[s][e];
    DeviceBuffer<uint16_t> x(x_[s]);
    DeviceBuffer<int64_t> rows(wire_row);
    DeviceBuffer<uint16_t*> bufs(std::vector<uint16_t*>{send[s]->get()});
    DeviceBuffer<int32_t*> obufs(std::vector<int32_t*>{send_o[s]->get()});
    rackep::kernels::ScatterArgs a{
        x.get(),    static_cast<int64_t>(ids_[s].size()), 2, kHidden, s, nullptr, rows.get(), bufs.get(),
        obufs.get()};
    rackep::kernels::launch_scatter_rows(a, stream_);
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  for (int d = 0; d < n; ++d) {
    staging.push_back(
        std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay_.rows(d) * kHidden + 1)));
    staging_o.push_back(std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(lay_.rows(d) * 3 + 1)));
    recv.push_back(std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay_.rows(d) * kHidden + 1)));
    recv_o.push_back(std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(lay_.rows(d) * 3 + 1)));
    for (int s = 0; s < n; ++s) {
      const int64_t cnt = lay_.send_count(s, d);
      if (cnt == 0) continue;
      RACKEP_CUDA_CHECK(cudaMemcpy(staging[d]->get() + lay_.staging_offset(d, s) * kHidden,
                                   send[s]->get() + lay_.send_offset(s, d) * kHidden, cnt * kHidden * 2,
                                   cudaMemcpyDeviceToDevice));
      RACKEP_CUDA_CHECK(cudaMemcpy(staging_o[d]->get() + lay_.staging_offset(d, s) * 3,
                                   send_o[s]->get() + lay_.send_offset(s, d) * 3, cnt * 3 * 4,
                                   cudaMemcpyDeviceToDevice));
    }
    DeviceBuffer<int64_t> map(lay_.recv_from_staging[d]);
    rackep::kernels::PermuteArgs p{staging[d]->get(), staging_o[d]->get(), recv[d]->get(), recv_o[d]->get(),
                                   nullptr,           map.get(),           lay_.rows(d),   kHidden};
    rackep::kernels::launch_permute_rows(p, stream_);
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    EXPECT_EQ(recv[d]->download(ref_recv_[d].size()), ref_recv_[d]) << "rank " << d;
    EXPECT_EQ(recv_o[d]->download(ref_origin_[d].size()), ref_origin_[d]) << "rank " << d;
  }
}

TEST_F(DispatchGpu, FillPayloadMatchesTheHostFormula) {
  DeviceBuffer<uint16_t> x(static_cast<size_t>(lay_.num_tokens[2] * kHidden));
  rackep::kernels::launch_fill_payload(x.get(), 2, lay_.num_tokens[2], kHidden, stream_);
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  EXPECT_EQ(x.download(x_[2].size()), x_[2]);
}

}  // namespace
