// run_layers() of kernels/drivers.hpp: the MoE layer pipeline over EP ranks placed in contiguous blocks on
// the GPUs (kernels/ep_layout.hpp): N emulated ranks on GPU 0, N / G ranks on each of G GPUs of this process,
// or N / K ranks in each of K MPI processes (one GPU each). NOTE: traces hold per-(rank, expert) counts, not
// tokens, so every routed (token, expert) pair becomes its own row (top_k = 1 rows, probability 1): the
// dispatch/combine/FFN volumes equal the real ones. Pairs of a source are interleaved across experts
// round-robin so reroute's per-expert ordinals are spread over the sequence. Host-side work (allocation, task
// lists, dispatch layout) is prepared before the timed phases; the layout comes from core's CPU reroute
// (every process computes the whole layout), and the GPU reroute is checked against it for every record.
// Between GPUs: dispatch/combine with NCCL (kernels/ep_exchange.hpp); weight_sync and grad_reduce kernels of
// each GPU read and write the other GPUs' slots directly, through peer access (one process) or CUDA IPC
// mappings (MPI). A device-side barrier (one-int ncclAllReduce) separates dispatch + weight_sync from the
// expert FFN, which reads replica weights written by other GPUs.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "core/allocation.hpp"
#include "core/error.hpp"
#include "core/ref_bf16.hpp"
#include "core/ref_dispatch.hpp"
#include "core/reroute.hpp"
#include "core/step_driver.hpp"
#include "kernels/check.hpp"
#include "kernels/data_plane.hpp"
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"
#include "kernels/ep_exchange.hpp"
#include "kernels/ep_layout.hpp"
#include "kernels/expert_ffn.hpp"
#include "kernels/moe_kernels.hpp"
#include "kernels/planner.hpp"
#include "kernels/reroute.hpp"
#include "kernels/timing.hpp"
#include "rackep/config.hpp"
#if RACKEP_HAVE_NCCL
#include "kernels/nccl_ep.hpp"
#endif

namespace rackep::kernels {
namespace {

#if RACKEP_HAVE_MPI
using Mpi = MpiSession;
#else
struct Mpi {};  // never constructed: cfg.mpi is refused without MPI
#endif

std::vector<int32_t> pair_sequence(const LoadMatrix& loads, int source) {
  std::vector<int32_t> left(loads.row(source), loads.row(source) + loads.num_experts());
  std::vector<int32_t> ids;
  for (bool any = true; any;) {
    any = false;
    for (int l = 0; l < loads.num_experts(); ++l)
      if (left[l] > 0) {
        ids.push_back(l);
        --left[l];
        any = true;
      }
  }
  return ids;
}

// Everything one EP rank owns on its GPU: its own allocations and its own stream.
struct Rank {
  int device = 0;
  cudaStream_t stream = nullptr;
  DeviceBuffer<uint8_t> weights;  // S slots x B_w
  DeviceBuffer<float> grads;      // S slots x B_g (backward)
  DeviceBuffer<uint32_t> flags;   // ready flags
  DeviceBuffer<uint16_t> x, recv, y;
  DeviceBuffer<int32_t> origin, topk, prefix, physical, error;
  DeviceBuffer<float> probs, out;
  DeviceBuffer<uint8_t> reroute_ws;
  std::unique_ptr<GroupedFfn> ffn;
  ~Rank() { cudaStreamDestroy(stream); }
};

// What one GPU of this process holds besides its ranks.
struct GpuState {
  int device = 0;
  int index = 0;  // GPU index in the placement
  std::unique_ptr<StreamSet> set;
  std::unique_ptr<WeightSyncEngine> ws;
  std::unique_ptr<GradReduceEngine> gr;
  DeviceBuffer<int32_t> l2p, lcnt;
};

struct GpuTimers {
  explicit GpuTimers(StreamSet& set)
      : reroute(set), ws(set), dispatch(set), ffn(set), combine(set), grad(set), total(set[0]) {}
  PhaseTimer reroute, ws, dispatch, ffn, combine, grad;
  EventTimer total;
};

#if RACKEP_HAVE_NCCL
struct Comms {
  std::vector<ncclComm_t> comms;
  ~Comms() {
    for (ncclComm_t c : comms) ncclCommDestroy(c);
  }
};
#endif

// CUDA IPC mappings of other processes' buffers (MPI); closed before the buffers' owners free them.
struct IpcMappings {
  std::vector<void*> opened;
  void close() {
    for (void* p : opened) cudaIpcCloseMemHandle(p);
    opened.clear();
  }
  ~IpcMappings() { close(); }
};

// ---- the job: everything one process holds on its GPUs for the whole slice (RAII: every device buffer,
// stream, timer, communicator and IPC mapping is released by its owner's destructor, in reverse order) ----
struct Job {
  const RunLayerConfig& cfg;
  Mpi* mpi = nullptr;
  std::vector<DeviceInfo> found;
  ClusterShape shape;
  int n = 0, s_slots = 0, l_count = 0;
  int64_t hidden = 0;
  ExpertBytes eb;
  EpPlacement place{1, 1};
  int first_gpu = 0;
  std::vector<int> devices;
  int q = 1, local_gpus = 1, first_rank = 0, local_ranks = 0;
  std::vector<ncclComm*> comm_ptrs;
#if RACKEP_HAVE_NCCL
  Comms comms;
#endif
  std::vector<std::unique_ptr<Rank>> ranks;
  IpcMappings ipc;
  WeightSyncBuffers wsb;
  GradReduceBuffers grb;
  std::vector<std::unique_ptr<GpuState>> gpus;
  std::vector<std::vector<cudaStream_t>> gpu_streams;
  std::unique_ptr<EpExchange> exchange;
  std::unique_ptr<GpuPlanner> gpu_planner;  // ultraep: the planner kernel is timed and checked
  std::unique_ptr<StepDriver> driver;       // the plan, its legality and transfers (core/step_driver.hpp)
  uint32_t epoch = 0;
  RunLayerReport rep;

