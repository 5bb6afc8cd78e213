// calibrate() of kernels/drivers.hpp: the measurements behind `rackep calibrate`, all on GPU 0.
#include <cuda_runtime.h>

#include <chrono>
#include <memory>

#include "core/error.hpp"
#include "kernels/check.hpp"
#include "kernels/copy_kernels.hpp"
#include "kernels/drivers.hpp"
#include "kernels/expert_ffn.hpp"
#include "kernels/measure.hpp"
#include "kernels/planner.hpp"
#include "kernels/reroute.hpp"
#include "kernels/timing.hpp"

namespace rackep::kernels {
namespace {

// One copy task of `bytes` from src to `num_dst` destinations; returns ms per run.
double copy_ms(cudaStream_t stream, int repeats, int num_sms, const uint8_t* src, std::vector<uint8_t*> dsts,
               int64_t bytes) {
  CopyTask t;
  t.src = src;
  t.num_bytes = bytes;
  t.num_dst = static_cast<int32_t>(dsts.size());
  const int64_t tiles = (bytes + kCopyTileBytes - 1) / kCopyTileBytes;
  DeviceBuffer<CopyTask> d_task(std::vector<CopyTask>{t});
  DeviceBuffer<uint8_t*> d_dsts(dsts);
  DeviceBuffer<uint32_t*> d_signals(1);
  DeviceBuffer<int32_t> d_rem(1);
  DeviceBuffer<unsigned long long> d_ticket(1);
  CopyArgs a;
  a.tasks = d_task.get();
  a.num_tasks = 1;
  a.total_tiles = tiles;
  a.dsts = d_dsts.get();
  a.signals = d_signals.get();
  a.remaining = d_rem.get();
  a.ticket = d_ticket.get();
  a.grid = static_cast<int>(std::min<int64_t>(4 * num_sms, tiles));
  return time_ms(stream, repeats, [&] {
    RACKEP_CUDA_CHECK(cudaMemsetAsync(d_ticket.get(), 0, sizeof(unsigned long long), stream));
    launch_copy_kernel(a, stream);
  });
}

}  // namespace

CalibrationMeasurements calibrate(const CalibrateConfig& cfg) {
  const std::vector<DeviceInfo> gpus = require_gpus(1);
  RACKEP_CUDA_CHECK(cudaSetDevice(0));
  const DeviceInfo& dev = gpus[0];
  CalibrationMeasurements m;
  m.device = dev.name + " (sm_" + std::to_string(dev.cc_major) + std::to_string(dev.cc_minor) + ")";
  m.peak_flops = cfg.peak_flops > 0 ? cfg.peak_flops : bf16_peak_flops(dev);
  if (m.peak_flops <= 0)
    throw InputError("--peak-tflops", dev.name, "unknown bf16 peak for this GPU: pass --peak-tflops");
  cudaStream_t stream = nullptr;
  RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<CUstream_st, void (*)(cudaStream_t)> stream_guard(
      stream, [](cudaStream_t s) { cudaStreamDestroy(s); });

  // Grouped-GEMM efficiency against tokens per expert (the model's expert shape).
  {
    const FfnDims& d = cfg.dims;
    const int groups = std::max(cfg.experts_per_gemm, 1);
    const int64_t max_tokens = *std::max_element(cfg.tokens.begin(), cfg.tokens.end());
    DeviceBuffer<uint16_t> w1(static_cast<size_t>(groups * d.fc1_elements()));
    DeviceBuffer<uint16_t> w2(static_cast<size_t>(groups * d.fc2_elements()));
    DeviceBuffer<uint16_t> x(static_cast<size_t>(groups * max_tokens * d.hidden));
    DeviceBuffer<uint16_t> y(x.size());
    RACKEP_CUDA_CHECK(cudaMemset(w1.get(), 0x3c, w1.bytes()));  // small bf16 values: 0x3c3c ~ 0.0115
    RACKEP_CUDA_CHECK(cudaMemset(w2.get(), 0x3c, w2.bytes()));
    RACKEP_CUDA_CHECK(cudaMemset(x.get(), 0x3c, x.bytes()));
    GroupedFfn ffn(d);
    std::vector<const uint16_t*> fc1, fc2;
    for (int g = 0; g < groups; ++g) {
      fc1.push_back(w1.get() + g * d.fc1_elements());
      fc2.push_back(w2.get() + g * d.fc2_elements());
    }
    for (int64_t tokens : cfg.tokens) {
      std::vector<int64_t> off(static_cast<size_t>(groups) + 1, 0);
      for (int g = 0; g < groups; ++g) off[g + 1] = off[g] + tokens;
      const double ms =
          time_ms(stream, cfg.repeats, [&] { ffn.run(x.get(), off, fc1, fc2, y.get(), stream); });
      const double flops = static_cast<double>(d.flops_per_token()) * static_cast<double>(tokens * groups);
      m.gemm_efficiency.push_back({static_cast<double>(tokens), flops / (ms * 1e-3) / m.peak_flops});
    }
  }

  // Copy bandwidth by size (the weight_sync copy kernel, one destination), HBM bandwidth, weight_sync fit.
  {
    const int64_t max_bytes = int64_t{256} << 20;
    DeviceBuffer<uint8_t> src(static_cast<size_t>(max_bytes));
    DeviceBuffer<uint8_t> dst(static_cast<size_t>(6 * max_bytes / 4));
    RACKEP_CUDA_CHECK(cudaMemset(src.get(), 1, src.bytes()));
    for (int64_t bytes = int64_t{64} << 10; bytes <= max_bytes; bytes *= 4) {
      const double ms = copy_ms(stream, cfg.repeats, dev.num_sms, src.get(), {dst.get()}, bytes);
      m.copy_bytes_per_s.push_back({static_cast<double>(bytes), static_cast<double>(bytes) / (ms * 1e-3)});
    }
    const double ms = time_ms(stream, cfg.repeats, [&] {
      RACKEP_CUDA_CHECK(cudaMemcpyAsync(dst.get(), src.get(), static_cast<size_t>(max_bytes),
                                        cudaMemcpyDeviceToDevice, stream));
    });
    m.hbm_bytes_per_s = 2.0 * static_cast<double>(max_bytes) / (ms * 1e-3);
    // weight_sync: one expert (B_w of the model) to 1..6 replica slots; time against bytes written.
    const int64_t bw = 3 * cfg.dims.hidden * cfg.dims.ffn * 2;
    std::vector<Measured> pts;
    for (int k = 1; k <= 6 && k * bw <= static_cast<int64_t>(dst.bytes()); ++k) {
      std::vector<uint8_t*> dsts;
      for (int i = 0; i < k; ++i) dsts.push_back(dst.get() + i * bw);
      const double t = copy_ms(stream, cfg.repeats, dev.num_sms, src.get(), dsts, std::min(bw, max_bytes));
      pts.push_back({static_cast<double>(k * std::min(bw, max_bytes)), t * 1e-3});
    }
    const auto [a, b] = fit_line(pts);
    m.weight_sync_launch_s = std::max(a, 0.0);
    m.weight_sync_bytes_per_s = b > 0 ? 1.0 / b : 0.0;
  }

  // Kernel launch to completion.
  {
    launch_noop_kernel(stream);
    RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
    const int reps = 200;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      launch_noop_kernel(stream);
      RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
    }
    m.kernel_launch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
  }

