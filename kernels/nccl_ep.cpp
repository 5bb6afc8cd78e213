#include "kernels/nccl_ep.hpp"

#if RACKEP_HAVE_NCCL
#include <cuda_runtime.h>
#if RACKEP_HAVE_MPI
// Only the C API is used: keep the C++ bindings (and their cast warnings) out.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace rackep::kernels {

const char* nccl_result_name(ncclResult_t r) {
  switch (r) {
    case ncclSuccess:
      return "ncclSuccess";
    case ncclUnhandledCudaError:
      return "ncclUnhandledCudaError";
    case ncclSystemError:
      return "ncclSystemError";
    case ncclInternalError:
      return "ncclInternalError";
    case ncclInvalidArgument:
      return "ncclInvalidArgument";
    case ncclInvalidUsage:
      return "ncclInvalidUsage";
    case ncclRemoteError:
      return "ncclRemoteError";
    case ncclInProgress:
      return "ncclInProgress";
    default:
      return "ncclUnknownResult";
  }
}

std::vector<ncclComm_t> nccl_comms_for_devices(const std::vector<int>& devices) {
  std::vector<ncclComm_t> comms(devices.size(), nullptr);
  RACKEP_NCCL_CHECK(ncclCommInitAll(comms.data(), static_cast<int>(devices.size()), devices.data()));
  return comms;
}

bool enable_peer_access(const std::vector<int>& devices) {
  int current = 0;
  RACKEP_CUDA_CHECK(cudaGetDevice(&current));
  bool all = true;
  for (int a : devices) {
    RACKEP_CUDA_CHECK(cudaSetDevice(a));
    for (int b : devices) {
      if (a == b) continue;
      int can = 0;
      RACKEP_CUDA_CHECK(cudaDeviceCanAccessPeer(&can, a, b));
      if (!can) {
        all = false;
        continue;
      }
      const cudaError_t err = cudaDeviceEnablePeerAccess(b, 0);
      if (err == cudaErrorPeerAccessAlreadyEnabled) {
        (void)cudaGetLastError();
      } else {
        RACKEP_CUDA_CHECK(err);
      }
    }
  }
  RACKEP_CUDA_CHECK(cudaSetDevice(current));
  return all;
}

void nccl_exchange_dispatch(ncclComm_t comm, int rank, const DispatchLayout& lay, int64_t hidden,
                            const uint16_t* send, const int32_t* send_origin, uint16_t* staging,
                            int32_t* staging_origin, cudaStream_t stream) {
  const int n = lay.num_ranks;
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int d = 0; d < n; ++d) {
    const int64_t cnt = lay.send_count(rank, d);
    if (cnt == 0) continue;
    const int64_t off = lay.send_offset(rank, d);
    RACKEP_NCCL_CHECK(
        ncclSend(send + off * hidden, static_cast<size_t>(cnt * hidden), ncclBfloat16, d, comm, stream));
    RACKEP_NCCL_CHECK(
        ncclSend(send_origin + off * 3, static_cast<size_t>(cnt * 3), ncclInt32, d, comm, stream));
  }
  for (int s = 0; s < n; ++s) {
    const int64_t cnt = lay.send_count(s, rank);
    if (cnt == 0) continue;
    const int64_t off = lay.staging_offset(rank, s);
    RACKEP_NCCL_CHECK(
        ncclRecv(staging + off * hidden, static_cast<size_t>(cnt * hidden), ncclBfloat16, s, comm, stream));
    RACKEP_NCCL_CHECK(
        ncclRecv(staging_origin + off * 3, static_cast<size_t>(cnt * 3), ncclInt32, s, comm, stream));
  }
  RACKEP_NCCL_CHECK(ncclGroupEnd());
}

void nccl_exchange_combine(ncclComm_t comm, int rank, const DispatchLayout& lay, int64_t hidden,
                           const uint16_t* staged_outputs, uint16_t* returned, cudaStream_t stream) {
  const int n = lay.num_ranks;
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int s = 0; s < n; ++s) {  // back to each source: the segment it sent us
    const int64_t cnt = lay.send_count(s, rank);
    if (cnt == 0) continue;
    RACKEP_NCCL_CHECK(ncclSend(staged_outputs + lay.staging_offset(rank, s) * hidden,
                               static_cast<size_t>(cnt * hidden), ncclBfloat16, s, comm, stream));
  }
  for (int d = 0; d < n; ++d) {  // our rows' outputs, in the wire order we sent them
    const int64_t cnt = lay.send_count(rank, d);
    if (cnt == 0) continue;
    RACKEP_NCCL_CHECK(ncclRecv(returned + lay.send_offset(rank, d) * hidden,
                               static_cast<size_t>(cnt * hidden), ncclBfloat16, d, comm, stream));
  }
  RACKEP_NCCL_CHECK(ncclGroupEnd());
}