  Job(const RunLayerConfig& c, Mpi* m) : cfg(c), mpi(m) {}
  ~Job() {
    ipc.close();
#if RACKEP_HAVE_MPI
    // Every mapping is closed before any owner frees its buffers. Not from an exception: the others may be
    // gone, and the command ends the job.
    if (mpi != nullptr && std::uncaught_exceptions() == 0) mpi->barrier();
#endif
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  void on_gpus(const std::function<void(GpuState&, int)>& fn) {
    for (int li = 0; li < local_gpus; ++li) {
      RACKEP_CUDA_CHECK(cudaSetDevice(gpus[li]->device));
      fn(*gpus[li], li);
    }
  }
  void sync_all() {
    on_gpus([](GpuState& g, int) { g.set->sync_all(); });
  }
  void barrier() {
#if RACKEP_HAVE_MPI
    if (mpi != nullptr) mpi->barrier();
#endif
  }
};

// What one record needs between its preparation, its timed runs and its checks.
struct RecordWork {
  LayerResult res;
  const StepRecord* step = nullptr;
  Plan gpu_plan;  // ultraep: what the planner kernel produced
  std::unique_ptr<EventTimer> plan_timer;
  std::vector<std::vector<int32_t>> phys_ref, topk;
  DispatchLayout lay;
  bool weight_sync = false;
  bool grad_reduce = false;
  std::vector<std::unique_ptr<GpuTimers>> timers;
};

// ---- prepare (once): placement, memory check, communicators, ranks and their buffers, engines, planners
// ----
void prepare_job(Job& j, const std::vector<LayerRecord>& records) {
  const RunLayerConfig& cfg = j.cfg;
  j.found = require_gpus(1);
  j.shape = cfg.shape;
  j.shape.validate("run-layer shape");
  const ClusterShape& shape = j.shape;
  j.n = shape.num_ranks;
  j.s_slots = shape.slots_per_rank();
  j.l_count = shape.num_experts();
  j.hidden = cfg.dims.hidden;
  j.eb = ExpertBytes{cfg.dims.hidden, cfg.dims.ffn, 2};
  j.eb.validate("--model");
  if (j.hidden % 8 != 0) throw InputError("--model", "hidden", "must be a multiple of 8");
  const int n = j.n;
  const ExpertBytes& eb = j.eb;

  j.place = EpPlacement{n, 1};
  int process_rank = 0;
#if RACKEP_HAVE_MPI
  if (j.mpi != nullptr) {
    j.place.num_gpus = j.mpi->size();
    j.first_gpu = j.mpi->rank();
    process_rank = j.mpi->rank();
    j.devices.push_back(j.mpi->local_rank() % static_cast<int>(j.found.size()));
  }
#endif
  if (j.devices.empty()) {
    const int available = static_cast<int>(j.found.size());
    j.place.num_gpus = cfg.gpus > 0 ? cfg.gpus : gpus_for_ranks(n, available);
    if (j.place.num_gpus > available)
      throw InputError("--gpus", std::to_string(cfg.gpus),
                       "asks for more GPUs than the " + std::to_string(available) + " found");
    for (int g = 0; g < j.place.num_gpus; ++g) j.devices.push_back(g);
  }
  j.place.validate(j.mpi != nullptr ? "mpirun -np" : "--gpus");
#if !RACKEP_HAVE_NCCL
  if (j.place.num_gpus > 1)
    throw InputError("--gpus", std::to_string(j.place.num_gpus),
                     "ranks on several GPUs need NCCL, and rackep was built without it; use --gpus 1");
#endif
  j.q = j.place.ranks_per_gpu();
  j.local_gpus = static_cast<int>(j.devices.size());
  j.first_rank = j.place.first_rank(j.first_gpu);
  j.local_ranks = j.q * j.local_gpus;
  const int q = j.q;

  // Memory estimate before allocating anything (per GPU: its q ranks).
  int64_t max_pairs = 0;
  for (const LayerRecord& r : records) {
    if (r.loads.num_ranks() != n || r.loads.num_experts() != j.l_count)
      throw InputError("--trace", "loads", "record shape differs from the cluster shape");
    for (int s = 0; s < n; ++s) {
      int64_t p = 0;
      for (int l = 0; l < j.l_count; ++l) p += r.loads.at(s, l);
      max_pairs = std::max(max_pairs, p);
    }
  }
  const int64_t row_bytes = j.hidden * 2;
  const int64_t per_rank = j.s_slots * eb.weight_bytes() + (cfg.backward ? j.s_slots * eb.grad_bytes() : 0) +
                           max_pairs * (3 * row_bytes + 4 * j.hidden + 64) +
                           max_pairs * n * (row_bytes + 3 * 4) / std::max(n, 1) * 2 +
                           max_pairs * 2 * cfg.dims.ffn * 2 * 3 / 2;
  for (int dev : j.devices) {
    RACKEP_CUDA_CHECK(cudaSetDevice(dev));
    size_t free_b = 0, total_b = 0;
    RACKEP_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (static_cast<double>(per_rank) * q > 0.9 * static_cast<double>(free_b))
      throw InputError("run-layer", "memory",
                       "about " + std::to_string(static_cast<double>(per_rank) * q / (1 << 30)) +
                           " GiB needed for " + std::to_string(q) + " ranks on GPU " + std::to_string(dev) +
                           ", " + std::to_string(free_b >> 30) +
                           " GiB free: use a smaller model, fewer ranks or more GPUs");
  }

  RunLayerReport& rep = j.rep;
  rep.num_gpus = j.place.num_gpus;
  rep.ranks_per_gpu = q;
  rep.process_rank = process_rank;
  for (int dev : j.devices) rep.devices.push_back(j.found[dev].name);
  const std::string& gpu0 = j.found[j.devices[0]].name;
  if (j.place.num_gpus == 1) {
    rep.mode = std::to_string(n) + " emulated ranks on 1 GPU (" + gpu0 + ")";
  } else if (j.mpi != nullptr) {
    rep.mode = std::to_string(n) + " EP ranks on " + std::to_string(j.place.num_gpus) +
               " GPUs, one MPI process per GPU, " + std::to_string(q) +
               " ranks per GPU (NCCL dispatch/combine, CUDA IPC weight_sync; process 0 on " + gpu0 + ")";
  } else {
    rep.mode = std::to_string(n) + " EP ranks on " + std::to_string(j.place.num_gpus) +
               " GPUs in one process, " + std::to_string(q) +
               " ranks per GPU (NCCL dispatch/combine, peer-access weight_sync; " + gpu0 + ")";
  }

  // ---- communicators and peer access ----
#if RACKEP_HAVE_NCCL
  if (j.place.num_gpus > 1) {
    if (j.mpi != nullptr) {
#if RACKEP_HAVE_MPI
      RACKEP_CUDA_CHECK(cudaSetDevice(j.devices[0]));
      j.comms.comms.push_back(nccl_comm_from_mpi());
#endif
    } else {
      if (!enable_peer_access(j.devices))
        throw InputError("--gpus", std::to_string(j.place.num_gpus),
                         "weight_sync and grad_reduce between GPUs need peer access between every pair of "
                         "GPUs, and some pair has none; use --gpus 1 or GPUs connected by NVLink/PCIe P2P");
      j.comms.comms = nccl_comms_for_devices(j.devices);
    }
    for (ncclComm_t c : j.comms.comms) j.comm_ptrs.push_back(c);
  }
#endif

  // ---- ranks of this process ----
  std::vector<uint8_t> expert_host(static_cast<size_t>(eb.weight_bytes()));
  for (size_t i = 0; i < expert_host.size() / 2; ++i) {
    const float v = static_cast<float>(static_cast<int>((i * 2654435761u) % 2001u) - 1000) / 1000.0f /
                    std::sqrt(static_cast<float>(j.hidden));
    const uint16_t b = float_to_bf16(v);
    std::memcpy(&expert_host[2 * i], &b, 2);
  }
  const int flags_per_rank = static_cast<int>(
      std::max<int64_t>(shape.num_redundant * 2 * std::max(eb.max_chunks_per_shard(), 1), 1));
  for (int i = 0; i < j.local_ranks; ++i) {
    auto rk = std::make_unique<Rank>();
    rk->device = j.devices[i / q];
    RACKEP_CUDA_CHECK(cudaSetDevice(rk->device));
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&rk->stream, cudaStreamNonBlocking));
    rk->weights.resize(static_cast<size_t>(j.s_slots * eb.weight_bytes()));
    for (int slot = 0; slot < shape.num_masters; ++slot)
      RACKEP_CUDA_CHECK(cudaMemcpy(rk->weights.get() + slot * eb.weight_bytes(), expert_host.data(),
                                   expert_host.size(), cudaMemcpyHostToDevice));
    rk->flags.resize(static_cast<size_t>(flags_per_rank));
    RACKEP_CUDA_CHECK(cudaMemset(rk->flags.get(), 0, rk->flags.bytes()));
    if (cfg.backward) rk->grads.resize(static_cast<size_t>(j.s_slots * eb.grad_bytes() / 4));
    rk->ffn = std::make_unique<GroupedFfn>(cfg.dims);
    rk->error.resize(1);
    j.ranks.push_back(std::move(rk));
  }

