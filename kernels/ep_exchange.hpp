// File: kernels/ep_exchange.hpp
// Dispatch and combine of EP ranks placed in blocks on G GPUs (kernels/ep_layout.hpp), for the GPUs one
// process drives: all G in one process (one NCCL communicator per GPU from ncclCommInitAll), or one GPU per
// process under MPI (its communicator from nccl_comm_from_mpi). Every rank keeps its own buffers and stream;
// rows between ranks of the same GPU move by device-side permutation (one scatter kernel per source), rows
// between GPUs by grouped ncclSend/ncclRecv of one segment per GPU pair on the GPU's first rank's stream.
// With G = 1 no NCCL is needed and dispatch is exactly the emulated single-GPU push. The results equal
// dispatch_reference / combine_reference (core/ref_dispatch.hpp) bit for bit, whatever the placement.
// Usage:
//   EpExchange ex(place, {0, 1}, /*first_gpu=*/0, comms, {streams of GPU 0's ranks, streams of GPU 1's});
//   ex.prepare(layout, hidden, io);   // io: this process's ranks in order (host work, synchronous)
//   ex.dispatch();  ...expert FFN into io[i].y...;  ex.combine();
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/ref_dispatch.hpp"
#include "kernels/ep_layout.hpp"

struct ncclComm;  // nccl.h: typedef struct ncclComm* ncclComm_t

namespace rackep::kernels {

/// One EP rank's token buffers, device pointers on its GPU. Sizes follow the DispatchLayout: x
/// [num_tokens, hidden] bf16, recv/y [rows, hidden] bf16, origin [rows, 3], probs [num_tokens * top_k],
/// out [num_tokens, hidden] fp32.
struct EpRankIo {
  int rank = 0;  ///< global EP rank
  const uint16_t* x = nullptr;
  uint16_t* recv = nullptr;
  int32_t* origin = nullptr;
  const uint16_t* y = nullptr;
  const float* probs = nullptr;
  float* out = nullptr;
};

class EpExchange {
 public:
  /// This process drives GPUs first_gpu .. first_gpu + devices.size() - 1 of `placement`; devices[i] is the
  /// CUDA device of the i-th, comms[i] its NCCL communicator (NCCL rank = GPU index; empty when G = 1) and
  /// streams[i] the streams of its ranks_per_gpu() ranks in rank order. Throws InputError on inconsistent
  /// arguments, or when G > 1 in a build without NCCL.
  EpExchange(const EpPlacement& placement, std::vector<int> devices, int first_gpu,
             std::vector<ncclComm*> comms, std::vector<std::vector<cudaStream_t>> streams);
  ~EpExchange();
  EpExchange(const EpExchange&) = delete;
  EpExchange& operator=(const EpExchange&) = delete;

  /// Host preparation for one layout (untimed, synchronous): exchange layout, per-entry and staging maps,
  /// send/staging/return buffers. `io`: this process's ranks in rank order.
  void prepare(const DispatchLayout& layout, int64_t hidden, const std::vector<EpRankIo>& io);
  /// Asynchronous. Every source scatters on its stream (local rows into the receivers' buffers, remote rows
  /// into its GPU's send buffer); per GPU the ranks' streams join, the NCCL exchange and the unpack of
  /// staging rows run on the first rank's stream, and the others fork from it.
  void dispatch();
  /// Asynchronous. Per GPU the ranks' streams join; remote rows' outputs go back by NCCL; then every source
  /// combines its tokens on its stream (out = sum over k in order of prob * y, fp32).
  void combine();
  /// Device-side barrier over all G GPUs (a one-int ncclAllReduce; with G = 1 a join of the GPU's streams).
  void barrier();

  const GpuExchangeLayout& layout() const { return layout_; }
  int local_gpus() const { return static_cast<int>(gpus_.size()); }
  /// Rows this process sends to other GPUs in one dispatch (the same number comes back in combine).
  int64_t remote_rows() const;

 private:
  struct Gpu;
  struct Source;
  EpPlacement placement_;
  int first_gpu_ = 0;
  int64_t hidden_ = 0;
  int top_k_ = 1;
  GpuExchangeLayout layout_;
  std::vector<std::unique_ptr<Gpu>> gpus_;
  std::vector<std::unique_ptr<Source>> sources_;
};

}  // namespace rackep::kernels