void nccl_exchange_gpu_dispatch(ncclComm_t comm, int gpu, const GpuExchangeLayout& gl, int64_t hidden,
                                const uint16_t* send, const int32_t* send_origin, uint16_t* staging,
                                int32_t* staging_origin, cudaStream_t stream) {
  const int g_count = gl.placement.num_gpus;
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int h = 0; h < g_count; ++h) {
    const int64_t cnt = gl.gpu_send_count(gpu, h);
    if (h == gpu || cnt == 0) continue;
    const int64_t off = gl.send_offset(gpu, h);
    RACKEP_NCCL_CHECK(
        ncclSend(send + off * hidden, static_cast<size_t>(cnt * hidden), ncclBfloat16, h, comm, stream));
    RACKEP_NCCL_CHECK(
        ncclSend(send_origin + off * 3, static_cast<size_t>(cnt * 3), ncclInt32, h, comm, stream));
  }
  for (int g = 0; g < g_count; ++g) {
    const int64_t cnt = gl.gpu_send_count(g, gpu);
    if (g == gpu || cnt == 0) continue;
    const int64_t off = gl.staging_offset(gpu, g);
    RACKEP_NCCL_CHECK(
        ncclRecv(staging + off * hidden, static_cast<size_t>(cnt * hidden), ncclBfloat16, g, comm, stream));
    RACKEP_NCCL_CHECK(
        ncclRecv(staging_origin + off * 3, static_cast<size_t>(cnt * 3), ncclInt32, g, comm, stream));
  }
  RACKEP_NCCL_CHECK(ncclGroupEnd());
}

void nccl_exchange_gpu_combine(ncclComm_t comm, int gpu, const GpuExchangeLayout& gl, int64_t hidden,
                               const uint16_t* back, uint16_t* returned, cudaStream_t stream) {
  const int g_count = gl.placement.num_gpus;
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (int g = 0; g < g_count; ++g) {  // back to each source GPU: the segment it sent us
    const int64_t cnt = gl.gpu_send_count(g, gpu);
    if (g == gpu || cnt == 0) continue;
    RACKEP_NCCL_CHECK(ncclSend(back + gl.staging_offset(gpu, g) * hidden, static_cast<size_t>(cnt * hidden),
                               ncclBfloat16, g, comm, stream));
  }
  for (int h = 0; h < g_count; ++h) {  // our rows' outputs, at the rows we sent them from
    const int64_t cnt = gl.gpu_send_count(gpu, h);
    if (h == gpu || cnt == 0) continue;
    RACKEP_NCCL_CHECK(ncclRecv(returned + gl.send_offset(gpu, h) * hidden, static_cast<size_t>(cnt * hidden),
                               ncclBfloat16, h, comm, stream));
  }
  RACKEP_NCCL_CHECK(ncclGroupEnd());
}

void nccl_device_barrier(ncclComm_t comm, int32_t* scratch, cudaStream_t stream) {
  RACKEP_NCCL_CHECK(ncclAllReduce(scratch, scratch, 1, ncclInt32, ncclMax, comm, stream));
}

#if RACKEP_HAVE_MPI
namespace {
void mpi_check(int rc, const char* what) {
  if (rc != MPI_SUCCESS)
    throw RuntimeError(std::string(what) + " failed (MPI error " + std::to_string(rc) + ")");
}
}  // namespace

MpiSession::MpiSession() {
  int flag = 0;
  mpi_check(MPI_Initialized(&flag), "MPI_Initialized");
  if (!flag) {
    int provided = 0;
    mpi_check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    initialised_here_ = true;
  }
  mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &size_), "MPI_Comm_size");
  MPI_Comm node = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  mpi_check(MPI_Comm_rank(node, &local_rank_), "MPI_Comm_rank(node)");
  MPI_Comm_free(&node);
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (initialised_here_ && !finalized) MPI_Finalize();
}

double MpiSession::max(double v) const {
  double out = v;
  mpi_check(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce(max)");
  return out;
}

int64_t MpiSession::sum(int64_t v) const {
  long long in = v, out = 0;
  mpi_check(MPI_Allreduce(&in, &out, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce(sum)");
  return out;
}

bool MpiSession::all(bool v) const {
  int in = v ? 1 : 0, out = 0;
  mpi_check(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce(min)");
  return out != 0;
}

void MpiSession::barrier() const {
  mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

ncclComm_t nccl_comm_from_mpi() {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  ncclUniqueId id{};
  if (rank == 0) RACKEP_NCCL_CHECK(ncclGetUniqueId(&id));
  if (MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
    throw RuntimeError("MPI_Bcast of the ncclUniqueId failed");
  ncclComm_t comm = nullptr;
  RACKEP_NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
  return comm;
}

std::vector<void*> exchange_ipc_pointers(void* local) {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  cudaIpcMemHandle_t mine{};
  RACKEP_CUDA_CHECK(cudaIpcGetMemHandle(&mine, local));
  std::vector<cudaIpcMemHandle_t> all(static_cast<size_t>(size));
  if (MPI_Allgather(&mine, sizeof(mine), MPI_BYTE, all.data(), sizeof(mine), MPI_BYTE, MPI_COMM_WORLD) !=
      MPI_SUCCESS)
    throw RuntimeError("MPI_Allgather of the CUDA IPC handles failed");
  std::vector<void*> out(static_cast<size_t>(size), nullptr);
  for (int r = 0; r < size; ++r) {
    if (r == rank) {
      out[r] = local;
      continue;
    }
    RACKEP_CUDA_CHECK(cudaIpcOpenMemHandle(&out[r], all[r], cudaIpcMemLazyEnablePeerAccess));
  }
  return out;
}
#endif

}  // namespace rackep::kernels
#endif  // RACKEP_HAVE_NCCL