  // Slot and flag addresses of every rank of the job, as this process sees them.
  std::vector<uint8_t*> rank_weights(static_cast<size_t>(n), nullptr);
  std::vector<uint32_t*> rank_flags(static_cast<size_t>(n), nullptr);
  std::vector<float*> rank_grads(static_cast<size_t>(n), nullptr);
  for (int i = 0; i < j.local_ranks; ++i) {
    rank_weights[j.first_rank + i] = j.ranks[i]->weights.get();
    rank_flags[j.first_rank + i] = j.ranks[i]->flags.get();
    rank_grads[j.first_rank + i] = cfg.backward ? j.ranks[i]->grads.get() : nullptr;
  }
#if RACKEP_HAVE_MPI
  if (j.mpi != nullptr && j.place.num_gpus > 1) {
    RACKEP_CUDA_CHECK(cudaSetDevice(j.devices[0]));
    auto gather = [&](void* local, int i, auto& out) {
      const std::vector<void*> all = exchange_ipc_pointers(local);
      for (int p = 0; p < j.place.num_gpus; ++p) {
        using T = typename std::remove_reference_t<decltype(out)>::value_type;
        out[static_cast<size_t>(j.place.first_rank(p) + i)] = static_cast<T>(all[p]);
        if (p != j.first_gpu) j.ipc.opened.push_back(all[p]);
      }
    };
    for (int i = 0; i < q; ++i) {
      gather(j.ranks[i]->weights.get(), i, rank_weights);
      gather(j.ranks[i]->flags.get(), i, rank_flags);
      if (cfg.backward) gather(j.ranks[i]->grads.get(), i, rank_grads);
    }
  }
#endif
  for (int r = 0; r < n; ++r) {
    for (int slot = 0; slot < j.s_slots; ++slot) {
      j.wsb.slot_weights.push_back(rank_weights[r] + slot * eb.weight_bytes());
      j.grb.slot_grads.push_back(cfg.backward ? rank_grads[r] + slot * eb.grad_bytes() / 4 : nullptr);
    }
    j.wsb.rank_flags.push_back(rank_flags[r]);
  }

