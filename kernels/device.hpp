// File: kernels/device.hpp
// GPU discovery for the CUDA backend. A machine without a GPU, without a driver, or with a driver older than
// the toolkit is reported as "no CUDA GPU found" (GpuUnavailable), never as a crash; any other CUDA failure
// is a CudaError. Tests use cuda_device_count() to skip; commands call require_gpus(). Usage:
//   std::string why;
//   if (rackep::kernels::cuda_device_count(&why) == 0) GTEST_SKIP() << why;
//   std::vector<DeviceInfo> gpus = rackep::kernels::require_gpus(1);   // throws GpuUnavailable
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace rackep::kernels {

/// No usable CUDA device. what() starts with "no CUDA GPU found". A runtime error (exit code 1).
class GpuUnavailable : public RuntimeError {
 public:
  explicit GpuUnavailable(const std::string& message) : RuntimeError(message) {}
};

/// What the backend needs to know about one device (cudaGetDeviceProperties plus attributes).
struct DeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;  ///< compute capability
  int cc_minor = 0;
  int num_sms = 0;
  size_t global_mem_bytes = 0;
  size_t max_smem_per_block_optin_bytes = 0;
  int memory_bus_width_bits = 0;
  int memory_clock_khz = 0;
  /// Theoretical HBM bandwidth from the memory clock and bus width (DDR: x2), bytes/s; 0 when unknown.
  double peak_hbm_bytes_per_s() const;
};

/// Number of CUDA devices. Returns 0 (and writes the reason to `why` when given) when cudaGetDeviceCount
/// reports no device, no driver, an insufficient or mismatched driver, or unavailable devices; throws
/// CudaError on any other failure.
int cuda_device_count(std::string* why = nullptr);

/// Properties of device `index`; throws CudaError.
DeviceInfo device_info(int index);

/// Properties of every device; throws GpuUnavailable("no CUDA GPU found ...") when fewer than `min_devices`
/// exist.
std::vector<DeviceInfo> require_gpus(int min_devices = 1);

}  // namespace rackep::kernels
