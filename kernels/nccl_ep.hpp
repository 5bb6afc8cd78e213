// File: kernels/nccl_ep.hpp
// Expert-parallel ranks on several GPUs (compiled when RACKEP_HAVE_NCCL): NCCL communicators (all GPUs of one
// process, or one process per GPU bootstrapped by MPI when RACKEP_HAVE_MPI), peer access, and the dispatch /
// combine exchanges of a DispatchLayout (core/ref_dispatch.hpp) with grouped ncclSend/ncclRecv:
//   dispatch: each source packs its rows in wire order (scatter_rows with rows send_offset + wire_pos),
//   exchanges
//             segment (s -> d) of send_count(s, d) rows plus their origins, and each receiver unpacks its
//             staging buffer with permute_rows(dst_row = recv_from_staging);
//   combine:  each receiver packs its expert outputs in staging order (permute_rows(src_row =
//   recv_from_staging)),
//             sends them back, and each source combines from its return buffer (rows send_offset + wire_pos).
// Every NCCL call is checked: failures throw CudaError naming the call, the NCCL error and file:line.
// Usage:
//   std::vector<ncclComm_t> comms = nccl_comms_for_devices({0, 1});
//   nccl_exchange_dispatch(comms[r], r, layout, hidden, send, send_origin, staging, staging_origin, stream);
#pragma once

#include "rackep/config.hpp"

#if RACKEP_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <vector>

#include "core/ref_dispatch.hpp"
#include "kernels/check.hpp"
#include "kernels/ep_layout.hpp"

#define RACKEP_NCCL_CHECK(call)                                                                   \
  do {                                                                                            \
    const ncclResult_t rackep_nr_ = (call);                                                       \
    if (rackep_nr_ != ncclSuccess)                                                                \
      ::rackep::kernels::throw_cuda_error(#call, ::rackep::kernels::nccl_result_name(rackep_nr_), \
                                          ncclGetErrorString(rackep_nr_), __FILE__, __LINE__);    \
  } while (0)

namespace rackep::kernels {

/// "ncclUnhandledCudaError", ... for a result code.
const char* nccl_result_name(ncclResult_t result);

/// One communicator per device of this process (ncclCommInitAll); rank i drives devices[i]. Destroy with
/// ncclCommDestroy.
std::vector<ncclComm_t> nccl_comms_for_devices(const std::vector<int>& devices);

/// Enables peer access between every pair of `devices` that supports it (weight_sync and grad_reduce then
/// read and write peer slots directly). Returns false when some pair has no peer access.
bool enable_peer_access(const std::vector<int>& devices);

/// Dispatch exchange of rank `rank`: sends its packed wire-order rows (send: [Σ_d send_count(rank, d),
/// hidden] bf16, send_origin: 3 int32 per row) and receives into staging buffers ordered by source.
/// Asynchronous on `stream`.
void nccl_exchange_dispatch(ncclComm_t comm, int rank, const DispatchLayout& layout, int64_t hidden,
                            const uint16_t* send, const int32_t* send_origin, uint16_t* staging,
                            int32_t* staging_origin, cudaStream_t stream);

/// Combine exchange of rank `rank`: sends the expert outputs of its staging-ordered rows back to their
/// sources and receives its own rows' outputs in wire order ([Σ_d send_count(rank, d), hidden]). Asynchronous
/// on `stream`.
void nccl_exchange_combine(ncclComm_t comm, int rank, const DispatchLayout& layout, int64_t hidden,
                           const uint16_t* staged_outputs, uint16_t* returned, cudaStream_t stream);

/// GPU-level dispatch exchange of GPU `gpu` (NCCL rank = GPU index of the placement) for ranks placed in
/// blocks (kernels/ep_layout.hpp): one ncclSend of rows (bf16) and one of origins (3 int32 per row) per other
/// GPU from `send` at send_offset(gpu, h), one ncclRecv pair per other GPU into `staging` at
/// staging_offset(gpu, g). Asynchronous on `stream`, inside its own NCCL group (nest it in an outer
/// ncclGroupStart/End when one thread drives several GPUs).
void nccl_exchange_gpu_dispatch(ncclComm_t comm, int gpu, const GpuExchangeLayout& layout, int64_t hidden,
                                const uint16_t* send, const int32_t* send_origin, uint16_t* staging,
                                int32_t* staging_origin, cudaStream_t stream);

/// GPU-level combine exchange: the staging-ordered expert outputs `back` go back to the GPUs they came from;
/// the rows this GPU sent come back into `returned` at the rows they had in its send buffer.
void nccl_exchange_gpu_combine(ncclComm_t comm, int gpu, const GpuExchangeLayout& layout, int64_t hidden,
                               const uint16_t* back, uint16_t* returned, cudaStream_t stream);

/// Device-side barrier over the communicator: a one-int ncclAllReduce on `stream` (`scratch`: one device
/// int32). Work queued on `stream` after it starts only once every rank's stream reached it.
void nccl_device_barrier(ncclComm_t comm, int32_t* scratch, cudaStream_t stream);

#if RACKEP_HAVE_MPI
/// MPI for one process per GPU: initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) unless the caller
/// already did, and finalises on destruction when it initialised. local_rank() is the process's index among
/// those on its node (MPI_Comm_split_type shared memory), used to pick its GPU.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  /// Collective: the maximum / sum of `v` over all processes.
  double max(double v) const;
  int64_t sum(int64_t v) const;
  /// Collective: true when `v` is true on every process.
  bool all(bool v) const;
  void barrier() const;

 private:
  bool initialised_here_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
};

/// One process per GPU: rank 0 creates the ncclUniqueId and broadcasts it over MPI_COMM_WORLD; every process
/// joins with its MPI rank on the current device. MPI must be initialised by the caller.
ncclComm_t nccl_comm_from_mpi();

/// One process per GPU: every process exports `local` (a cudaMalloc'd buffer) with cudaIpcGetMemHandle; the
/// handles are all-gathered over MPI_COMM_WORLD and opened, so entry r is rank r's buffer mapped here (own
/// rank: `local`). Close the remote ones with cudaIpcCloseMemHandle.
std::vector<void*> exchange_ipc_pointers(void* local);
#endif

}  // namespace rackep::kernels
#endif  // RACKEP_HAVE_NCCL
