// Host-side behaviour of the CUDA backend that must hold on every machine, GPU or not: device detection never
// crashes, and check failures become CudaError naming the call, the error and file:line.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>

#include "kernels/check.hpp"
#include "kernels/device.hpp"

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
