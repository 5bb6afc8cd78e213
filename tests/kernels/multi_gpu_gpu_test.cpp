// EP ranks placed in blocks on several GPUs of one process (kernels/ep_exchange.hpp): the scatter into local
// receivers and the GPU send buffer, the grouped NCCL exchange, the unpack of staging rows and the way back
// for combine must put every row at the right rank with its (source rank, token, k) origin and payload, and
// give exactly the rows and combine outputs of the same ranks emulated on one GPU. Skips with fewer than 2
// GPUs.
#include <gtest/gtest.h>

#include "rackep/config.hpp"

#if RACKEP_HAVE_NCCL
#include <cuda_runtime.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/ref_dispatch.hpp"
#include "kernels/device.hpp"
#include "kernels/ep_exchange.hpp"
#include "kernels/nccl_ep.hpp"
#include "kernels/timing.hpp"

namespace {

using rackep::kernels::DeviceBuffer;

struct Result {
  std::vector<std::vector<uint16_t>> recv;
  std::vector<std::vector<int32_t>> origin;
  std::vector<std::vector<float>> out;
};

// Dispatch then combine with "experts" that return their input (y = recv), ranks on GPUs 0..gpus-1.
Result run_on_gpus(const rackep::DispatchLayout& lay, int64_t hidden,
                   const std::vector<std::vector<float>>& probs, int gpus) {
  const int n = lay.num_ranks;
  const rackep::kernels::EpPlacement place{n, gpus};
  const int q = place.ranks_per_gpu();
  std::vector<int> devices;
  for (int g = 0; g < gpus; ++g) devices.push_back(g);
  std::vector<ncclComm_t> comms;
  if (gpus > 1) comms = rackep::kernels::nccl_comms_for_devices(devices);
  struct RankBufs {
    cudaStream_t stream = nullptr;
    std::unique_ptr<DeviceBuffer<uint16_t>> x, recv;
    std::unique_ptr<DeviceBuffer<int32_t>> origin;
    std::unique_ptr<DeviceBuffer<float>> probs, out;
  };
  std::vector<RankBufs> rb(static_cast<size_t>(n));
  std::vector<std::vector<cudaStream_t>> streams(static_cast<size_t>(gpus));
  std::vector<rackep::kernels::EpRankIo> io;
  for (int r = 0; r < n; ++r) {
    RACKEP_CUDA_CHECK(cudaSetDevice(place.gpu_of(r)));
    RankBufs& b = rb[r];
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking));
    std::vector<uint16_t> x;
    for (int64_t t = 0; t < lay.num_tokens[r]; ++t)
      for (int64_t h = 0; h < hidden; ++h) x.push_back(rackep::origin_payload(r, t, h));
    b.x = std::make_unique<DeviceBuffer<uint16_t>>(x);
    b.recv = std::make_unique<DeviceBuffer<uint16_t>>(static_cast<size_t>((lay.rows(r) + 1) * hidden));
    b.origin = std::make_unique<DeviceBuffer<int32_t>>(static_cast<size_t>((lay.rows(r) + 1) * 3));
    b.probs = std::make_unique<DeviceBuffer<float>>(probs[r]);
    b.out = std::make_unique<DeviceBuffer<float>>(static_cast<size_t>((lay.num_tokens[r] + 1) * hidden));
    streams[place.gpu_of(r)].push_back(b.stream);
    io.push_back(
        {r, b.x->get(), b.recv->get(), b.origin->get(), b.recv->get(), b.probs->get(), b.out->get()});
  }
  EXPECT_EQ(static_cast<int>(streams[0].size()), q);
  Result res;
  {
    rackep::kernels::EpExchange ex(place, devices, 0, std::vector<ncclComm*>(comms.begin(), comms.end()),
                                   streams);
    ex.prepare(lay, hidden, io);
    if (gpus > 1) {
      EXPECT_GT(ex.remote_rows(), 0) << "the test layout must send rows between GPUs";
    }
    ex.dispatch();
    ex.barrier();
    ex.combine();
    for (int r = 0; r < n; ++r) {
      RACKEP_CUDA_CHECK(cudaSetDevice(place.gpu_of(r)));
      RACKEP_CUDA_CHECK(cudaStreamSynchronize(rb[r].stream));
      res.recv.push_back(rb[r].recv->download(static_cast<size_t>(lay.rows(r) * hidden)));
      res.origin.push_back(rb[r].origin->download(static_cast<size_t>(lay.rows(r) * 3)));
      res.out.push_back(rb[r].out->download(static_cast<size_t>(lay.num_tokens[r] * hidden)));
    }
  }
  for (int r = 0; r < n; ++r) cudaStreamDestroy(rb[r].stream);
  for (ncclComm_t c : comms) ncclCommDestroy(c);
  return res;
}

