// weight_sync and grad_reduce on the GPU (kernels/data_plane.hpp) against core's CPU references: the copy
// engine must leave every slot byte-identical to execute_weight_sync_cpu (direct and relay with chunk
// streaming), and grad_reduce must equal grad_reduce_reference bit for bit, on every run.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "core/ref_grad_reduce.hpp"
#include "core/transfer.hpp"
#include "core/ultraep.hpp"
#include "kernels/data_plane.hpp"
#include "kernels/timing.hpp"
#include "tests/kernels/gpu_test_util.hpp"

namespace {

using rackep::kernels::DeviceBuffer;

// G = 16 so relays are allowed; one very hot expert gets many replicas.
rackep::Plan hot_plan(const rackep::ClusterShape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> w(static_cast<size_t>(shape.num_experts()));
  for (auto& v : w) v = 500 + static_cast<int64_t>(rng() % 500);
  w[0] = 40000;
  w[5] = 20000;
  w[shape.num_masters * 3] = 15000;
  return rackep::ultraep_plan(shape, w, rackep::UltraEpOptions{});
}

class DataPlaneGpu : public rackep::test::GpuTest {
 protected:
  void check_weight_sync(const rackep::Plan& plan, const rackep::ExpertBytes& eb,
                         rackep::WeightSyncMode mode) {
    rackep::WeightSyncOptions opt;
    opt.mode = mode;
    opt.direct_max_domain_size = 0;
    const rackep::TransferPlan tp = rackep::plan_weight_sync(plan, eb, opt);
    const rackep::WeightSyncTaskList tasks = rackep::build_weight_sync_tasks(tp);
    const int slots = plan.shape.num_physical();
    const int64_t bw = eb.weight_bytes();
    DeviceBuffer<uint8_t> weights(static_cast<size_t>(slots * bw));
    DeviceBuffer<uint32_t> flags(
        static_cast<size_t>(std::max(tasks.flags_per_rank, 1) * plan.shape.num_ranks));
    RACKEP_CUDA_CHECK(cudaMemset(flags.get(), 0, flags.bytes()));
    rackep::kernels::WeightSyncBuffers buf;
    for (int p = 0; p < slots; ++p) buf.slot_weights.push_back(weights.get() + p * bw);
    for (int r = 0; r < plan.shape.num_ranks; ++r)
      buf.rank_flags.push_back(flags.get() + r * tasks.flags_per_rank);
    rackep::kernels::WeightSyncEngine engine(8);
    engine.prepare_all_ranks(tasks, buf, stream_);
    std::mt19937_64 rng(99);
    for (uint32_t epoch = 1; epoch <= 2; ++epoch) {  // two calls: the epoch, not a reset, re-arms the flags
      std::vector<std::vector<uint8_t>> host(static_cast<size_t>(slots),
                                             std::vector<uint8_t>(static_cast<size_t>(bw)));
      for (auto& slot : host)
        for (auto& b : slot) b = static_cast<uint8_t>(rng());
      std::vector<uint8_t> flat;
      for (const auto& slot : host) flat.insert(flat.end(), slot.begin(), slot.end());
      weights.assign(flat);
      rackep::execute_weight_sync_cpu(tasks, host);
      engine.run(epoch, stream_);
      RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
      const std::vector<uint8_t> got = weights.download(flat.size());
      for (int p = 0; p < slots; ++p)
        ASSERT_EQ(0, std::memcmp(got.data() + p * bw, host[p].data(), static_cast<size_t>(bw)))
            << "slot " << p << " differs after call " << epoch << " (" << rackep::to_string(tp.mode) << ")";
    }
  }
};

TEST_F(DataPlaneGpu, WeightSyncDirectAndRelayAreBitExact) {
  const rackep::ClusterShape shape{16, 2, 2, 16};
  const rackep::Plan plan = hot_plan(shape, 1);
  ASSERT_GE(plan.max_instances(), 5);  // enough replicas for relay trees
  // fc1 = 2*320*512*2 B = 640 KiB (3 chunks, 20 tiles), fc2 = 320 KiB: multi-chunk relay streaming.
  const rackep::ExpertBytes eb{320, 512, 2};
  check_weight_sync(plan, eb, rackep::WeightSyncMode::kDirect);
  check_weight_sync(plan, eb, rackep::WeightSyncMode::kAdaptive);
  check_weight_sync(plan, eb, rackep::WeightSyncMode::kForceRelay);
}

TEST_F(DataPlaneGpu, WeightSyncShortTailTiles) {
  const rackep::ClusterShape shape{16, 1, 3, 16};
  const rackep::ExpertBytes eb{40, 24, 2};  // fc1 3840 B, fc2 1920 B: single short tiles
  check_weight_sync(hot_plan(shape, 2), eb, rackep::WeightSyncMode::kForceRelay);
}

TEST_F(DataPlaneGpu, GradReduceIsBitIdenticalRunToRun) {
  const rackep::ClusterShape shape{16, 2, 2, 16};
  const rackep::Plan plan = hot_plan(shape, 3);
  const rackep::ExpertBytes eb{256, 96, 2};  // 73,728 floats per slot: several 16 Ki-float tiles per shard
  const rackep::GradReducePlan gp = rackep::plan_grad_reduce(plan, eb);
  ASSERT_FALSE(gp.pulls.empty());
  const int slots = shape.num_physical();
  const size_t floats = static_cast<size_t>(eb.grad_bytes() / 4);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> dist(-1e4f, 1e4f);
  std::vector<std::vector<float>> host(static_cast<size_t>(slots), std::vector<float>(floats));
  for (auto& s : host)
    for (auto& v : s) v = dist(rng);
  std::vector<float> flat;
  for (const auto& s : host) flat.insert(flat.end(), s.begin(), s.end());
  std::vector<std::vector<float>> expect = host;
  rackep::grad_reduce_reference(gp, expect);
  DeviceBuffer<float> grads(flat.size());
  rackep::kernels::GradReduceBuffers buf;
  for (int p = 0; p < slots; ++p) buf.slot_grads.push_back(grads.get() + p * floats);
  rackep::kernels::GradReduceEngine engine;
  engine.prepare(gp, buf, -1, stream_);
  for (int run = 0; run < 3; ++run) {
    grads.assign(flat);
    engine.run(run == 0 ? 42 : 7 + run, stream_);  // different grids, same bits
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    const std::vector<float> got = grads.download(flat.size());
    for (int p = 0; p < slots; ++p)
      ASSERT_EQ(0, std::memcmp(got.data() + p * floats, expect[p].data(), floats * sizeof(float)))
          << "slot " << p << " run " << run;
  }
}

}  // namespace
