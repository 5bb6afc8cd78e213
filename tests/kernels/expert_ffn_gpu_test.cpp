// Expert FFN on the GPU (kernels/expert_ffn.hpp: cuBLAS grouped GEMM + SwiGLU) against the CPU reference
// (core/ref_expert_ffn.hpp) within the tolerance stated there.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/ref_bf16.hpp"
#include "core/ref_expert_ffn.hpp"
#include "kernels/expert_ffn.hpp"
#include "kernels/timing.hpp"
#include "tests/kernels/gpu_test_util.hpp"

namespace {

using rackep::kernels::DeviceBuffer;

std::vector<uint16_t> random_bf16(std::mt19937_64& rng, size_t n, float scale) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = rackep::float_to_bf16(d(rng));
  return v;
}

class ExpertFfnGpu : public rackep::test::GpuTest {};

TEST_F(ExpertFfnGpu, GroupedSwiGluMatchesReference) {
  const rackep::FfnDims dims{256, 128};
  const std::vector<int64_t> off{0, 37, 37, 200, 201, 329};  // an empty slot and a single-token slot
  const size_t slots = off.size() - 1;
  const int64_t rows = off.back();
  std::mt19937_64 rng(17);
  const auto x = random_bf16(rng, static_cast<size_t>(rows * dims.hidden), 1.0f);
  std::vector<std::vector<uint16_t>> w1, w2;
  for (size_t i = 0; i < slots; ++i) {
    w1.push_back(random_bf16(rng, static_cast<size_t>(dims.fc1_elements()), 1.0f / std::sqrt(256.0f)));
    w2.push_back(random_bf16(rng, static_cast<size_t>(dims.fc2_elements()), 1.0f / std::sqrt(128.0f)));
  }
  std::vector<uint16_t> ref(x.size());
  std::vector<const uint16_t*> h1, h2;
  for (size_t i = 0; i < slots; ++i) {
    h1.push_back(w1[i].data());
    h2.push_back(w2[i].data());
  }
  rackep::grouped_expert_ffn_reference(x.data(), off, h1, h2, dims, ref.data());

  DeviceBuffer<uint16_t> dx(x), dy(x.size());
  std::vector<std::unique_ptr<DeviceBuffer<uint16_t>>> d1, d2;
  std::vector<const uint16_t*> p1, p2;
  for (size_t i = 0; i < slots; ++i) {
    d1.push_back(std::make_unique<DeviceBuffer<uint16_t>>(w1[i]));
    d2.push_back(std::make_unique<DeviceBuffer<uint16_t>>(w2[i]));
    p1.push_back(d1.back()->get());
    p2.push_back(d2.back()->get());
  }
  rackep::kernels::GroupedFfn ffn(dims);
  ffn.run(dx.get(), off, p1, p2, dy.get(), stream_);
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream_));
  const std::vector<uint16_t> got = dy.download(x.size());
  const rackep::FfnCompare c = rackep::compare_ffn_outputs(ref, got, rows, dims.hidden);
  EXPECT_TRUE(c.ok) << c.num_bad << " elements outside tolerance, first at " << c.first_bad
                    << ", max abs err " << c.max_abs_err
                    << (ffn.grouped_api() ? " (grouped API)" : " (per-group)");
}

}  // namespace