  // grad_reduce: one fp32 gradient of the model's expert, 4 replicas, 42 blocks.
  {
    const int64_t floats = 3 * cfg.dims.hidden * cfg.dims.ffn;
    const int replicas = 4;
    DeviceBuffer<float> g(static_cast<size_t>((replicas + 1) * floats));
    RACKEP_CUDA_CHECK(cudaMemset(g.get(), 0, g.bytes()));
    std::vector<float*> reps;
    for (int r = 1; r <= replicas; ++r) reps.push_back(g.get() + r * floats);
    DeviceBuffer<float*> d_reps(reps);
    ReduceTask t;
    t.master = g.get();
    t.num_floats = floats;
    t.num_replicas = replicas;
    DeviceBuffer<ReduceTask> d_task(std::vector<ReduceTask>{t});
    ReduceArgs a;
    a.tasks = d_task.get();
    a.num_tasks = 1;
    a.total_tiles = (floats + kReduceTileFloats - 1) / kReduceTileFloats;
    a.replicas = d_reps.get();
    a.grid = m.grad_reduce_num_sms;
    const double ms = time_ms(stream, cfg.repeats, [&] { launch_reduce_kernel(a, stream); });
    m.grad_reduce_bytes_per_sm_s = static_cast<double>(floats * 4 * replicas) / (ms * 1e-3) / a.grid;
  }

