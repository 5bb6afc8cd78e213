// File: kernels/check.hpp
// Error checks of the CUDA backend (docs/STYLE.md rule 5): every CUDA runtime call, every kernel launch and
// every cuBLAS call is wrapped; a failure throws rackep::kernels::CudaError whose what() names the call, the
// error and file:line:
//   "cudaMalloc(&p, bytes) failed: cudaErrorMemoryAllocation (out of memory) at kernels/buffer.cpp:42".
// Checks never synchronise; code that wants to see asynchronous errors synchronises explicitly.
// Usage:
//   RACKEP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
//   my_kernel<<<grid, block, smem, stream>>>(args);
//   RACKEP_CUDA_LAUNCH_CHECK("my_kernel");
//   RACKEP_CUBLAS_CHECK(cublasCreate(&handle));
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

#include "core/error.hpp"

namespace rackep::kernels {

/// A failed CUDA, cuBLAS or NCCL call. `call()` is the source text of the call (or the kernel name of a
/// launch), `error()` the library's error name, `where()` "file:line". A runtime error (exit code 1).
class CudaError : public RuntimeError {
 public:
  CudaError(std::string call, std::string error, const std::string& detail, std::string where);
  const std::string& call() const noexcept { return call_; }
  const std::string& error() const noexcept { return error_; }
  const std::string& where() const noexcept { return where_; }

 private:
  std::string call_;
  std::string error_;
  std::string where_;
};

/// Throws CudaError; used by the check macros (kept out of line so the macros stay small).
[[noreturn]] void throw_cuda_error(const char* call, const char* error, const char* detail, const char* file,
                                   int line);

}  // namespace rackep::kernels

#define RACKEP_CUDA_CHECK(call)                                                                 \
  do {                                                                                          \
    const cudaError_t rackep_err_ = (call);                                                     \
    if (rackep_err_ != cudaSuccess)                                                             \
      ::rackep::kernels::throw_cuda_error(#call, cudaGetErrorName(rackep_err_),                 \
                                          cudaGetErrorString(rackep_err_), __FILE__, __LINE__); \
  } while (0)

/// Checks the launch that just happened on this thread (bad configuration, missing kernel image, ...).
#define RACKEP_CUDA_LAUNCH_CHECK(kernel_name)                                                      \
  do {                                                                                             \
    const cudaError_t rackep_err_ = cudaGetLastError();                                            \
    if (rackep_err_ != cudaSuccess)                                                                \
      ::rackep::kernels::throw_cuda_error("launch of " kernel_name, cudaGetErrorName(rackep_err_), \
                                          cudaGetErrorString(rackep_err_), __FILE__, __LINE__);    \
  } while (0)

#define RACKEP_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                            \
    const cublasStatus_t rackep_st_ = (call);                                                     \
    if (rackep_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::rackep::kernels::throw_cuda_error(#call, cublasGetStatusName(rackep_st_),                 \
                                          cublasGetStatusString(rackep_st_), __FILE__, __LINE__); \
  } while (0)
