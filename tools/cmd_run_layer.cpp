// `rackep run-layer --model M --trace T --balancer B [--gpus K]`: executes the MoE layers of a trace slice on
// the GPUs it finds (kernels/drivers.hpp) and prints per-phase times measured with CUDA events. One process
// drives K GPUs (EP ranks in contiguous blocks, NCCL between GPUs); under `mpirun -np K` each process drives
// one GPU (needs RACKEP_HAVE_MPI) and process 0 prints. Without the CUDA backend, or without a GPU, it fails
// with a clear message and a non-zero exit.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "rackep/config.hpp"
#include "tools/commands.hpp"
#include "tools/config_cli.hpp"
#include "tools/gpu_common.hpp"
#include "tools/mpi_job.hpp"
#include "traces/trace_reader.hpp"
#if RACKEP_HAVE_CUDA
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"
#endif

namespace rackep::tools {
namespace {

struct RunLayerArgs {
  ConfigCli cli;
  bool json = false;
};

#if RACKEP_HAVE_CUDA
void print_report(const kernels::RunLayerReport& rep) {
  std::printf("# %s\n", rep.mode.c_str());
  std::printf("%6s %6s %7s %7s %8s %8s %8s %8s %8s %8s %8s %8s\n", "layer", "mb", "imb0", "imb1", "plan",
              "reroute", "w_sync", "dispatch", "ffn", "combine", "g_red", "total");
  for (const auto& l : rep.layers)
    std::printf("%6d %6lld %7.3f %7.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n", l.layer,
                static_cast<long long>(l.microbatch), l.imbalance_before, l.imbalance_after, l.times.plan_ms,
                l.times.reroute_ms, l.times.weight_sync_ms, l.times.dispatch_ms, l.times.expert_ffn_ms,
                l.times.combine_ms, l.times.grad_reduce_ms, l.times.total_ms);
  std::printf("# times in ms (CUDA events, max over ranks and GPUs); first record %s the CPU references\n",
              rep.checked ? "matched" : "was not checked against");
  if (rep.num_gpus > 1)
    std::printf("# %lld rows of the last record crossed GPUs (NCCL), each way\n",
                static_cast<long long>(rep.remote_rows));
}

void print_json(const kernels::RunLayerReport& rep, const config::ExperimentConfig& c) {
  nlohmann::ordered_json j;
  j["mode"] = rep.mode;
  j["devices"] = rep.devices;
  j["checked"] = rep.checked;
  j["num_gpus"] = rep.num_gpus;
  j["ranks_per_gpu"] = rep.ranks_per_gpu;
  j["remote_rows"] = rep.remote_rows;
  for (const auto& l : rep.layers) {
    j["layers"].push_back({{"layer", l.layer},
                           {"microbatch", l.microbatch},
                           {"imbalance_before", l.imbalance_before},
                           {"imbalance_after", l.imbalance_after},
                           {"replicas", l.replicas},
                           {"weight_bytes_copied", l.weight_bytes_copied},
                           {"routed_pairs", l.routed_pairs},
                           {"plan_ms", l.times.plan_ms},
                           {"reroute_ms", l.times.reroute_ms},
                           {"weight_sync_ms", l.times.weight_sync_ms},
                           {"dispatch_ms", l.times.dispatch_ms},
                           {"expert_ffn_ms", l.times.expert_ffn_ms},
                           {"combine_ms", l.times.combine_ms},
                           {"grad_reduce_ms", l.times.grad_reduce_ms},
                           {"total_ms", l.times.total_ms}});
  }
  j["config"] = config::to_json(c, config::kRunLayer);  // re-run with --config
  std::cout << j.dump(2) << "\n";
}
#endif

void run(const RunLayerArgs& a) {
  // Bad input first (exit 2), then what the machine lacks (exit 1).
  [[maybe_unused]] const config::ExperimentConfig c = resolve_config(a.cli, config::kRunLayer);
  require_cuda_build("run-layer");
#if RACKEP_HAVE_CUDA
  if (c.model.empty())
    throw InputError("--model", "model", "run-layer needs --model (expert hidden/FFN sizes)");
  if (c.trace.empty())
    throw InputError("--trace", "trace", "run-layer needs --trace (a canonical trace directory)");
  if (c.balancers.size() != 1)
    throw InputError("--balancers", std::to_string(c.balancers.size()) + " names",
                     "run-layer runs exactly one balancer");
  kernels::require_gpus(1);  // before reading anything: "no CUDA GPU found" is the first thing a user sees
  // Under mpirun every process runs this command: one process per GPU, or a clear refusal.
  const int launched = mpi_launcher_world_size();
  if (launched > 1 && RACKEP_HAVE_MPI == 0)
    throw RuntimeError("run-layer: started by an MPI launcher with " + std::to_string(launched) +
                       " processes, but rackep was built without MPI (install libopenmpi-dev, "
                       "reconfigure and rebuild), or run one process with --gpus K");
  if (launched > 1 && c.gpus)
    throw InputError("--gpus", std::to_string(*c.gpus), "not used under mpirun: one process per GPU");
  const MoeShape model = read_moe_shape(c.model);
  TraceReader reader(c.trace);
  const TraceManifest& m = reader.manifest();
  kernels::RunLayerConfig cfg;
  cfg.shape = ClusterShape::from_experts(m.num_ranks, m.num_experts, c.slots, c.domain.value_or(m.num_ranks),
                                         "--trace/--slots/--domain");
  cfg.dims = FfnDims{model.hidden, model.expert_ffn};
  cfg.balancer = c.balancers.front();
  cfg.options = c.options;
  cfg.weight_sync.mode = parse_weight_sync_mode(c.weight_sync, "--weight-sync");
  cfg.backward = c.backward;
  cfg.check = c.check;
  cfg.check_plans = c.check_plans || check_plans_by_default();
  cfg.gpus = c.gpus.value_or(0);
  cfg.mpi = launched > 1;
  std::vector<kernels::LayerRecord> records;
  TraceRecord rec;
  int64_t index = 0;
  while (static_cast<int64_t>(records.size()) < *c.max_records && reader.next(rec)) {
    if (index++ < c.skip_records) continue;
    records.push_back({rec.layer, rec.microbatch, rec.loads});
  }
  if (records.empty()) throw InputError("--trace", c.trace, "no records in the requested slice");
  kernels::RunLayerReport rep;
#if RACKEP_TOOLS_MPI
  if (cfg.mpi) {
    // This process owns MPI, so that a failure in one process can end the job (the others may be waiting
    // for it in NCCL or MPI) after saying why.
    MpiJob job;
    try {
      rep = kernels::run_layers(cfg, records);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rackep: error: run-layer (MPI rank %d of %d): %s\n", job.rank(), job.size(),
                   e.what());
      std::fflush(stderr);
      const auto* err = dynamic_cast<const Error*>(&e);
      job.abort(err != nullptr ? exit_code(err->kind()) : 1);
    }
  } else {
    rep = kernels::run_layers(cfg, records);
  }
#else
  rep = kernels::run_layers(cfg, records);
#endif
  if (rep.process_rank != 0) return;  // MPI: process 0 reports for the job
  if (a.json) {
    print_json(rep, c);
  } else {
    print_report(rep);
  }
#endif
}

}  // namespace

void add_run_layer_command(CLI::App& app) {
  auto args = std::make_shared<RunLayerArgs>();
  CLI::App* cmd = app.add_subcommand("run-layer", kRunLayerHelp);
  add_config_options(*cmd, config::kRunLayer, args->cli);
  cmd->add_flag("--json", args->json,
                "print the per-record times as JSON instead of the table (with the resolved config)");
  cmd->callback([args] { run(*args); });
}

}  // namespace rackep::tools
