// `rackep calibrate --model M --out FILE`: measures the efficiency curves of the cost model on GPU 0
// (kernels/drivers.hpp: grouped-GEMM efficiency against tokens per expert for the model's expert shape, copy
// bandwidth by size, HBM bandwidth, kernel launch, weight_sync, grad_reduce, planner and reroute times) and
// writes them in the calibration format `rackep simulate --calibration` reads (sim/calibration.hpp): the base
// file (default configs/calibration/default.json) with every measured field replaced and its source naming
// the device. Raw measurements go to FILE.measurements.json. Without CUDA or a GPU: a clear error, non-zero
// exit.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "rackep/config.hpp"
#include "sim/config_io.hpp"
#include "tools/commands.hpp"
#include "tools/gpu_common.hpp"
#if RACKEP_HAVE_CUDA
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"
#endif

namespace rackep::tools {
namespace {

struct CalibrateArgs {
  std::string model = "qwen3-235b-a22b";
  std::string out = "calibration.json";
  std::string base;
  double peak_tflops = 0.0;
  int repeats = 20;
  bool force = false;
};

#if RACKEP_HAVE_CUDA
nlohmann::json sourced(double value, const std::string& source) {
  return {{"value", value}, {"source", source}};
}

nlohmann::json read_json(const std::string& path) {
  if (!std::ifstream(path).good()) throw InputError("--base", path, "cannot open");
  return sim::read_json_file(path);  // nesting bounded, every error names the file and the key
}

void write_json(const nlohmann::json& j, const std::string& path, bool force) {
  OutputFile out(path, "--out", force);
  out.write(j.dump(2) + "\n");
  out.commit();
}
#endif

void run([[maybe_unused]] const CalibrateArgs& a) {
  require_cuda_build("calibrate");
#if RACKEP_HAVE_CUDA
  kernels::require_gpus(1);
  const MoeShape model = read_moe_shape(a.model);
  kernels::CalibrateConfig cfg;
  cfg.dims = FfnDims{model.hidden, model.expert_ffn};
  cfg.peak_flops = a.peak_tflops * 1e12;
  cfg.repeats = a.repeats;
  const kernels::CalibrationMeasurements m = kernels::calibrate(cfg);

  const std::string base =
      a.base.empty() ? std::string(RACKEP_SOURCE_DIR) + "/configs/calibration/default.json" : a.base;
  nlohmann::json c = read_json(base);
  const std::string tag = "measured by rackep calibrate on " + m.device;
  c["name"] = "measured " + m.device;
  c["comment"] = "Written by `rackep calibrate --model " + a.model + "` on " + m.device +
                 "; fields not measured keep the values of " + base + ".";
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& p : m.gemm_efficiency)
    curve.push_back({{"tokens", p.x},
                     {"efficiency", std::clamp(p.y, 1e-4, 1.0)},
                     {"source", tag + ": grouped bf16 SwiGLU expert GEMMs (H=" +
                                    std::to_string(model.hidden) + ", F=" + std::to_string(model.expert_ffn) +
                                    ") / peak " + std::to_string(m.peak_flops / 1e12) + " TFLOPS"}});
  // The forward curve is measured; dgrad and wgrad keep the base file's curves (and their sources).
  c["gemm_efficiency"]["forward"] = curve;
  c["kernel_launch_s"] = sourced(m.kernel_launch_s, tag + ": empty kernel, launch to completion");
  c["weight_sync_launch_s"] =
      sourced(m.weight_sync_launch_s, tag + ": intercept of weight_sync time vs bytes");
  c["comm_sms"]["grad_reduce"] = sourced(m.grad_reduce_num_sms, tag + ": blocks used for the measurement");
  c["grad_reduce_bytes_per_sm_s"] =
      sourced(m.grad_reduce_bytes_per_sm_s, tag + ": pulled bytes / time / blocks");
  if (c.contains("planners") && c["planners"].contains("ultraep")) {
    nlohmann::json& u = c["planners"]["ultraep"];
    u["fixed_s"] = sourced(m.planner_fixed_s, tag + ": GPU planner kernel, fit over L");
    u["per_expert_s"] =
        sourced(std::max(m.planner_per_expert_s, 0.0), tag + ": GPU planner kernel, fit over L");
    u["reroute_fixed_s"] = sourced(m.reroute_fixed_s, tag + ": reroute kernels, fit over routed pairs");
    u["reroute_per_pair_s"] =
        sourced(std::max(m.reroute_per_pair_s, 0.0), tag + ": reroute kernels, fit over routed pairs");
  }
  write_json(c, a.out, a.force);

  nlohmann::json raw;
  raw["device"] = m.device;
  raw["peak_flops"] = m.peak_flops;
  auto series = [](const std::vector<kernels::Measured>& v) {
    nlohmann::json s = nlohmann::json::array();
    for (const auto& p : v) s.push_back({p.x, p.y});
    return s;
  };
  raw["gemm_efficiency_by_tokens"] = series(m.gemm_efficiency);
  raw["copy_bytes_per_s_by_size"] = series(m.copy_bytes_per_s);
  raw["hbm_bytes_per_s"] = m.hbm_bytes_per_s;
  raw["kernel_launch_s"] = m.kernel_launch_s;
  raw["weight_sync_launch_s"] = m.weight_sync_launch_s;
  raw["weight_sync_bytes_per_s"] = m.weight_sync_bytes_per_s;
  raw["grad_reduce_bytes_per_sm_s"] = m.grad_reduce_bytes_per_sm_s;
  raw["planner_s_by_experts"] = series(m.planner_s);
  raw["reroute_s_by_pairs"] = series(m.reroute_s);
  raw["peer_bytes_per_s"] = m.peer_bytes_per_s;
  write_json(raw, a.out + ".measurements.json", a.force);
  std::printf("calibration written to %s (raw measurements: %s.measurements.json)\n", a.out.c_str(),
              a.out.c_str());
#endif
}

}  // namespace

void add_calibrate_command(CLI::App& app) {
  auto args = std::make_shared<CalibrateArgs>();
  CLI::App* cmd = app.add_subcommand("calibrate", kCalibrateHelp);
  cmd->add_option("--model", args->model, "model config name or file: expert shapes of the GEMM curve")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "calibration file to write")->capture_default_str();
  cmd->add_option("--base", args->base,
                  "calibration whose unmeasured fields are kept (default: configs/calibration/default.json)");
  cmd->add_option("--peak-tflops", args->peak_tflops,
                  "bf16 dense peak of the device (0: from the device type)")
      ->capture_default_str();
  cmd->add_option("--repeats", args->repeats, "timed repetitions per point")->capture_default_str();
  cmd->add_flag("--force", args->force, "replace an existing --out file (and its .measurements.json)");
  cmd->callback([args] { run(*args); });
}

}  // namespace rackep::tools
