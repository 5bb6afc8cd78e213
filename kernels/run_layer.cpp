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

#include "core/allocation.hpp"
#include "core/error.hpp"
#include "core/ref_bf16.hpp"
#include "core/ref_dispatch.hpp"
#include "core/reroute.hpp"
#include "core/ultraep.hpp"
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

RunLayerReport run_layers_impl(const RunLayerConfig& cfg, const std::vector<LayerRecord>& records,
                               const std::function<void(const LayerResult&)>& on_layer, Mpi* mpi) {
  const std::vector<DeviceInfo> found = require_gpus(1);
  const ClusterShape& shape = cfg.shape;
  shape.validate("run-layer shape");
  const int n = shape.num_ranks;
  const int s_slots = shape.slots_per_rank();
  const int l_count = shape.num_experts();
  const int64_t hidden = cfg.dims.hidden;
  const ExpertBytes eb{cfg.dims.hidden, cfg.dims.ffn, 2};
  eb.validate("--model");
  if (hidden % 8 != 0) throw InputError("--model", "hidden", "must be a multiple of 8");

  // ---- placement: which GPUs this process drives, and which ranks ----
  EpPlacement place{n, 1};
  int first_gpu = 0;
  std::vector<int> devices;
  int process_rank = 0;
#if RACKEP_HAVE_MPI
  if (mpi != nullptr) {
    place.num_gpus = mpi->size();
    first_gpu = mpi->rank();
    process_rank = mpi->rank();
    devices.push_back(mpi->local_rank() % static_cast<int>(found.size()));
  }
#else
  (void)mpi;
#endif
  if (devices.empty()) {
    const int available = static_cast<int>(found.size());
    place.num_gpus = cfg.gpus > 0 ? cfg.gpus : gpus_for_ranks(n, available);
    if (place.num_gpus > available)
      throw InputError("--gpus", std::to_string(cfg.gpus),
                       "asks for more GPUs than the " + std::to_string(available) + " found");
    for (int g = 0; g < place.num_gpus; ++g) devices.push_back(g);
  }
  place.validate(mpi != nullptr ? "mpirun -np" : "--gpus");
#if !RACKEP_HAVE_NCCL
  if (place.num_gpus > 1)
    throw InputError("--gpus", std::to_string(place.num_gpus),
                     "ranks on several GPUs need NCCL, and rackep was built without it; use --gpus 1");
#endif
  const int q = place.ranks_per_gpu();
  const int local_gpus = static_cast<int>(devices.size());
  const int first_rank = place.first_rank(first_gpu);
  const int local_ranks = q * local_gpus;

  // Memory estimate before allocating anything (per GPU: its q ranks).
  int64_t max_pairs = 0;
  for (const LayerRecord& r : records) {
    if (r.loads.num_ranks() != n || r.loads.num_experts() != l_count)
      throw InputError("--trace", "loads", "record shape differs from the cluster shape");
    for (int s = 0; s < n; ++s) {
      int64_t p = 0;
      for (int l = 0; l < l_count; ++l) p += r.loads.at(s, l);
      max_pairs = std::max(max_pairs, p);
    }
  }
  const int64_t row_bytes = hidden * 2;
  const int64_t per_rank = s_slots * eb.weight_bytes() + (cfg.backward ? s_slots * eb.grad_bytes() : 0) +
                           max_pairs * (3 * row_bytes + 4 * hidden + 64) +
                           max_pairs * n * (row_bytes + 3 * 4) / std::max(n, 1) * 2 +
                           max_pairs * 2 * cfg.dims.ffn * 2 * 3 / 2;
  for (int dev : devices) {
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

  RunLayerReport rep;
  rep.num_gpus = place.num_gpus;
  rep.ranks_per_gpu = q;
  rep.process_rank = process_rank;
  for (int dev : devices) rep.devices.push_back(found[dev].name);
  if (place.num_gpus == 1) {
    rep.mode = std::to_string(n) + " emulated ranks on 1 GPU (" + found[devices[0]].name + ")";
  } else if (mpi != nullptr) {
    rep.mode = std::to_string(n) + " EP ranks on " + std::to_string(place.num_gpus) +
               " GPUs, one MPI process per GPU, " + std::to_string(q) +
               " ranks per GPU (NCCL dispatch/combine, CUDA IPC weight_sync; process 0 on " +
               found[devices[0]].name + ")";
  } else {
    rep.mode = std::to_string(n) + " EP ranks on " + std::to_string(place.num_gpus) +
               " GPUs in one process, " + std::to_string(q) +
               " ranks per GPU (NCCL dispatch/combine, peer-access weight_sync; " + found[devices[0]].name +
               ")";
  }

  // ---- communicators and peer access ----
  std::vector<ncclComm*> comm_ptrs;
#if RACKEP_HAVE_NCCL
  Comms comms;
  if (place.num_gpus > 1) {
    if (mpi != nullptr) {
#if RACKEP_HAVE_MPI
      RACKEP_CUDA_CHECK(cudaSetDevice(devices[0]));
      comms.comms.push_back(nccl_comm_from_mpi());
#endif
    } else {
      if (!enable_peer_access(devices))
        throw InputError("--gpus", std::to_string(place.num_gpus),
                         "weight_sync and grad_reduce between GPUs need peer access between every pair of "
                         "GPUs, and some pair has none; use --gpus 1 or GPUs connected by NVLink/PCIe P2P");
      comms.comms = nccl_comms_for_devices(devices);
    }
    for (ncclComm_t c : comms.comms) comm_ptrs.push_back(c);
  }
#endif

  // ---- ranks of this process ----
  std::vector<std::unique_ptr<Rank>> ranks;
  std::vector<uint8_t> expert_host(static_cast<size_t>(eb.weight_bytes()));
  for (size_t i = 0; i < expert_host.size() / 2; ++i) {
    const float v = static_cast<float>(static_cast<int>((i * 2654435761u) % 2001u) - 1000) / 1000.0f /
                    std::sqrt(static_cast<float>(hidden));
    const uint16_t b = float_to_bf16(v);
    std::memcpy(&expert_host[2 * i], &b, 2);
  }
  const int flags_per_rank = static_cast<int>(
      std::max<int64_t>(shape.num_redundant * 2 * std::max(eb.max_chunks_per_shard(), 1), 1));
  for (int i = 0; i < local_ranks; ++i) {
    auto rk = std::make_unique<Rank>();
    rk->device = devices[i / q];
    RACKEP_CUDA_CHECK(cudaSetDevice(rk->device));
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&rk->stream, cudaStreamNonBlocking));
    rk->weights.resize(static_cast<size_t>(s_slots * eb.weight_bytes()));
    for (int slot = 0; slot < shape.num_masters; ++slot)
      RACKEP_CUDA_CHECK(cudaMemcpy(rk->weights.get() + slot * eb.weight_bytes(), expert_host.data(),
                                   expert_host.size(), cudaMemcpyHostToDevice));
    rk->flags.resize(static_cast<size_t>(flags_per_rank));
    RACKEP_CUDA_CHECK(cudaMemset(rk->flags.get(), 0, rk->flags.bytes()));
    if (cfg.backward) rk->grads.resize(static_cast<size_t>(s_slots * eb.grad_bytes() / 4));
    rk->ffn = std::make_unique<GroupedFfn>(cfg.dims);
    rk->error.resize(1);
    ranks.push_back(std::move(rk));
  }

  // Slot and flag addresses of every rank of the job, as this process sees them.
  std::vector<uint8_t*> rank_weights(static_cast<size_t>(n), nullptr);
  std::vector<uint32_t*> rank_flags(static_cast<size_t>(n), nullptr);
  std::vector<float*> rank_grads(static_cast<size_t>(n), nullptr);
  for (int i = 0; i < local_ranks; ++i) {
    rank_weights[first_rank + i] = ranks[i]->weights.get();
    rank_flags[first_rank + i] = ranks[i]->flags.get();
    rank_grads[first_rank + i] = cfg.backward ? ranks[i]->grads.get() : nullptr;
  }
  IpcMappings ipc;
