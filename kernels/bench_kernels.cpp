// bench_kernels() of kernels/drivers.hpp: the numbers `rackep bench kernels` prints, all on GPU 0.
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "core/error.hpp"
#include "core/transfer.hpp"
#include "core/ultraep.hpp"
#include "kernels/check.hpp"
#include "kernels/data_plane.hpp"
#include "kernels/drivers.hpp"
#include "kernels/expert_ffn.hpp"
#include "kernels/measure.hpp"
#include "kernels/planner.hpp"
#include "kernels/timing.hpp"

namespace rackep::kernels {

std::vector<BenchLine> bench_kernels(const BenchKernelsConfig& cfg) {
  const std::vector<DeviceInfo> gpus = require_gpus(1);
  RACKEP_CUDA_CHECK(cudaSetDevice(0));
  const DeviceInfo& dev = gpus[0];
  cfg.shape.validate("bench kernels");
  cudaStream_t stream = nullptr;
  RACKEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<CUstream_st, void (*)(cudaStream_t)> stream_guard(
      stream, [](cudaStream_t s) { cudaStreamDestroy(s); });
  std::vector<BenchLine> out;
  out.push_back({"device: " + dev.name, static_cast<double>(dev.num_sms), "SMs", "", true});

  // Planner latency (one launch, back to back, averaged) and bit-identity with core on the same loads.
  const LoadMatrix loads = synthetic_loads(cfg.shape, cfg.imbalance, cfg.tokens_per_rank, cfg.top_k);
  const std::vector<int64_t> w = loads.expert_totals();
  GpuPlanner planner(cfg.shape, UltraEpOptions{});
  const Plan& gpu_plan = planner.plan(w, stream);
  const Plan cpu_plan = ultraep_plan(cfg.shape, w, UltraEpOptions{});
  const bool same =
      gpu_plan.p2l == cpu_plan.p2l && gpu_plan.l2p == cpu_plan.l2p && gpu_plan.quota == cpu_plan.quota;
  DeviceBuffer<int64_t> d_w(w);
  const double plan_us = 1e3 * time_ms(stream, cfg.repeats, [&] { planner.launch(d_w.get(), stream); });
  const std::string shape_text = "EP " + std::to_string(cfg.shape.num_ranks) +
                                 ", L=" + std::to_string(cfg.shape.num_experts()) +
                                 ", R=" + std::to_string(cfg.shape.num_redundant);
  out.push_back({"planner kernel latency (" + shape_text + ")", plan_us, "us", "<= 30 us (paper 67-78)",
                 plan_us <= 30.0});
  out.push_back({"planner plan == core UltraEpPlanner", same ? 1.0 : 0.0, "bool", "1", same});

  // weight_sync of that plan over emulated ranks on this GPU, against cudaMemcpy D2D (HBM traffic both ways).
  {
    const ExpertBytes eb{cfg.dims.hidden, cfg.dims.ffn, 2};
    const TransferPlan tp = plan_weight_sync(cpu_plan, eb, WeightSyncOptions{});
    const WeightSyncTaskList tasks = build_weight_sync_tasks(tp);
    const int64_t slots = cfg.shape.num_physical();
    DeviceBuffer<uint8_t> weights(static_cast<size_t>(slots * eb.weight_bytes()));
    DeviceBuffer<uint32_t> flags(
        static_cast<size_t>(std::max(tasks.flags_per_rank, 1) * cfg.shape.num_ranks));
    RACKEP_CUDA_CHECK(cudaMemset(flags.get(), 0, flags.bytes()));
    WeightSyncBuffers buf;
    for (int64_t p = 0; p < slots; ++p) buf.slot_weights.push_back(weights.get() + p * eb.weight_bytes());
    for (int r = 0; r < cfg.shape.num_ranks; ++r)
      buf.rank_flags.push_back(flags.get() + r * tasks.flags_per_rank);
    WeightSyncEngine ws(dev.num_sms);
    ws.prepare_all_ranks(tasks, buf, stream);
    uint32_t epoch = 0;
    const double ws_ms = time_ms(stream, cfg.repeats, [&] { ws.run(++epoch, stream); });
    const size_t copy_bytes = static_cast<size_t>(std::min<int64_t>(ws.bytes_written(), weights.bytes() / 2));
    const double memcpy_ms = time_ms(stream, cfg.repeats, [&] {
      RACKEP_CUDA_CHECK(cudaMemcpyAsync(weights.get() + weights.bytes() / 2, weights.get(), copy_bytes,
                                        cudaMemcpyDeviceToDevice, stream));
    });
    const double ws_traffic = static_cast<double>(ws.bytes_written() + ws.bytes_read()) / (ws_ms * 1e-3);
    const double memcpy_traffic = 2.0 * static_cast<double>(copy_bytes) / (memcpy_ms * 1e-3);
    out.push_back(
        {"weight_sync time (" + std::to_string(tp.num_copies()) + " copies, " + to_string(tp.mode) + ")",
         ws_ms * 1e3, "us", "", true});
    out.push_back({"weight_sync HBM traffic", ws_traffic / 1e9, "GB/s", "", true});
    out.push_back({"cudaMemcpy D2D HBM traffic", memcpy_traffic / 1e9, "GB/s", "", true});
    const double frac = memcpy_traffic > 0 ? ws_traffic / memcpy_traffic : 0.0;
    out.push_back({"weight_sync / device copy bandwidth", 100.0 * frac, "%", ">= 85 %", frac >= 0.85});
  }

  // Grouped GEMM (SwiGLU FFN, 8 experts x 1024 tokens) against cuBLAS dense at the same total shape.
  {
    const FfnDims& d = cfg.dims;
    const int groups = 8;
    const int64_t tokens = 1024;
    DeviceBuffer<uint16_t> w1(static_cast<size_t>(groups * d.fc1_elements())),
        w2(static_cast<size_t>(groups * d.fc2_elements()));
    DeviceBuffer<uint16_t> x(static_cast<size_t>(groups * tokens * d.hidden)), y(x.size());
    RACKEP_CUDA_CHECK(cudaMemset(w1.get(), 0x3c, w1.bytes()));
    RACKEP_CUDA_CHECK(cudaMemset(w2.get(), 0x3c, w2.bytes()));
    RACKEP_CUDA_CHECK(cudaMemset(x.get(), 0x3c, x.bytes()));
    GroupedFfn ffn(d);
    std::vector<const uint16_t*> fc1, fc2;
    std::vector<int64_t> off{0};
    for (int g = 0; g < groups; ++g) {
      fc1.push_back(w1.get() + g * d.fc1_elements());
      fc2.push_back(w2.get() + g * d.fc2_elements());
      off.push_back(off.back() + tokens);
    }
    const double flops = static_cast<double>(d.flops_per_token()) * static_cast<double>(groups * tokens);
    const double g_ms =
        time_ms(stream, cfg.repeats, [&] { ffn.run(x.get(), off, fc1, fc2, y.get(), stream); });
    const double d_ms = time_ms(stream, cfg.repeats, [&] {
      ffn.run_dense(x.get(), groups * tokens, fc1[0], fc2[0], y.get(), stream);
    });
    out.push_back({std::string("grouped GEMM FFN (") +
                       (ffn.grouped_api() ? "cublasGemmGroupedBatchedEx" : "per-group cublasGemmEx") + ")",
                   flops / (g_ms * 1e-3) / 1e12, "TFLOPS", "", true});
    out.push_back({"cuBLAS dense FFN, same total shape", flops / (d_ms * 1e-3) / 1e12, "TFLOPS", "", true});
    out.push_back({"grouped / dense", d_ms / g_ms, "x", "", true});
  }
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return out;
}

}  // namespace rackep::kernels