  j.gpu_streams.assign(static_cast<size_t>(j.local_gpus), {});
  for (int i = 0; i < j.local_ranks; ++i) j.gpu_streams[i / q].push_back(j.ranks[i]->stream);
  for (int li = 0; li < j.local_gpus; ++li) {
    auto g = std::make_unique<GpuState>();
    g->device = j.devices[li];
    g->index = j.first_gpu + li;
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set = std::make_unique<StreamSet>(j.gpu_streams[li]);
    g->ws = std::make_unique<WeightSyncEngine>(j.found[g->device].num_sms);
    g->gr = std::make_unique<GradReduceEngine>();
    j.gpus.push_back(std::move(g));
  }
  j.exchange = std::make_unique<EpExchange>(j.place, j.devices, j.first_gpu, j.comm_ptrs, j.gpu_streams);

  RACKEP_CUDA_CHECK(cudaSetDevice(j.devices[0]));
  if (cfg.balancer == "ultraep") j.gpu_planner = std::make_unique<GpuPlanner>(shape, cfg.options.ultraep);
  StepDriverConfig dc;
  dc.shape = shape;
  dc.balancer = cfg.balancer;
  dc.options = cfg.options;
  dc.expert = eb;
  dc.weight_sync = cfg.weight_sync;
  dc.training = cfg.backward;
  dc.microbatches_per_step = 1;  // every record of the slice is a step of its own
  dc.check_legality = cfg.check_plans;
  j.driver = std::make_unique<StepDriver>(dc);
}

// ---- prepare (per record, untimed): the step (plan, allocation, transfers) from the StepDriver, the GPU
// planner's plan for ultraep, reroute references, dispatch layout, uploads, copy and pull task lists. Every
// process computes the same step: the planners are deterministic. ----
RecordWork prepare_record(Job& j, const LayerRecord& rec) {
  const ClusterShape& shape = j.shape;
  const int n = j.n;
  RecordWork w;
  w.res.layer = rec.layer;
  w.res.microbatch = rec.microbatch;
  w.res.imbalance_before = imbalance(rec.loads.rank_loads(shape));
  w.step = &j.driver->step(rec.loads, rec.layer, rec.microbatch);
  const Plan& plan = w.step->result.plan;
  const Allocation& alloc = w.step->result.alloc;
  const LoadMatrix& routed = w.step->result.routed;

  RACKEP_CUDA_CHECK(cudaSetDevice(j.devices[0]));
  if (j.gpu_planner) {
    w.plan_timer = std::make_unique<EventTimer>(j.ranks[0]->stream);
    const std::vector<int64_t> wl = rec.loads.expert_totals();
    w.gpu_plan = j.gpu_planner->plan(wl, j.ranks[0]->stream);  // upload W, plan, download (untimed)
    w.plan_timer->start();                                     // the kernel alone, on the W on the device
    j.gpu_planner->launch(j.gpu_planner->device_args().w, j.ranks[0]->stream);
    w.plan_timer->stop();
  }
  w.res.imbalance_after = w.step->metrics.imbalance_after;
  w.res.replicas = w.step->metrics.total_replicas;
  w.phys_ref.resize(n);
  w.topk.resize(n);
  for (int s = 0; s < n; ++s) {
    w.topk[s] = pair_sequence(routed, s);
    w.res.routed_pairs += static_cast<int64_t>(w.topk[s].size());
    w.phys_ref[s] = reroute_tokens(plan, alloc, s, w.topk[s], 1, j.cfg.options.ultraep.interleave);
  }
  w.lay = build_dispatch_layout(shape, w.phys_ref, 1);
  j.on_gpus([&](GpuState& g, int) {
    g.l2p.assign(plan.l2p);
    g.lcnt.assign(plan.lcnt);
  });
  std::vector<int32_t> prefix(static_cast<size_t>(j.l_count) * n, 0);
  std::vector<EpRankIo> io;
  for (int i = 0; i < j.local_ranks; ++i) {
    const int s = j.first_rank + i;
    Rank& rk = *j.ranks[i];
    RACKEP_CUDA_CHECK(cudaSetDevice(rk.device));
    for (int l = 0; l < j.l_count; ++l)
      rank_quota_prefix(alloc, s, l, plan.lcnt[l], &prefix[static_cast<size_t>(l) * n]);
    const int64_t pairs = static_cast<int64_t>(w.topk[s].size());
    rk.topk.assign(w.topk[s]);
    rk.prefix.assign(prefix);
    rk.physical.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1)));
    rk.x.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1) * j.hidden));
    rk.recv.resize(static_cast<size_t>(std::max<int64_t>(w.lay.rows(s), 1) * j.hidden));
    rk.y.resize(rk.recv.size());
    rk.origin.resize(static_cast<size_t>(std::max<int64_t>(w.lay.rows(s), 1) * 3));
    rk.out.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1) * j.hidden));
    rk.probs.assign(std::vector<float>(static_cast<size_t>(pairs), 1.0f));
    launch_fill_payload(rk.x.get(), s, pairs, j.hidden, rk.stream);
    rk.reroute_ws.resize(workspace_bytes(RerouteArgs{pairs, 1, j.l_count, n}));
    io.push_back({s, rk.x.get(), rk.recv.get(), rk.origin.get(), rk.y.get(), rk.probs.get(), rk.out.get()});
  }
  j.exchange->prepare(w.lay, j.hidden, io);
  // weight_sync of the step: fixed-master refills (ultraep, ultraep-legacy) and the resident-set diffs of
  // eplb and lplb alike.
  if (w.step->weight_sync) {
    const WeightSyncTaskList tasks = build_weight_sync_tasks(*w.step->weight_sync);
    int64_t written = 0;
    j.on_gpus([&](GpuState& g, int) {
      g.ws->prepare_ranks(tasks, j.wsb, j.place.first_rank(g.index), j.q, (*g.set)[0]);
      written += g.ws->bytes_written();
    });
#if RACKEP_HAVE_MPI
    if (j.mpi != nullptr) written = j.mpi->sum(written);
#endif
    w.res.weight_bytes_copied = written;
    w.weight_sync = true;
  }
  if (j.cfg.backward && w.step->grad_reduce) {
    j.on_gpus([&](GpuState& g, int) {
      g.gr->prepare_ranks(*w.step->grad_reduce, j.grb, j.place.first_rank(g.index), j.q, (*g.set)[0]);
    });
    w.grad_reduce = true;
  }
  j.sync_all();
  j.barrier();  // every process's buffers and task lists are in place
  return w;
}