#if RACKEP_HAVE_MPI
  if (mpi != nullptr && place.num_gpus > 1) {
    RACKEP_CUDA_CHECK(cudaSetDevice(devices[0]));
    auto gather = [&](void* local, int i, auto& out) {
      const std::vector<void*> all = exchange_ipc_pointers(local);
      for (int p = 0; p < place.num_gpus; ++p) {
        using T = typename std::remove_reference_t<decltype(out)>::value_type;
        out[static_cast<size_t>(place.first_rank(p) + i)] = static_cast<T>(all[p]);
        if (p != first_gpu) ipc.opened.push_back(all[p]);
      }
    };
    for (int i = 0; i < q; ++i) {
      gather(ranks[i]->weights.get(), i, rank_weights);
      gather(ranks[i]->flags.get(), i, rank_flags);
      if (cfg.backward) gather(ranks[i]->grads.get(), i, rank_grads);
    }
  }
#endif
  WeightSyncBuffers wsb;
  GradReduceBuffers grb;
  for (int r = 0; r < n; ++r) {
    for (int slot = 0; slot < s_slots; ++slot) {
      wsb.slot_weights.push_back(rank_weights[r] + slot * eb.weight_bytes());
      grb.slot_grads.push_back(cfg.backward ? rank_grads[r] + slot * eb.grad_bytes() / 4 : nullptr);
    }
    wsb.rank_flags.push_back(rank_flags[r]);
  }

  std::vector<std::unique_ptr<GpuState>> gpus;
  std::vector<std::vector<cudaStream_t>> gpu_streams(static_cast<size_t>(local_gpus));
  for (int i = 0; i < local_ranks; ++i) gpu_streams[i / q].push_back(ranks[i]->stream);
  for (int li = 0; li < local_gpus; ++li) {
    auto g = std::make_unique<GpuState>();
    g->device = devices[li];
    g->index = first_gpu + li;
    RACKEP_CUDA_CHECK(cudaSetDevice(g->device));
    g->set = std::make_unique<StreamSet>(gpu_streams[li]);
    g->ws = std::make_unique<WeightSyncEngine>(found[g->device].num_sms);
    g->gr = std::make_unique<GradReduceEngine>();
    gpus.push_back(std::move(g));
  }
  auto on_gpus = [&](const std::function<void(GpuState&, int)>& fn) {
    for (int li = 0; li < local_gpus; ++li) {
      RACKEP_CUDA_CHECK(cudaSetDevice(gpus[li]->device));
      fn(*gpus[li], li);
    }
  };
  auto sync_all = [&] { on_gpus([](GpuState& g, int) { g.set->sync_all(); }); };
  EpExchange exchange(place, devices, first_gpu, comm_ptrs, gpu_streams);

  RACKEP_CUDA_CHECK(cudaSetDevice(devices[0]));
  std::unique_ptr<GpuPlanner> gpu_planner;
  std::unique_ptr<Balancer> balancer;
  if (cfg.balancer == "ultraep")
    gpu_planner = std::make_unique<GpuPlanner>(shape, cfg.options.ultraep);
  else
    balancer = make_balancer(cfg.balancer, shape, cfg.options);
  uint32_t epoch = 0;

  bool all_checked = cfg.check;
  for (size_t rec_i = 0; rec_i < records.size(); ++rec_i) {
    const LayerRecord& rec = records[rec_i];
    const bool check = cfg.check && rec_i == 0;
    const int runs = rec_i == 0 ? 1 + std::max(cfg.warmup, 0) : 1;
    LayerResult res;
    res.layer = rec.layer;
    res.microbatch = rec.microbatch;
    res.imbalance_before = imbalance(rec.loads.rank_loads(shape));
    const std::vector<int64_t> w = rec.loads.expert_totals();

    // ---- plan (GPU for ultraep, on this process's first GPU; host balancer otherwise) and host-side
    // preparation (untimed). Every process computes the same plan: both planners are deterministic. ----
    Plan plan;
    Allocation alloc;
    RACKEP_CUDA_CHECK(cudaSetDevice(devices[0]));
    EventTimer plan_timer(ranks[0]->stream);
    if (gpu_planner) {
      plan = gpu_planner->plan(w, ranks[0]->stream);  // upload W, plan, download (untimed)
      plan_timer.start();                             // the kernel alone, on the W already on the device
      gpu_planner->launch(gpu_planner->device_args().w, ranks[0]->stream);
      plan_timer.stop();
      if (check) {
        const Plan ref = ultraep_plan(shape, w, cfg.options.ultraep);
        if (ref.p2l != plan.p2l || ref.l2p != plan.l2p || ref.lcnt != plan.lcnt || ref.quota != plan.quota)
          throw InputError("run-layer check", "planner", "GPU plan differs from core's UltraEpPlanner");
      }
      alloc = allocate_by_quota(plan, rec.loads, cfg.options.ultraep.locality_aware);
    } else {
      PlanResult pr = balancer->plan(rec.loads, {rec.layer, rec.microbatch});
      plan = std::move(pr.plan);
      alloc = std::move(pr.alloc);
    }
    res.imbalance_after = imbalance(rank_loads_after(plan, alloc));
    res.replicas = plan.total_replicas();
    std::vector<std::vector<int32_t>> phys_ref(n), topk(n);
    for (int s = 0; s < n; ++s) {
      topk[s] = pair_sequence(rec.loads, s);
      res.routed_pairs += static_cast<int64_t>(topk[s].size());
      phys_ref[s] = reroute_tokens(plan, alloc, s, topk[s], 1, cfg.options.ultraep.interleave);
    }
    const DispatchLayout lay = build_dispatch_layout(shape, phys_ref, 1);
    on_gpus([&](GpuState& g, int) {
      g.l2p.assign(plan.l2p);
      g.lcnt.assign(plan.lcnt);
    });
    std::vector<int32_t> prefix(static_cast<size_t>(l_count) * n, 0);
    std::vector<EpRankIo> io;
    for (int i = 0; i < local_ranks; ++i) {
      const int s = first_rank + i;
      Rank& rk = *ranks[i];
      RACKEP_CUDA_CHECK(cudaSetDevice(rk.device));
      for (int l = 0; l < l_count; ++l)
        rank_quota_prefix(alloc, s, l, plan.lcnt[l], &prefix[static_cast<size_t>(l) * n]);
      const int64_t pairs = static_cast<int64_t>(topk[s].size());
      rk.topk.assign(topk[s]);
      rk.prefix.assign(prefix);
      rk.physical.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1)));
      rk.x.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1) * hidden));
      rk.recv.resize(static_cast<size_t>(std::max<int64_t>(lay.rows(s), 1) * hidden));
      rk.y.resize(rk.recv.size());
      rk.origin.resize(static_cast<size_t>(std::max<int64_t>(lay.rows(s), 1) * 3));
      rk.out.resize(static_cast<size_t>(std::max<int64_t>(pairs, 1) * hidden));
      rk.probs.assign(std::vector<float>(static_cast<size_t>(pairs), 1.0f));
      launch_fill_payload(rk.x.get(), s, pairs, hidden, rk.stream);
      rk.reroute_ws.resize(workspace_bytes(RerouteArgs{pairs, 1, l_count, n}));
      io.push_back({s, rk.x.get(), rk.recv.get(), rk.origin.get(), rk.y.get(), rk.probs.get(), rk.out.get()});
    }
    exchange.prepare(lay, hidden, io);
    const bool fixed = plan.masters_fixed;
    if (fixed) {
      const TransferPlan tp = plan_weight_sync(plan, eb, cfg.weight_sync);
      const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
      int64_t written = 0;
      on_gpus([&](GpuState& g, int) {
        g.ws->prepare_ranks(tasks, wsb, place.first_rank(g.index), q, (*g.set)[0]);
        written += g.ws->bytes_written();
      });
#if RACKEP_HAVE_MPI
      if (mpi != nullptr) written = mpi->sum(written);
#endif
      res.weight_bytes_copied = written;
    }
    if (cfg.backward) {
      const GradReducePlan grp = plan_grad_reduce(plan, eb);
      on_gpus([&](GpuState& g, int) {
        g.gr->prepare_ranks(grp, grb, place.first_rank(g.index), q, (*g.set)[0]);
      });
    }
    sync_all();
