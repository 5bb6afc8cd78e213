// File: kernels/expert_ffn.hpp
// The expert FFN of one rank's instances on the GPU: SwiGLU through cuBLAS grouped GEMM (one group per
// non-empty local slot), bf16 inputs and weights, fp32 accumulation, bf16 outputs:
//   gu = x · fc1ᵀ (grouped GEMM) -> act = bf16(silu(g) · u) (swiglu kernel) -> y = act · fc2ᵀ (grouped GEMM).
// CPU reference: core/ref_expert_ffn.hpp (same rounding points; compare with compare_ffn_outputs).
// cublasGemmGroupedBatchedEx is used when the library supports the types; otherwise
// (CUBLAS_STATUS_NOT_SUPPORTED) one cublasGemmEx per group, and grouped_api() says which ran. Usage:
//   GroupedFfn ffn(dims);
//   ffn.run(d_x, slot_offsets, fc1_ptrs, fc2_ptrs, d_y, stream);   // rows of slot i: [off[i], off[i+1])
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "core/ref_expert_ffn.hpp"

namespace rackep::kernels {

class GroupedFfn {
 public:
  explicit GroupedFfn(const FfnDims& dims);
  ~GroupedFfn();
  GroupedFfn(const GroupedFfn&) = delete;
  GroupedFfn& operator=(const GroupedFfn&) = delete;

  /// Asynchronous on `stream`. x and y are [rows, H] bf16 device buffers with rows = slot_offsets.back();
  /// fc1[i] ([2F, H]) and fc2[i] ([H, F]) are device pointers of slot i (may be null for empty slots).
  /// Throws InputError on inconsistent arguments, CudaError on a CUDA or cuBLAS failure.
  void run(const uint16_t* x, const std::vector<int64_t>& slot_offsets,
           const std::vector<const uint16_t*>& fc1, const std::vector<const uint16_t*>& fc2, uint16_t* y,
           cudaStream_t stream);

  /// One dense GEMM pair over all rows with slot 0's weights (the cuBLAS dense baseline of `bench kernels`).
  void run_dense(const uint16_t* x, int64_t rows, const uint16_t* fc1, const uint16_t* fc2, uint16_t* y,
                 cudaStream_t stream);

  bool grouped_api() const { return grouped_ok_; }
  const FfnDims& dims() const { return dims_; }

 private:
  struct Gemm {
    int m, n, k, lda, ldb, ldc;
    const void* a;
    const void* b;
    void* c;
  };
  void gemms(const std::vector<Gemm>& g, cudaStream_t stream);
  void reserve(int64_t rows, size_t groups);

  FfnDims dims_;
  cublasHandle_t handle_ = nullptr;
  bool grouped_ok_ = true;
  uint16_t* gu_ = nullptr;   // [rows, 2F]
  uint16_t* act_ = nullptr;  // [rows, F]
  int64_t cap_rows_ = 0;
  void** d_ptrs_ = nullptr;  // 3 x groups pointer arrays for the grouped call
  size_t cap_groups_ = 0;
  void* workspace_ = nullptr;
};

}  // namespace rackep::kernels
