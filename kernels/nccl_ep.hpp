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

#if RACKEP_HAVE_MPI
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