#if RACKEP_HAVE_MPI
    if (mpi != nullptr) mpi->barrier();  // every process's buffers and task lists are in place
#endif

    // ---- timed phases (CUDA events on every rank's stream of every GPU) ----
    std::vector<std::unique_ptr<GpuTimers>> timers;
    on_gpus([&](GpuState& g, int) { timers.push_back(std::make_unique<GpuTimers>(*g.set)); });
    for (int run = 0; run < runs; ++run) {
      ++epoch;  // the same epoch on every GPU and process
      on_gpus([&](GpuState& g, int li) {
        GpuTimers& t = *timers[li];
        t.total.start();
        g.set->join_fork(0);
        t.reroute.start();
        for (int j = 0; j < q; ++j) {
          const int s = place.first_rank(g.index) + j;
          Rank& rk = *ranks[li * q + j];
          RACKEP_CUDA_CHECK(cudaMemsetAsync(rk.error.get(), 0, sizeof(int32_t), rk.stream));
          RerouteArgs ra{static_cast<int64_t>(topk[s].size()),
                         1,
                         l_count,
                         n,
                         plan.has_quota,
                         cfg.options.ultraep.interleave,
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
        if (fixed) g.ws->run(epoch, (*g.set)[0]);
        t.ws.stop_on(0);
        t.dispatch.start();
      });
      exchange.dispatch();
      on_gpus([&](GpuState&, int li) { timers[li]->dispatch.stop(); });
      exchange.barrier();  // every rank's rows and every GPU's weight_sync writes are in place
      on_gpus([&](GpuState& g, int li) {
        GpuTimers& t = *timers[li];
        t.ffn.start();
        for (int j = 0; j < q; ++j) {
          const int d = place.first_rank(g.index) + j;
          Rank& rk = *ranks[li * q + j];
          std::vector<const uint16_t*> fc1(s_slots), fc2(s_slots);
          for (int slot = 0; slot < s_slots; ++slot) {
            const uint8_t* base = rk.weights.get() + slot * eb.weight_bytes();
            fc1[slot] = reinterpret_cast<const uint16_t*>(base);
            fc2[slot] = reinterpret_cast<const uint16_t*>(base + eb.shard_offset_bytes(1));
          }
          rk.ffn->run(rk.recv.get(), lay.slot_offsets[d], fc1, fc2, rk.y.get(), rk.stream);
        }
        t.ffn.stop();
        g.set->join_fork(0);
        t.combine.start();
      });
      exchange.combine();
      on_gpus([&](GpuState&, int li) { timers[li]->combine.stop(); });
      if (cfg.backward) {
        exchange.barrier();
        on_gpus([&](GpuState& g, int li) {
          timers[li]->grad.start_on(0);
          g.gr->run(42, (*g.set)[0]);
          timers[li]->grad.stop_on(0);
        });
      }
      on_gpus([&](GpuState& g, int li) {
        g.set->join_fork(0);
        timers[li]->total.stop();
      });
      sync_all();
#if RACKEP_HAVE_MPI
      // The next run's weight_sync writes other processes' slots: every process's FFN must be done.
      if (mpi != nullptr) mpi->barrier();
#endif
    }
    PhaseTimes& pt = res.times;
    pt.plan_ms = gpu_planner ? plan_timer.ms() : 0.0;
    for (const auto& t : timers) {
      pt.reroute_ms = std::max(pt.reroute_ms, t->reroute.max_ms());
      pt.weight_sync_ms = std::max(pt.weight_sync_ms, fixed ? t->ws.max_ms() : 0.0);
      pt.dispatch_ms = std::max(pt.dispatch_ms, t->dispatch.max_ms());
      pt.expert_ffn_ms = std::max(pt.expert_ffn_ms, t->ffn.max_ms());
      pt.combine_ms = std::max(pt.combine_ms, t->combine.max_ms());
      pt.grad_reduce_ms = std::max(pt.grad_reduce_ms, cfg.backward ? t->grad.max_ms() : 0.0);
      pt.total_ms = std::max(pt.total_ms, t->total.ms());
    }
    int64_t remote_rows = exchange.remote_rows();
#if RACKEP_HAVE_MPI
    if (mpi != nullptr) {
      for (double* v : {&pt.plan_ms, &pt.reroute_ms, &pt.weight_sync_ms, &pt.dispatch_ms, &pt.expert_ffn_ms,
                        &pt.combine_ms, &pt.grad_reduce_ms, &pt.total_ms})
        *v = mpi->max(*v);
      remote_rows = mpi->sum(remote_rows);
    }
#endif
    rep.remote_rows = remote_rows;

    // ---- checks: reroute on every record; dispatch rows and weight copies on the first ----
    for (int i = 0; i < local_ranks; ++i) {
      const int s = first_rank + i;
      const std::vector<int32_t> got = ranks[i]->physical.download(topk[s].size());
      if (got != phys_ref[s])
        throw InputError("run-layer check", "reroute",
                         "GPU reroute of rank " + std::to_string(s) + " differs from core");
    }
    if (check) {
      for (int i = 0; i < local_ranks; ++i) {
        const int d = first_rank + i;
        const std::vector<int32_t> origin = ranks[i]->origin.download(static_cast<size_t>(lay.rows(d) * 3));
        const std::vector<uint16_t> recv = ranks[i]->recv.download(static_cast<size_t>(lay.rows(d) * hidden));
        for (int64_t row = 0; row < lay.rows(d); ++row) {
          const int32_t src = origin[row * 3];
          const int32_t tok = origin[row * 3 + 1];
          bool ok = src == lay.row_source[d][row] && tok == lay.row_token[d][row];
          for (int64_t h = 0; ok && h < std::min<int64_t>(hidden, 64); ++h)
            ok = recv[row * hidden + h] == origin_payload(src, tok, h);
          if (!ok)
            throw InputError("run-layer check", "dispatch",
                             "rank " + std::to_string(d) + " row " + std::to_string(row) + " is misrouted");
        }
      }
      if (fixed) {
        int checked_experts = 0;
        for (int l = 0; l < l_count && checked_experts < 8; ++l) {
          if (plan.lcnt[l] < 2) continue;
          ++checked_experts;
          const std::vector<uint8_t> a =
              download_bytes(wsb.slot_weights[plan.physical(l, 0)], eb.weight_bytes());
          const std::vector<uint8_t> b =
              download_bytes(wsb.slot_weights[plan.physical(l, 1)], eb.weight_bytes());
          if (a != b)
            throw InputError("run-layer check", "weight_sync",
                             "replica of expert " + std::to_string(l) + " differs");
        }
      }
    }
    rep.layers.push_back(res);
    if (on_layer) on_layer(res);
  }
  rep.checked = all_checked;
  ipc.close();
#if RACKEP_HAVE_MPI
  if (mpi != nullptr) mpi->barrier();  // every mapping is closed before any owner frees its buffers
#endif
  return rep;
}

}  // namespace

RunLayerReport run_layers(const RunLayerConfig& cfg, const std::vector<LayerRecord>& records,
                          const std::function<void(const LayerResult&)>& on_layer) {
  if (!cfg.mpi) return run_layers_impl(cfg, records, on_layer, nullptr);
#if RACKEP_HAVE_MPI
  MpiSession mpi;
  try {
    return run_layers_impl(cfg, records, on_layer, &mpi);
  } catch (const std::exception& e) {
    // The other processes may be waiting in NCCL or MPI for this one: end the whole job.
    std::fprintf(stderr, "rackep run-layer (MPI rank %d of %d): %s\n", mpi.rank(), mpi.size(), e.what());
    std::fflush(stderr);
    mpi.abort(1);
  }
#else
  throw InputError(
      "run-layer", "mpi",
      "one process per GPU needs MPI, and rackep was built without it (RACKEP_HAVE_MPI=0: install "
      "libopenmpi-dev and reconfigure)");
#endif
}

}  // namespace rackep::kernels
