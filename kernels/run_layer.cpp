// run_layers() of kernels/drivers.hpp: the MoE layer pipeline over emulated ranks on GPU 0.
// NOTE: traces hold per-(rank, expert) counts, not tokens, so every routed (token, expert) pair becomes its
// own row (top_k = 1 rows, probability 1): the dispatch/combine/FFN volumes equal the real ones. Pairs of a
// source are interleaved across experts round-robin so reroute's per-expert ordinals are spread over the
// sequence. Host-side work (allocation, task lists, dispatch layout) is prepared before the timed phases; the
// layout comes from core's CPU reroute, and the GPU reroute is checked against it for every record.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

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
#include "kernels/expert_ffn.hpp"
#include "kernels/moe_kernels.hpp"
#include "kernels/planner.hpp"
#include "kernels/reroute.hpp"
#include "kernels/timing.hpp"

namespace rackep::kernels {
namespace {

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

// Everything one emulated rank owns on the GPU: its own allocations and its own stream.
struct Rank {
  cudaStream_t stream = nullptr;
  DeviceBuffer<uint8_t> weights;  // S slots x B_w
  DeviceBuffer<float> grads;      // S slots x B_g (backward)
  DeviceBuffer<uint32_t> flags;   // ready flags
  DeviceBuffer<uint16_t> x, recv, y;
  DeviceBuffer<int32_t> origin, topk, prefix, physical, error;
  DeviceBuffer<int64_t> dest_row, y_row;
  DeviceBuffer<int32_t> dest_rank;
  DeviceBuffer<float> probs, out;
  DeviceBuffer<uint8_t> reroute_ws;
  std::unique_ptr<GroupedFfn> ffn;
  ~Rank() { cudaStreamDestroy(stream); }
};

}  // namespace

RunLayerReport run_layers(const RunLayerConfig& cfg, const std::vector<LayerRecord>& records,
                          const std::function<void(const LayerResult&)>& on_layer) {
  const std::vector<DeviceInfo> gpus = require_gpus(1);
  const ClusterShape& shape = cfg.shape;
  shape.validate("run-layer shape");
  const int n = shape.num_ranks;
  const int s_slots = shape.slots_per_rank();
  const int l_count = shape.num_experts();
  const int64_t hidden = cfg.dims.hidden;
  const ExpertBytes eb{cfg.dims.hidden, cfg.dims.ffn, 2};
  eb.validate("--model");
  if (hidden % 8 != 0) throw InputError("--model", "hidden", "must be a multiple of 8");
  RACKEP_CUDA_CHECK(cudaSetDevice(0));

  // Memory estimate before allocating anything.
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
  size_t free_b = 0, total_b = 0;
  RACKEP_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (static_cast<double>(per_rank) * n > 0.9 * static_cast<double>(free_b))
    throw InputError("run-layer", "memory",
                     "about " + std::to_string(static_cast<double>(per_rank) * n / (1 << 30)) +
                         " GiB needed for " + std::to_string(n) + " emulated ranks, " +
                         std::to_string(free_b >> 30) + " GiB free: use a smaller model or fewer ranks");

  RunLayerReport rep;
  rep.mode = std::to_string(n) + " emulated ranks on 1 GPU (" + gpus[0].name + ")";
  for (const DeviceInfo& g : gpus) rep.devices.push_back(g.name);

  std::vector<std::unique_ptr<Rank>> ranks;
  WeightSyncBuffers wsb;
  GradReduceBuffers grb;
  std::vector<uint8_t> expert_host(static_cast<size_t>(eb.weight_bytes()));
  for (size_t i = 0; i < expert_host.size() / 2; ++i) {
    const float v = static_cast<float>(static_cast<int>((i * 2654435761u) % 2001u) - 1000) / 1000.0f /
                    std::sqrt(static_cast<float>(hidden));
    const uint16_t b = float_to_bf16(v);
    std::memcpy(&expert_host[2 * i], &b, 2);
  }
  for (int r = 0; r < n; ++r) {
    auto rk = std::make_unique<Rank>();
    RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&rk->stream, cudaStreamNonBlocking));
    rk->weights.resize(static_cast<size_t>(s_slots * eb.weight_bytes()));
    for (int slot = 0; slot < shape.num_masters; ++slot)
      RACKEP_CUDA_CHECK(cudaMemcpy(rk->weights.get() + slot * eb.weight_bytes(), expert_host.data(),
                                   expert_host.size(), cudaMemcpyHostToDevice));
    const int flags = static_cast<int>(shape.num_redundant * 2 * std::max(eb.max_chunks_per_shard(), 1));
    rk->flags.resize(static_cast<size_t>(std::max(flags, 1)));
    RACKEP_CUDA_CHECK(cudaMemset(rk->flags.get(), 0, rk->flags.bytes()));
    if (cfg.backward) rk->grads.resize(static_cast<size_t>(s_slots * eb.grad_bytes() / 4));
    for (int slot = 0; slot < s_slots; ++slot) {
      wsb.slot_weights.push_back(rk->weights.get() + slot * eb.weight_bytes());
      grb.slot_grads.push_back(cfg.backward ? rk->grads.get() + slot * eb.grad_bytes() / 4 : nullptr);
    }
    wsb.rank_flags.push_back(rk->flags.get());
    rk->ffn = std::make_unique<GroupedFfn>(cfg.dims);
    rk->error.resize(1);
    ranks.push_back(std::move(rk));
  }
  std::vector<cudaStream_t> streams;
  for (auto& rk : ranks) streams.push_back(rk->stream);
  StreamSet sset(streams);

  std::unique_ptr<GpuPlanner> gpu_planner;
  std::unique_ptr<Balancer> balancer;
  if (cfg.balancer == "ultraep")
    gpu_planner = std::make_unique<GpuPlanner>(shape, cfg.options.ultraep);
  else
    balancer = make_balancer(cfg.balancer, shape, cfg.options);
  WeightSyncEngine ws(gpus[0].num_sms);
  GradReduceEngine gr;
  uint32_t epoch = 0;
  DeviceBuffer<uint16_t*> d_recv_ptrs(static_cast<size_t>(n));
  DeviceBuffer<int32_t*> d_origin_ptrs(static_cast<size_t>(n));
  DeviceBuffer<const uint16_t*> d_y_ptrs(static_cast<size_t>(n));

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

    // ---- plan (GPU for ultraep; host balancer otherwise) and host-side preparation (untimed) ----
    Plan plan;
    Allocation alloc;
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
    DeviceBuffer<int32_t> d_l2p(plan.l2p), d_lcnt(plan.lcnt);
    std::vector<int32_t> prefix(static_cast<size_t>(l_count) * n, 0);
    for (int s = 0; s < n; ++s) {
      Rank& rk = *ranks[s];
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
      rk.dest_rank.assign(lay.dest_rank[s]);
      rk.dest_row.assign(lay.dest_row[s]);
      rk.probs.assign(std::vector<float>(static_cast<size_t>(pairs), 1.0f));
      launch_fill_payload(rk.x.get(), s, pairs, hidden, rk.stream);
      rk.reroute_ws.resize(workspace_bytes(RerouteArgs{pairs, 1, l_count, n}));
    }
    std::vector<uint16_t*> recv_ptrs;
    std::vector<int32_t*> origin_ptrs;
    std::vector<const uint16_t*> y_ptrs;
    for (auto& rk : ranks) {
      recv_ptrs.push_back(rk->recv.get());
      origin_ptrs.push_back(rk->origin.get());
      y_ptrs.push_back(rk->y.get());
    }
    d_recv_ptrs.assign(recv_ptrs);
    d_origin_ptrs.assign(origin_ptrs);
    d_y_ptrs.assign(y_ptrs);
    const bool fixed = plan.masters_fixed;
    if (fixed) {
      const TransferPlan tp = plan_weight_sync(plan, eb, cfg.weight_sync);
      ws.prepare_all_ranks(build_weight_sync_tasks(tp), wsb, ranks[0]->stream);
      res.weight_bytes_copied = ws.bytes_written();
    }
    if (cfg.backward) gr.prepare(plan_grad_reduce(plan, eb), grb, -1, ranks[0]->stream);
    sset.sync_all();

    // ---- timed phases ----
    PhaseTimer t_reroute(sset), t_ws(sset), t_dispatch(sset), t_ffn(sset), t_combine(sset), t_grad(sset);
    EventTimer total(ranks[0]->stream);
    for (int run = 0; run < runs; ++run) {
      total.start();
      sset.join_fork(0);
      t_reroute.start();
      for (int s = 0; s < n; ++s) {
        Rank& rk = *ranks[s];
        RACKEP_CUDA_CHECK(cudaMemsetAsync(rk.error.get(), 0, sizeof(int32_t), rk.stream));
        RerouteArgs ra{static_cast<int64_t>(topk[s].size()),
                       1,
                       l_count,
                       n,
                       plan.has_quota,
                       cfg.options.ultraep.interleave,
                       rk.topk.get(),
                       rk.prefix.get(),
                       d_l2p.get(),
                       d_lcnt.get(),
                       rk.physical.get(),
                       rk.error.get()};
        launch_reroute(ra, rk.reroute_ws.get(), rk.stream);
      }
      t_reroute.stop();
      t_ws.start_on(0);
      if (fixed) ws.run(++epoch, ranks[0]->stream);
      t_ws.stop_on(0);
      t_dispatch.start();
      for (int s = 0; s < n; ++s) {
        Rank& rk = *ranks[s];
        ScatterArgs sa{rk.x.get(),
                       static_cast<int64_t>(topk[s].size()),
                       1,
                       hidden,
                       s,
                       rk.dest_rank.get(),
                       rk.dest_row.get(),
                       d_recv_ptrs.get(),
                       d_origin_ptrs.get()};
        launch_scatter_rows(sa, rk.stream);
      }
      t_dispatch.stop();
      sset.join_fork(0);  // every rank's rows (and weight_sync) are in place
      t_ffn.start();
      for (int d = 0; d < n; ++d) {
        Rank& rk = *ranks[d];
        std::vector<const uint16_t*> fc1(s_slots), fc2(s_slots);
        for (int slot = 0; slot < s_slots; ++slot) {
          const uint8_t* base = rk.weights.get() + slot * eb.weight_bytes();
          fc1[slot] = reinterpret_cast<const uint16_t*>(base);
          fc2[slot] = reinterpret_cast<const uint16_t*>(base + eb.shard_offset_bytes(1));
        }
        rk.ffn->run(rk.recv.get(), lay.slot_offsets[d], fc1, fc2, rk.y.get(), rk.stream);
      }
      t_ffn.stop();
      sset.join_fork(0);
      t_combine.start();
      for (int s = 0; s < n; ++s) {
        Rank& rk = *ranks[s];
        CombineArgs ca{d_y_ptrs.get(),
                       rk.dest_rank.get(),
                       rk.dest_row.get(),
                       rk.probs.get(),
                       rk.out.get(),
                       static_cast<int64_t>(topk[s].size()),
                       1,
                       hidden};
        launch_combine(ca, rk.stream);
      }
      t_combine.stop();
      sset.join_fork(0);
      if (cfg.backward) {
        t_grad.start_on(0);
        gr.run(42, ranks[0]->stream);
        t_grad.stop_on(0);
      }
      total.stop();
      sset.sync_all();
    }
    res.times.plan_ms = gpu_planner ? plan_timer.ms() : 0.0;
    res.times.reroute_ms = t_reroute.max_ms();
    res.times.weight_sync_ms = fixed ? t_ws.max_ms() : 0.0;
    res.times.dispatch_ms = t_dispatch.max_ms();
    res.times.expert_ffn_ms = t_ffn.max_ms();
    res.times.combine_ms = t_combine.max_ms();
    res.times.grad_reduce_ms = cfg.backward ? t_grad.max_ms() : 0.0;
    res.times.total_ms = total.ms();

    // ---- checks: reroute on every record; dispatch rows and weight copies on the first ----
    for (int s = 0; s < n; ++s) {
      const std::vector<int32_t> got = ranks[s]->physical.download(topk[s].size());
      if (got != phys_ref[s])
        throw InputError("run-layer check", "reroute",
                         "GPU reroute of rank " + std::to_string(s) + " differs from core");
    }
    if (check) {
      for (int d = 0; d < n; ++d) {
        const std::vector<int32_t> origin = ranks[d]->origin.download(static_cast<size_t>(lay.rows(d) * 3));
        const std::vector<uint16_t> recv = ranks[d]->recv.download(static_cast<size_t>(lay.rows(d) * hidden));
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
  return rep;
}

}  // namespace rackep::kernels
