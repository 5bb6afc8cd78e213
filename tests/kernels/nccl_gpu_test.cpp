// Dispatch and combine between GPUs with NCCL send/recv (kernels/nccl_ep.hpp): two ranks, one per GPU, in one
// process. Pack in wire order -> ncclSend/ncclRecv -> unpack must give dispatch_reference's rows and origins,
// and the combine exchange must bring every row's output back to its source. Skips with fewer than 2 GPUs.
#include <gtest/gtest.h>

#include "rackep/config.hpp"

#if RACKEP_HAVE_NCCL
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/ref_dispatch.hpp"
#include "kernels/device.hpp"
#include "kernels/moe_kernels.hpp"
#include "kernels/nccl_ep.hpp"
#include "kernels/timing.hpp"

namespace {

using rackep::kernels::DeviceBuffer;

TEST(NcclGpu, TwoGpusDispatchAndCombine) {
  std::string why;
  const int gpus = rackep::kernels::cuda_device_count(&why);
  if (gpus < 2) GTEST_SKIP() << (gpus == 0 ? why : "needs 2 CUDA GPUs, found " + std::to_string(gpus));
  const int64_t hidden = 64;
  const rackep::ClusterShape shape{2, 2, 1, 2};
  std::mt19937_64 rng(4);
  std::vector<std::vector<int32_t>> ids(2);
  for (int s = 0; s < 2; ++s)
    for (int t = 0; t < 40 + 13 * s; ++t)
      ids[s].push_back(static_cast<int32_t>(rng() % shape.num_physical()));
  const rackep::DispatchLayout lay = rackep::build_dispatch_layout(shape, ids, 1);
  std::vector<std::vector<uint16_t>> x(2), ref_recv;
  std::vector<std::vector<int32_t>> ref_origin;
  for (int s = 0; s < 2; ++s)
    for (int64_t t = 0; t < lay.num_tokens[s]; ++t)
      for (int64_t h = 0; h < hidden; ++h) x[s].push_back(rackep::origin_payload(s, t, h));
  rackep::dispatch_reference(lay, x, hidden, ref_recv, ref_origin);

  const std::vector<int> devices{0, 1};
  std::vector<ncclComm_t> comms = rackep::kernels::nccl_comms_for_devices(devices);
  struct RankState {
    cudaStream_t stream = nullptr;
    std::unique_ptr<DeviceBuffer<uint16_t>> x, send, staging, recv, back, returned;
    std::unique_ptr<DeviceBuffer<int32_t>> send_o, staging_o, recv_o;
    std::unique_ptr<DeviceBuffer<int64_t>> wire_row, map;
    std::unique_ptr<DeviceBuffer<uint16_t*>> bufs;
    std::unique_ptr<DeviceBuffer<int32_t*>> obufs;
  };
  std::vector<RankState> st(2);
  for (int r = 0; r < 2; ++r) {
    RACKEP_CUDA_CHECK(cudaSetDevice(r));
    RankState& k = st[r];
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&k.stream, cudaStreamNonBlocking));
    const int64_t out_rows = lay.send_count(r, 0) + lay.send_count(r, 1);
    std::vector<int64_t> wire(ids[r].size());
    for (size_t e = 0; e < wire.size(); ++e)
      wire[e] = lay.send_offset(r, lay.dest_rank[r][e]) + lay.wire_pos[r][e];
    k.x = std::make_unique<DeviceBuffer<uint16_t>>(x[r]);
    k.send = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(out_rows * hidden + 1));
    k.send_o = std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(out_rows * 3 + 1));
    k.returned = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(out_rows * hidden + 1));
    k.staging = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay.rows(r) * hidden + 1));
    k.staging_o = std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(lay.rows(r) * 3 + 1));
    k.recv = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay.rows(r) * hidden + 1));
    k.recv_o = std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>(lay.rows(r) * 3 + 1));
    k.back = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>(lay.rows(r) * hidden + 1));
    k.wire_row = std::make_unique<DeviceBuffer<int64_t>>(wire);
    k.map = std::make_unique<DeviceBuffer<int64_t>>(lay.recv_from_staging[r]);
    k.bufs = std::make_unique<DeviceBuffer<uint16_t*>>(std::vector<uint16_t*>{k.send->get()});
    k.obufs = std::make_unique<DeviceBuffer<int32_t*>>(std::vector<int32_t*>{k.send_o->get()});
    rackep::kernels::ScatterArgs a{k.x->get(),
                                   static_cast<int64_t>(ids[r].size()),
                                   1,
                                   hidden,
                                   r,
                                   nullptr,
                                   k.wire_row->get(),
                                   k.bufs->get(),
                                   k.obufs->get()};
    rackep::kernels::launch_scatter_rows(a, k.stream);
  }
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < 2; ++r)
    rackep::kernels::nccl_exchange_dispatch(comms[r], r, lay, hidden, st[r].send->get(), st[r].send_o->get(),
                                            st[r].staging->get(), st[r].staging_o->get(), st[r].stream);
  RACKEP_NCCL_CHECK(ncclGroupEnd());
  for (int r = 0; r < 2; ++r) {
    RACKEP_CUDA_CHECK(cudaSetDevice(r));
    rackep::kernels::PermuteArgs p{st[r].staging->get(),
                                   st[r].staging_o->get(),
                                   st[r].recv->get(),
                                   st[r].recv_o->get(),
                                   nullptr,
                                   st[r].map->get(),
                                   lay.rows(r),
                                   hidden};
    rackep::kernels::launch_permute_rows(p, st[r].stream);
    // Identity "experts": pack the received rows back in staging order for the combine exchange.
    rackep::kernels::PermuteArgs q{st[r].recv->get(), nullptr, st[r].back->get(), nullptr,
                                   st[r].map->get(),  nullptr, lay.rows(r),       hidden};
    rackep::kernels::launch_permute_rows(q, st[r].stream);
  }
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < 2; ++r)
    rackep::kernels::nccl_exchange_combine(comms[r], r, lay, hidden, st[r].back->get(), st[r].returned->get(),
                                           st[r].stream);
  RACKEP_NCCL_CHECK(ncclGroupEnd());
  for (int r = 0; r < 2; ++r) {
    RACKEP_CUDA_CHECK(cudaSetDevice(r));
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(st[r].stream));
    EXPECT_EQ(st[r].recv->download(ref_recv[r].size()), ref_recv[r]) << "rank " << r;
    EXPECT_EQ(st[r].recv_o->download(ref_origin[r].size()), ref_origin[r]) << "rank " << r;
    // Every row came back to its source: row (send_offset + wire_pos) of `returned` is the token's own
    // payload.
    const std::vector<uint16_t> ret = st[r].returned->download(ids[r].size() * hidden);
    for (size_t e = 0; e < ids[r].size(); ++e) {
      const int64_t row = lay.send_offset(r, lay.dest_rank[r][e]) + lay.wire_pos[r][e];
      for (int64_t h = 0; h < hidden; ++h)
        ASSERT_EQ(ret[row * hidden + h], rackep::origin_payload(r, static_cast<int64_t>(e), h))
            << "rank " << r;
    }
    cudaStreamDestroy(st[r].stream);
    ncclCommDestroy(comms[r]);
  }
}

}  // namespace
#else
TEST(NcclGpu, BuiltWithoutNccl) {
  GTEST_SKIP() << "built without NCCL (RACKEP_HAVE_NCCL=0)";
}
#endif