// ---- run (timed): CUDA events on every rank's stream of every GPU, `runs` times ----
void run_record(Job& j, RecordWork& w, int runs) {
  const int q = j.q;
  const bool has_quota = w.step->result.plan.has_quota;
  j.on_gpus([&](GpuState& g, int) { w.timers.push_back(std::make_unique<GpuTimers>(*g.set)); });
  for (int run = 0; run < runs; ++run) {
    ++j.epoch;  // the same epoch on every GPU and process
    j.on_gpus([&](GpuState& g, int li) {
      GpuTimers& t = *w.timers[li];
      t.total.start();
      g.set->join_fork(0);
      t.reroute.start();
      for (int k = 0; k < q; ++k) {
        const int s = j.place.first_rank(g.index) + k;
        Rank& rk = *j.ranks[li * q + k];
        RACKEP_CUDA_CHECK(cudaMemsetAsync(rk.error.get(), 0, sizeof(int32_t), rk.stream));
        RerouteArgs ra{static_cast<int64_t>(w.topk[s].size()),
                       1,
                       j.l_count,
                       j.n,
                       has_quota,
                       j.cfg.options.ultraep.interleave,
                       rk.topk.get(),
                       rk.prefix.get(),
                       g.l2p.get(),
                       g.lcnt.get(),
                       rk.physical.get(),
                       rk.error.get()};
        launch_reroute(ra, rk.reroute_ws.get(), rk.stream);
      }
      t.reroute.stop();
      t.ws.start_on(0);
      if (w.weight_sync) g.ws->run(j.epoch, (*g.set)[0]);
      t.ws.stop_on(0);
      t.dispatch.start();
    });
    j.exchange->dispatch();
    j.on_gpus([&](GpuState&, int li) { w.timers[li]->dispatch.stop(); });
    j.exchange->barrier();  // every rank's rows and every GPU's weight_sync writes are in place
    j.on_gpus([&](GpuState& g, int li) {
      GpuTimers& t = *w.timers[li];
      t.ffn.start();
      for (int k = 0; k < q; ++k) {
        const int d = j.place.first_rank(g.index) + k;
        Rank& rk = *j.ranks[li * q + k];
        std::vector<const uint16_t*> fc1(j.s_slots), fc2(j.s_slots);
        for (int slot = 0; slot < j.s_slots; ++slot) {
          const uint8_t* base = rk.weights.get() + slot * j.eb.weight_bytes();
          fc1[slot] = reinterpret_cast<const uint16_t*>(base);
          fc2[slot] = reinterpret_cast<const uint16_t*>(base + j.eb.shard_offset_bytes(1));
        }
        rk.ffn->run(rk.recv.get(), w.lay.slot_offsets[d], fc1, fc2, rk.y.get(), rk.stream);
      }
      t.ffn.stop();
      g.set->join_fork(0);
      t.combine.start();
    });
    j.exchange->combine();
    j.on_gpus([&](GpuState&, int li) { w.timers[li]->combine.stop(); });
    if (j.cfg.backward) {
      j.exchange->barrier();
      j.on_gpus([&](GpuState& g, int li) {
        w.timers[li]->grad.start_on(0);
        if (w.grad_reduce) g.gr->run(42, (*g.set)[0]);
        w.timers[li]->grad.stop_on(0);
      });
    }
    j.on_gpus([&](GpuState& g, int li) {
      g.set->join_fork(0);
      w.timers[li]->total.stop();
    });
    j.sync_all();
    // The next run's weight_sync writes other processes' slots: every process's FFN must be done.
    j.barrier();
  }
  PhaseTimes& pt = w.res.times;
  pt.plan_ms = w.plan_timer ? w.plan_timer->ms() : 0.0;
  for (const auto& t : w.timers) {
    pt.reroute_ms = std::max(pt.reroute_ms, t->reroute.max_ms());
    pt.weight_sync_ms = std::max(pt.weight_sync_ms, w.weight_sync ? t->ws.max_ms() : 0.0);
    pt.dispatch_ms = std::max(pt.dispatch_ms, t->dispatch.max_ms());
    pt.expert_ffn_ms = std::max(pt.expert_ffn_ms, t->ffn.max_ms());
    pt.combine_ms = std::max(pt.combine_ms, t->combine.max_ms());
    pt.grad_reduce_ms = std::max(pt.grad_reduce_ms, j.cfg.backward ? t->grad.max_ms() : 0.0);
    pt.total_ms = std::max(pt.total_ms, t->total.ms());
  }
  int64_t remote_rows = j.exchange->remote_rows();
#if RACKEP_HAVE_MPI
  if (j.mpi != nullptr) {
    for (double* v : {&pt.plan_ms, &pt.reroute_ms, &pt.weight_sync_ms, &pt.dispatch_ms, &pt.expert_ffn_ms,
                      &pt.combine_ms, &pt.grad_reduce_ms, &pt.total_ms})
      *v = j.mpi->max(*v);
    remote_rows = j.mpi->sum(remote_rows);
  }
#endif
  j.rep.remote_rows = remote_rows;
}

