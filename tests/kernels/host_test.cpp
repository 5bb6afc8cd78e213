// Host-side behaviour of the CUDA backend that must hold on every machine, GPU or not: device detection never
// crashes, and check failures become CudaError naming the call, the error and file:line.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/ref_dispatch.hpp"
#include "kernels/check.hpp"
#include "kernels/device.hpp"
#include "kernels/ep_layout.hpp"

namespace {

TEST(KernelsHost, DeviceCountNeverThrowsForMissingGpus) {
  std::string why;
  const int n = rackep::kernels::cuda_device_count(&why);
  EXPECT_GE(n, 0);
  if (n == 0) {
    EXPECT_EQ(why.rfind("no CUDA GPU found", 0), 0u) << why;
    try {
      rackep::kernels::require_gpus(1);
      FAIL() << "require_gpus must throw without a GPU";
    } catch (const rackep::kernels::GpuUnavailable& e) {
      EXPECT_EQ(std::string(e.what()).rfind("no CUDA GPU found", 0), 0u) << e.what();
    }
  } else {
    EXPECT_EQ(static_cast<int>(rackep::kernels::require_gpus(1).size()), n);
  }
}

TEST(KernelsHost, CudaCheckThrowsWithCallErrorAndLocation) {
  try {
    RACKEP_CUDA_CHECK(cudaErrorInvalidValue);
    FAIL() << "expected CudaError";
  } catch (const rackep::kernels::CudaError& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.call(), "cudaErrorInvalidValue");
    EXPECT_EQ(e.error(), "cudaErrorInvalidValue");
    EXPECT_NE(what.find("host_test.cpp:"), std::string::npos) << what;
    EXPECT_NE(e.where().find("host_test.cpp:"), std::string::npos);
  }
}

TEST(KernelsHost, CublasCheckNamesTheStatus) {
  try {
    RACKEP_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
    FAIL() << "expected CudaError";
  } catch (const rackep::kernels::CudaError& e) {
    EXPECT_EQ(e.error(), "CUBLAS_STATUS_NOT_SUPPORTED");
    EXPECT_NE(std::string(e.what()).find("host_test.cpp:"), std::string::npos);
  }
}

}  // namespace

// The GPU-level exchange layout (kernels/ep_layout.hpp), played on the host: every entry goes to its local
// receiver or through its GPU's send buffer, segment copy, staging and unpack to exactly the row core's
// DispatchLayout gives it, and every receive row is written once.
namespace {

TEST(KernelsHost, GpuExchangeLayoutDeliversEveryEntryToItsRow) {
  const rackep::ClusterShape shape{8, 2, 1, 8};
  std::mt19937_64 rng(5);
  std::vector<std::vector<int32_t>> ids(8);
  for (int s = 0; s < 8; ++s)
    for (int t = 0; t < 20 + 7 * s; ++t) {
      ids[s].push_back(static_cast<int32_t>(rng() % shape.num_physical()));
      ids[s].push_back(static_cast<int32_t>(rng() % shape.num_physical()));
    }
  const rackep::DispatchLayout lay = rackep::build_dispatch_layout(shape, ids, 2);
  for (int gpus : {1, 2, 4, 8}) {
    const rackep::kernels::EpPlacement place{8, gpus};
    const rackep::kernels::GpuExchangeLayout gl = rackep::kernels::build_gpu_exchange_layout(lay, place);
    const int q = place.ranks_per_gpu();
    using Tag = std::pair<int, int64_t>;  // (source, entry)
    std::vector<std::vector<Tag>> recv(8), send(gpus), staging(gpus);
    for (int d = 0; d < 8; ++d) recv[d].assign(static_cast<size_t>(lay.rows(d)), {-1, -1});
    for (int g = 0; g < gpus; ++g) {
      send[g].assign(static_cast<size_t>(gl.send_rows(g)), {-1, -1});
      staging[g].assign(static_cast<size_t>(gl.staging_rows(g)), {-1, -1});
    }
    int64_t remote = 0;
    for (int s = 0; s < 8; ++s)
      for (size_t e = 0; e < ids[s].size(); ++e) {
        const int b = gl.entry_buf[s][e];
        ASSERT_TRUE(b >= 0 && b <= q);
        const Tag tag{s, static_cast<int64_t>(e)};
        auto& target = b < q ? recv[place.first_rank(place.gpu_of(s)) + b] : send[place.gpu_of(s)];
        const int64_t row = gl.entry_row[s][e];
        ASSERT_TRUE(row >= 0 && row < static_cast<int64_t>(target.size()));
        ASSERT_EQ(target[row].first, -1) << "row written twice";
        target[row] = tag;
        remote += b == q;
      }
    if (gpus == 1) {
      EXPECT_EQ(remote, 0);
    } else {
      EXPECT_GT(remote, 0) << gpus << " GPUs: the layout must send rows between GPUs";
    }
    for (int g = 0; g < gpus; ++g)
      for (int h = 0; h < gpus; ++h) {
        if (g == h) {
          EXPECT_EQ(gl.gpu_send_count(g, h), 0);
          continue;
        }
        for (int64_t k = 0; k < gl.gpu_send_count(g, h); ++k)
          staging[h][gl.staging_offset(h, g) + k] = send[g][gl.send_offset(g, h) + k];
      }
    for (int h = 0; h < gpus; ++h)
      for (int64_t k = 0; k < gl.staging_rows(h); ++k) {
        auto& target = recv[place.first_rank(h) + gl.staging_rank[h][k]];
        const int64_t row = gl.staging_row[h][k];
        ASSERT_TRUE(row >= 0 && row < static_cast<int64_t>(target.size()));
        ASSERT_EQ(target[row].first, -1) << "row written twice";
        target[row] = staging[h][k];
      }
    for (int s = 0; s < 8; ++s)
      for (size_t e = 0; e < ids[s].size(); ++e) {
        const Tag got = recv[lay.dest_rank[s][e]][lay.dest_row[s][e]];
        ASSERT_EQ(got, Tag(s, static_cast<int64_t>(e))) << gpus << " GPUs, source " << s << " entry " << e;
      }
  }
}

TEST(KernelsHost, PlacementNeedsDivisibleEpSize) {
  EXPECT_THROW((rackep::kernels::EpPlacement{6, 4}).validate("--gpus"), rackep::InputError);
  EXPECT_THROW((rackep::kernels::EpPlacement{4, 8}).validate("--gpus"), rackep::InputError);
  EXPECT_NO_THROW((rackep::kernels::EpPlacement{8, 4}).validate("--gpus"));
  EXPECT_EQ(rackep::kernels::gpus_for_ranks(6, 4), 3);
  EXPECT_EQ(rackep::kernels::gpus_for_ranks(64, 8), 8);
  EXPECT_EQ(rackep::kernels::gpus_for_ranks(7, 4), 1);
  EXPECT_EQ(rackep::kernels::gpus_for_ranks(4, 0), 1);
}

}  // namespace