TEST(MultiGpu, DispatchCombineAcrossGpusEqualsEmulatedOnOneGpu) {
  std::string why;
  const int found = rackep::kernels::cuda_device_count(&why);
  if (found < 2)
    GTEST_SKIP() << (found == 0 ? why : "multi-GPU path needs 2 CUDA GPUs, found " + std::to_string(found));
  // 8 ranks (so 2 GPUs hold 4 each, 4 GPUs 2 each, 8 GPUs 1 each), S = 3, top-2 of different token counts.
  const rackep::ClusterShape shape{8, 2, 1, 8};
  const int64_t hidden = 128;
  std::mt19937_64 rng(21);
  std::vector<std::vector<int32_t>> ids(static_cast<size_t>(shape.num_ranks));
  for (int s = 0; s < shape.num_ranks; ++s)
    for (int t = 0; t < 37 + 11 * s; ++t) {
      const int a = static_cast<int>(rng() % shape.num_physical());
      int b = static_cast<int>(rng() % shape.num_physical());
      if (b == a) b = (a + 1) % shape.num_physical();
      ids[s].push_back(a);
      ids[s].push_back(b);
    }
  const rackep::DispatchLayout lay = rackep::build_dispatch_layout(shape, ids, 2);
  std::vector<std::vector<uint16_t>> x(static_cast<size_t>(shape.num_ranks)), ref_recv;
  std::vector<std::vector<int32_t>> ref_origin;
  std::vector<std::vector<float>> probs(static_cast<size_t>(shape.num_ranks)), ref_out;
  for (int s = 0; s < shape.num_ranks; ++s) {
    for (int64_t t = 0; t < lay.num_tokens[s]; ++t)
      for (int64_t h = 0; h < hidden; ++h) x[s].push_back(rackep::origin_payload(s, t, h));
    for (size_t e = 0; e < ids[s].size(); ++e)
      probs[s].push_back(std::uniform_real_distribution<float>(0, 1)(rng));
  }
  rackep::dispatch_reference(lay, x, hidden, ref_recv, ref_origin);
  rackep::combine_reference(lay, ref_recv, probs, hidden, ref_out);

  const Result one = run_on_gpus(lay, hidden, probs, 1);
  for (int gpus = 2; gpus <= std::min(found, shape.num_ranks); gpus *= 2) {
    const Result many = run_on_gpus(lay, hidden, probs, gpus);
    for (int r = 0; r < shape.num_ranks; ++r) {
      EXPECT_EQ(rackep::first_misrouted_row(lay, r, many.recv[r], many.origin[r], hidden), -1)
          << "rank " << r << " on " << gpus << " GPUs";
      EXPECT_EQ(many.recv[r], ref_recv[r]) << "rank " << r << " on " << gpus << " GPUs";
      EXPECT_EQ(many.origin[r], ref_origin[r]) << "rank " << r << " on " << gpus << " GPUs";
      EXPECT_EQ(many.recv[r], one.recv[r]) << "rows of rank " << r << ": " << gpus << " GPUs vs emulated";
      EXPECT_EQ(many.origin[r], one.origin[r])
          << "origins of rank " << r << ": " << gpus << " GPUs vs emulated";
      EXPECT_EQ(many.out[r], one.out[r]) << "combine of rank " << r << ": " << gpus << " GPUs vs emulated";
      EXPECT_EQ(many.out[r], ref_out[r]) << "combine of rank " << r << " vs combine_reference";
    }
  }
}

}  // namespace
#else
TEST(MultiGpu, BuiltWithoutNccl) {
  GTEST_SKIP() << "built without NCCL (RACKEP_HAVE_NCCL=0): the multi-GPU path is not compiled";
}
#endif