// ---- verify: reroute on every record; the GPU plan, dispatched rows and replica weights on the first.
// A mismatch is a VerificationError (exit code 3). ----
void verify_record(Job& j, const RecordWork& w, bool check) {
  const Plan& plan = w.step->result.plan;
  for (int i = 0; i < j.local_ranks; ++i) {
    const int s = j.first_rank + i;
    const std::vector<int32_t> got = j.ranks[i]->physical.download(w.topk[s].size());
    if (got != w.phys_ref[s])
      throw VerificationError("run-layer reroute",
                              "GPU reroute of rank " + std::to_string(s) + " differs from core");
  }
  if (!check) return;
  if (j.gpu_planner) {
    const Plan& g = w.gpu_plan;
    if (g.p2l != plan.p2l || g.l2p != plan.l2p || g.lcnt != plan.lcnt || g.quota != plan.quota)
      throw VerificationError("run-layer planner", "GPU plan differs from core's UltraEpPlanner");
  }
  for (int i = 0; i < j.local_ranks; ++i) {
    const int d = j.first_rank + i;
    const std::vector<int32_t> origin = j.ranks[i]->origin.download(static_cast<size_t>(w.lay.rows(d) * 3));
    const std::vector<uint16_t> recv =
        j.ranks[i]->recv.download(static_cast<size_t>(w.lay.rows(d) * j.hidden));
    for (int64_t row = 0; row < w.lay.rows(d); ++row) {
      const int32_t src = origin[row * 3];
      const int32_t tok = origin[row * 3 + 1];
      bool ok = src == w.lay.row_source[d][row] && tok == w.lay.row_token[d][row];
      for (int64_t h = 0; ok && h < std::min<int64_t>(j.hidden, 64); ++h)
        ok = recv[row * j.hidden + h] == origin_payload(src, tok, h);
      if (!ok)
        throw VerificationError("run-layer dispatch", "rank " + std::to_string(d) + " row " +
                                                          std::to_string(row) + " is misrouted");
    }
  }
  if (w.weight_sync) {
    // Every expert's weights are the same pattern, so a filled replica slot equals its expert's instance 0.
    int checked_experts = 0;
    for (int l = 0; l < j.l_count && checked_experts < 8; ++l) {
      if (plan.lcnt[l] < 2) continue;
      ++checked_experts;
      const std::vector<uint8_t> a =
          download_bytes(j.wsb.slot_weights[plan.physical(l, 0)], j.eb.weight_bytes());
      const std::vector<uint8_t> b =
          download_bytes(j.wsb.slot_weights[plan.physical(l, 1)], j.eb.weight_bytes());
      if (a != b)
        throw VerificationError("run-layer weight_sync",
                                "replica of expert " + std::to_string(l) + " differs");
    }
  }
}

