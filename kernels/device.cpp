#include "kernels/device.hpp"

#include <cuda_runtime_api.h>

#include <cstdlib>

#include "kernels/check.hpp"

namespace rackep::kernels {

double DeviceInfo::peak_hbm_bytes_per_s() const {
  return 2.0 * static_cast<double>(memory_clock_khz) * 1e3 * static_cast<double>(memory_bus_width_bits) / 8.0;
}

int cuda_device_count(std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  switch (err) {
    case cudaSuccess:
      if (count == 0 && why != nullptr) *why = "no CUDA GPU found (cudaGetDeviceCount returned 0 devices)";
      return count;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemNotReady:
    case cudaErrorCompatNotSupportedOnDevice:
      // The error is sticky only for this query; clear it so later checks do not see it.
      (void)cudaGetLastError();
      if (why != nullptr)
        *why = std::string("no CUDA GPU found (cudaGetDeviceCount: ") + cudaGetErrorName(err) + ": " +
               cudaGetErrorString(err) + ")";
      return 0;
    default:
      throw_cuda_error("cudaGetDeviceCount(&count)", cudaGetErrorName(err), cudaGetErrorString(err), __FILE__,
                       __LINE__);
  }
}

DeviceInfo device_info(int index) {
  cudaDeviceProp prop{};
  RACKEP_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  DeviceInfo info;
  info.index = index;
  info.name = prop.name;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.num_sms = prop.multiProcessorCount;
  info.global_mem_bytes = prop.totalGlobalMem;
  info.max_smem_per_block_optin_bytes = prop.sharedMemPerBlockOptin;
  info.memory_bus_width_bits = prop.memoryBusWidth;
  int clock_khz = 0;
  RACKEP_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, index));
  info.memory_clock_khz = clock_khz;
  return info;
}

std::vector<DeviceInfo> require_gpus(int min_devices) {
  std::string why;
  const int count = cuda_device_count(&why);
  if (count == 0) throw GpuUnavailable(why);
  if (count < min_devices)
    throw GpuUnavailable("no CUDA GPU found in sufficient number: need " + std::to_string(min_devices) +
                         ", found " + std::to_string(count));
  std::vector<DeviceInfo> out;
  for (int i = 0; i < count; ++i) out.push_back(device_info(i));
  return out;
}

}  // namespace rackep::kernels