  // GPU planner against L (EP 64, R = 2) and reroute against routed pairs (EP 64, L = 256).
  {
    for (int masters : {1, 2, 4, 8}) {
      const ClusterShape shape{64, masters, 2, 64};
      GpuPlanner planner(shape, UltraEpOptions{});
      DeviceBuffer<int64_t> w(synthetic_loads(shape, 2.0, 8192, 8).expert_totals());
      const double ms = time_ms(stream, cfg.repeats, [&] { planner.launch(w.get(), stream); });
      m.planner_s.push_back({static_cast<double>(shape.num_experts()), ms * 1e-3});
    }
    const auto [a, b] = fit_line(m.planner_s);
    m.planner_fixed_s = std::max(a, 0.0);
    m.planner_per_expert_s = b;
    const ClusterShape shape{64, 4, 2, 64};
    const int l_count = shape.num_experts();
    const std::vector<int32_t> masters_l2p = [&] {
      std::vector<int32_t> v(static_cast<size_t>(l_count) * 64, -1);
      for (int l = 0; l < l_count; ++l) v[static_cast<size_t>(l) * 64] = shape.master_physical(l);
      return v;
    }();
    for (int64_t pairs : {int64_t{8192}, int64_t{32768}, int64_t{65536}, int64_t{131072}}) {
      std::vector<int32_t> ids(static_cast<size_t>(pairs));
      std::vector<int32_t> prefix(static_cast<size_t>(l_count) * 64, 0);
      for (int64_t i = 0; i < pairs; ++i) ids[i] = static_cast<int32_t>((i * 7919) % l_count);
      for (int32_t id : ids) prefix[static_cast<size_t>(id) * 64] += 1;
      DeviceBuffer<int32_t> d_ids(ids), d_prefix(prefix), d_l2p(masters_l2p),
          d_lcnt(std::vector<int32_t>(l_count, 1));
      DeviceBuffer<int32_t> d_out(static_cast<size_t>(pairs)), d_err(1);
      RerouteArgs ra{pairs,          1,           l_count,      64,          true,       true, d_ids.get(),
                     d_prefix.get(), d_l2p.get(), d_lcnt.get(), d_out.get(), d_err.get()};
      DeviceBuffer<uint8_t> ws(workspace_bytes(ra));
      const double ms = time_ms(stream, cfg.repeats, [&] { launch_reroute(ra, ws.get(), stream); });
      m.reroute_s.push_back({static_cast<double>(pairs), ms * 1e-3});
    }
    const auto [ra, rb] = fit_line(m.reroute_s);
    m.reroute_fixed_s = std::max(ra, 0.0);
    m.reroute_per_pair_s = rb;
  }

  // Peer copy bandwidth GPU 0 -> GPU 1.
  if (gpus.size() >= 2) {
    const size_t bytes = size_t{256} << 20;
    DeviceBuffer<uint8_t> a(bytes);
    RACKEP_CUDA_CHECK(cudaSetDevice(1));
    DeviceBuffer<uint8_t> b(bytes);
    RACKEP_CUDA_CHECK(cudaSetDevice(0));
    const double ms = time_ms(stream, cfg.repeats, [&] {
      RACKEP_CUDA_CHECK(cudaMemcpyPeerAsync(b.get(), 1, a.get(), 0, bytes, stream));
    });
    m.peer_bytes_per_s = static_cast<double>(bytes) / (ms * 1e-3);
    RACKEP_CUDA_CHECK(cudaSetDevice(1));
    RACKEP_CUDA_CHECK(cudaDeviceSynchronize());
    RACKEP_CUDA_CHECK(cudaSetDevice(0));
  }
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return m;
}

}  // namespace rackep::kernels