RunLayerReport run_layers_impl(const RunLayerConfig& cfg, const std::vector<LayerRecord>& records,
                               const std::function<void(const LayerResult&)>& on_layer, Mpi* mpi) {
  Job job(cfg, mpi);
  prepare_job(job, records);
  for (size_t i = 0; i < records.size(); ++i) {
    const bool check = cfg.check && i == 0;
    RecordWork w = prepare_record(job, records[i]);
    run_record(job, w, i == 0 ? 1 + std::max(cfg.warmup, 0) : 1);
    verify_record(job, w, check);
    job.rep.layers.push_back(w.res);
    if (on_layer) on_layer(w.res);
  }
  job.rep.checked = cfg.check;
  return std::move(job.rep);
}

}  // namespace

RunLayerReport run_layers(const RunLayerConfig& cfg, const std::vector<LayerRecord>& records,
                          const std::function<void(const LayerResult&)>& on_layer) {
  if (!cfg.mpi) return run_layers_impl(cfg, records, on_layer, nullptr);
#if RACKEP_HAVE_MPI
  MpiSession mpi;
  return run_layers_impl(cfg, records, on_layer, &mpi);
#else
  throw InputError(
      "run-layer", "mpi",
      "one process per GPU needs MPI, and rackep was built without it (RACKEP_HAVE_MPI=0: install "
      "libopenmpi-dev and reconfigure)");
#endif
}

}  // namespace rackep::kernels
