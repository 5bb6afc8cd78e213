// Test helpers of the gpu-labelled suites: skip with the reason when no CUDA GPU is present (GTEST_SKIP), and
// a stream owned by the fixture.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <string>

#include "kernels/check.hpp"
#include "kernels/device.hpp"

namespace rackep::test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (kernels::cuda_device_count(&why) < 1) GTEST_SKIP() << why;
    RACKEP_CUDA_CHECK(cudaSetDevice(0));
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

}  // namespace rackep::test
