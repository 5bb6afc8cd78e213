// `rackep run-layer --model M --trace T --balancer B [--gpus K]`: executes the MoE layers of a trace slice on
// the GPUs it finds (kernels/drivers.hpp) and prints per-phase times measured with CUDA events. One process
// drives K GPUs (EP ranks in contiguous blocks, NCCL between GPUs); under `mpirun -np K` each process drives
// one GPU (needs RACKEP_HAVE_MPI) and process 0 prints. Without the CUDA backend, or without a GPU, it fails
// with a clear message and a non-zero exit.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "rackep/config.hpp"
#include "tools/commands.hpp"
#include "tools/gpu_common.hpp"
#include "traces/trace_reader.hpp"
#if RACKEP_HAVE_CUDA
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"
#endif

namespace rackep::tools {
namespace {

struct RunLayerArgs {
  std::string model;
  std::string trace;
  std::string balancer = "ultraep";
  int redundant = 2;
  int domain = 0;
  int64_t max_records = 4;
  int64_t skip_records = 0;
  bool backward = false;
  bool no_check = false;
  int gpus = 0;
  std::string json_out;
  bool force = false;
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

void write_json(const kernels::RunLayerReport& rep, const std::string& path, bool force) {
  nlohmann::json j;
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
  OutputFile out(path, "--json", force);
  out.write(j.dump(2) + "\n");
  out.commit();
}
#endif

void run([[maybe_unused]] const RunLayerArgs& a) {
  require_cuda_build("run-layer");
#if RACKEP_HAVE_CUDA
  kernels::require_gpus(1);  // before reading anything: "no CUDA GPU found" is the first thing a user sees
  // Under mpirun every process runs this command: one process per GPU, or a clear refusal.
  const int launched = kernels::mpi_launcher_world_size();
  if (launched > 1 && RACKEP_HAVE_MPI == 0)
    throw std::runtime_error("run-layer: started by an MPI launcher with " + std::to_string(launched) +
                             " processes, but rackep was built without MPI (install libopenmpi-dev, "
                             "reconfigure and rebuild), or run one process with --gpus K");
  if (launched > 1 && a.gpus > 0)
    throw InputError("--gpus", std::to_string(a.gpus), "not used under mpirun: one process per GPU");
  const MoeShape model = read_moe_shape(a.model);
  TraceReader reader(a.trace);
  const TraceManifest& m = reader.manifest();
  kernels::RunLayerConfig cfg;
  cfg.shape =
      ClusterShape::from_experts(m.num_ranks, m.num_experts, a.redundant,
                                 a.domain > 0 ? a.domain : m.num_ranks, "--trace/--redundant/--domain");
  cfg.dims = FfnDims{model.hidden, model.expert_ffn};
  cfg.balancer = a.balancer;
  cfg.backward = a.backward;
  cfg.check = !a.no_check;
  cfg.gpus = a.gpus;
  cfg.mpi = launched > 1;
  std::vector<kernels::LayerRecord> records;
  TraceRecord rec;
  int64_t index = 0;
  while (static_cast<int64_t>(records.size()) < a.max_records && reader.next(rec)) {
    if (index++ < a.skip_records) continue;
    records.push_back({rec.layer, rec.microbatch, rec.loads});
  }
  if (records.empty()) throw InputError("--trace", a.trace, "no records in the requested slice");
  const kernels::RunLayerReport rep = kernels::run_layers(cfg, records);
  if (rep.process_rank != 0) return;  // MPI: process 0 reports for the job
  print_report(rep);
  if (!a.json_out.empty()) write_json(rep, a.json_out, a.force);
#endif
}

}  // namespace

void add_run_layer_command(CLI::App& app) {
  auto args = std::make_shared<RunLayerArgs>();
  CLI::App* cmd =
      app.add_subcommand("run-layer", "execute MoE layers of a trace slice on the GPUs found (CUDA backend)");
  cmd->add_option("--model", args->model,
                  "model config name (configs/models/) or file: expert hidden/FFN sizes")
      ->required();
  cmd->add_option("--trace", args->trace, "canonical trace directory")->required();
  cmd->add_option("--balancer", args->balancer, "balancer name (ultraep plans on the GPU)")
      ->capture_default_str();
  cmd->add_option("--redundant", args->redundant, "R: redundant slots per rank")->capture_default_str();
  cmd->add_option("--domain", args->domain, "G: ranks per NVLink domain (0: all ranks)")
      ->capture_default_str();
  cmd->add_option("--records", args->max_records, "records of the slice")->capture_default_str();
  cmd->add_option("--skip", args->skip_records, "records skipped before the slice")->capture_default_str();
  cmd->add_option(
         "--gpus", args->gpus,
         "GPUs to place the EP ranks on (contiguous blocks; EP size must be a multiple): 0 = all found "
         "(largest count dividing the EP size), 1 = every rank emulated on GPU 0; under mpirun: one "
         "process per GPU instead")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--backward", args->backward, "also run grad_reduce");
  cmd->add_flag("--no-check", args->no_check, "skip the CPU reference check of the first record");
  cmd->add_option("--json", args->json_out, "write the per-record times as JSON");
  cmd->add_flag("--force", args->force, "replace an existing --json file");
  cmd->callback([args] { run(*args); });
}

}  // namespace rackep::tools
