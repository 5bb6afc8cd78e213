#include "kernels/ep_exchange.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/check.hpp"
#include "kernels/moe_kernels.hpp"
#include "kernels/timing.hpp"
#include "rackep/config.hpp"
#if RACKEP_HAVE_NCCL
#include "kernels/nccl_ep.hpp"
#endif

namespace rackep::kernels {

struct EpExchange::Gpu {
  int device = 0;
  int index = 0;  // GPU index in the placement (NCCL rank)
  ncclComm* comm = nullptr;
  std::unique_ptr<StreamSet> set;
  DeviceBuffer<uint16_t> send, staging, back, returned;
  DeviceBuffer<int32_t> send_o, staging_o, staging_rank, barrier;
  DeviceBuffer<int64_t> staging_row;
  DeviceBuffer<uint16_t*> push_bufs, recv_bufs, back_bufs;  // push: local recv..., send; recv: local recv
  DeviceBuffer<int32_t*> push_origin, recv_origin;
  DeviceBuffer<const uint16_t*> staging_bufs, y_bufs;  // y: local y..., returned
  DeviceBuffer<const int32_t*> staging_origin;
};

struct EpExchange::Source {
  EpRankIo io;
  int local_gpu = 0;
  int local_index = 0;  // among its GPU's ranks
  int64_t tokens = 0;
  DeviceBuffer<int32_t> entry_buf;
  DeviceBuffer<int64_t> entry_row;
};

EpExchange::EpExchange(const EpPlacement& placement, std::vector<int> devices, int first_gpu,
                       std::vector<ncclComm*> comms, std::vector<std::vector<cudaStream_t>> streams)
    : placement_(placement), first_gpu_(first_gpu) {
  placement_.validate("ep exchange");
  const int local = static_cast<int>(devices.size());
  if (local < 1 || first_gpu < 0 || first_gpu + local > placement_.num_gpus)
    throw InputError("ep exchange", "devices", "GPU block out of range of the placement");
  if (static_cast<int>(streams.size()) != local)
    throw InputError("ep exchange", "streams", "one list of rank streams per local GPU expected");
  if (placement_.num_gpus > 1) {
#if RACKEP_HAVE_NCCL
    if (static_cast<int>(comms.size()) != local)
      throw InputError("ep exchange", "comms", "one NCCL communicator per local GPU expected");
#else
    throw InputError("ep exchange", "gpus",
                     "ranks on " + std::to_string(placement_.num_gpus) +
                         " GPUs need NCCL, and rackep was built without it (RACKEP_HAVE_NCCL=0)");
#endif
  }
  int current = 0;
  RACKEP_CUDA_CHECK(cudaGetDevice(&current));
  for (int i = 0; i < local; ++i) {
    if (static_cast<int>(streams[i].size()) != placement_.ranks_per_gpu())
      throw InputError("ep exchange", "streams", "one stream per rank of the GPU expected");
    auto g = std::make_unique<Gpu>();
    g->device = devices[i];
    g->index = first_gpu + i;
    g->comm = placement_.num_gpus > 1 ? comms[i] : nullptr;
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set = std::make_unique<StreamSet>(streams[i]);
    g->barrier.resize(1);
    RACKEP_CUDA_CHECK(cudaMemset(g->barrier.get(), 0, sizeof(int32_t)));
    gpus_.push_back(std::move(g));
  }
  RACKEP_CUDA_CHECK(cudaSetDevice(current));
}

EpExchange::~EpExchange() = default;

int64_t EpExchange::remote_rows() const {
  int64_t rows = 0;
  if (layout_.gpu_send_counts.empty()) return 0;
  for (const auto& g : gpus_) rows += layout_.send_rows(g->index);
  return rows;
}

void EpExchange::prepare(const DispatchLayout& lay, int64_t hidden, const std::vector<EpRankIo>& io) {
  const int q = placement_.ranks_per_gpu();
  if (static_cast<int>(io.size()) != q * local_gpus())
    throw InputError("ep exchange", "io", "one EpRankIo per rank of this process expected");
  if (hidden <= 0 || hidden % 8 != 0)
    throw InputError("ep exchange", "hidden", "must be a positive multiple of 8");
  for (size_t i = 0; i < io.size(); ++i)
    if (io[i].rank != placement_.first_rank(first_gpu_) + static_cast<int>(i))
      throw InputError("ep exchange", "io", "ranks must be this process's ranks in order");
  layout_ = build_gpu_exchange_layout(lay, placement_);
  hidden_ = hidden;
  top_k_ = lay.top_k;
  int current = 0;
  RACKEP_CUDA_CHECK(cudaGetDevice(&current));
  sources_.clear();
  for (int li = 0; li < local_gpus(); ++li) {
    Gpu& g = *gpus_[li];
    RACKEP_CUDA_CHECK(cudaSetDevice(g.device));
    const size_t send_rows = static_cast<size_t>(std::max<int64_t>(layout_.send_rows(g.index), 1));
    const size_t staging_rows = static_cast<size_t>(std::max<int64_t>(layout_.staging_rows(g.index), 1));
    g.send.resize(send_rows * hidden);
    g.returned.resize(send_rows * hidden);
    g.send_o.resize(send_rows * 3);
    g.staging.resize(staging_rows * hidden);
    g.back.resize(staging_rows * hidden);
    g.staging_o.resize(staging_rows * 3);
    g.staging_rank.assign(layout_.staging_rank[g.index]);
    g.staging_row.assign(layout_.staging_row[g.index]);
    std::vector<uint16_t*> push, recv;
    std::vector<int32_t*> push_o, recv_o;
    std::vector<const uint16_t*> y;
    for (int j = 0; j < q; ++j) {
      const EpRankIo& r = io[static_cast<size_t>(li) * q + j];
      push.push_back(r.recv);
      recv.push_back(r.recv);
      push_o.push_back(r.origin);
      recv_o.push_back(r.origin);
      y.push_back(r.y);
    }
    push.push_back(g.send.get());
    push_o.push_back(g.send_o.get());
    y.push_back(g.returned.get());
    g.push_bufs.assign(push);
    g.push_origin.assign(push_o);
    g.recv_bufs.assign(recv);
    g.recv_origin.assign(recv_o);
    g.y_bufs.assign(y);
    g.staging_bufs.assign({g.staging.get()});
    g.staging_origin.assign({g.staging_o.get()});
    g.back_bufs.assign({g.back.get()});
    for (int j = 0; j < q; ++j) {
      auto src = std::make_unique<Source>();
      src->io = io[static_cast<size_t>(li) * q + j];
      src->local_gpu = li;
      src->local_index = j;
      src->tokens = lay.num_tokens[src->io.rank];
      src->entry_buf.assign(layout_.entry_buf[src->io.rank]);
      src->entry_row.assign(layout_.entry_row[src->io.rank]);
      sources_.push_back(std::move(src));
    }
  }
  RACKEP_CUDA_CHECK(cudaSetDevice(current));
}

void EpExchange::dispatch() {
  for (const auto& src : sources_) {
    Gpu& g = *gpus_[src->local_gpu];
    RACKEP_CUDA_CHECK(cudaSetDevice(g.device));
    ScatterArgs a{src->io.x,
                  src->tokens * top_k_,
                  top_k_,
                  hidden_,
                  src->io.rank,
                  src->entry_buf.get(),
                  src->entry_row.get(),
                  g.push_bufs.get(),
                  g.push_origin.get()};
    launch_scatter_rows(a, (*g.set)[src->local_index]);
  }
  if (placement_.num_gpus == 1) return;
#if RACKEP_HAVE_NCCL
  for (auto& g : gpus_) {
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set->join_fork(0);
  }
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (auto& g : gpus_)
    nccl_exchange_gpu_dispatch(g->comm, g->index, layout_, hidden_, g->send.get(), g->send_o.get(),
                               g->staging.get(), g->staging_o.get(), (*g->set)[0]);
  RACKEP_NCCL_CHECK(ncclGroupEnd());
  for (auto& g : gpus_) {
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    MoveRowsArgs m;
    m.src_bufs = g->staging_bufs.get();
    m.src_origin = g->staging_origin.get();
    m.dst_bufs = g->recv_bufs.get();
    m.dst_buf = g->staging_rank.get();
    m.dst_row = g->staging_row.get();
    m.dst_origin = g->recv_origin.get();
    m.count = layout_.staging_rows(g->index);
    m.hidden = hidden_;
    launch_move_rows(m, (*g->set)[0]);
    g->set->join_fork(0);
  }
#endif
}

void EpExchange::combine() {
  for (auto& g : gpus_) {
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set->join_fork(0);  // every rank's expert outputs are complete
  }
#if RACKEP_HAVE_NCCL
  if (placement_.num_gpus > 1) {
    for (auto& g : gpus_) {
      RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
      MoveRowsArgs m;  // outputs of remote rows, in staging order
      m.src_bufs = g->y_bufs.get();
      m.src_buf = g->staging_rank.get();
      m.src_row = g->staging_row.get();
      m.dst_bufs = g->back_bufs.get();
      m.count = layout_.staging_rows(g->index);
      m.hidden = hidden_;
      launch_move_rows(m, (*g->set)[0]);
    }
    RACKEP_NCCL_CHECK(ncclGroupStart());
    for (auto& g : gpus_)
      nccl_exchange_gpu_combine(g->comm, g->index, layout_, hidden_, g->back.get(), g->returned.get(),
                                (*g->set)[0]);
    RACKEP_NCCL_CHECK(ncclGroupEnd());
    for (auto& g : gpus_) {
      RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
      g->set->join_fork(0);
    }
  }
#endif
  for (const auto& src : sources_) {
    Gpu& g = *gpus_[src->local_gpu];
    RACKEP_CUDA_CHECK(cudaSetDevice(g.device));
    CombineArgs c{g.y_bufs.get(),
                  src->entry_buf.get(),
                  src->entry_row.get(),
                  src->io.probs,
                  src->io.out,
                  src->tokens,
                  top_k_,
                  hidden_};
    launch_combine(c, (*g.set)[src->local_index]);
  }
}

void EpExchange::barrier() {
  for (auto& g : gpus_) {
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set->join_fork(0);
  }
  if (placement_.num_gpus == 1) return;
#if RACKEP_HAVE_NCCL
  RACKEP_NCCL_CHECK(ncclGroupStart());
  for (auto& g : gpus_) nccl_device_barrier(g->comm, g->barrier.get(), (*g->set)[0]);
  RACKEP_NCCL_CHECK(ncclGroupEnd());
  for (auto& g : gpus_) {
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set->join_fork(0);
  }
#endif
}

}  // namespace rackep::kernels
