#include "tools/sim_options.hpp"

#include <sstream>

namespace rackep::tools {

void add_sim_options(CLI::App& cmd, SimCliOptions& o) {
  cmd.add_option("--model", o.model, "model: a bundled name (configs/models/*.json) or a file")
      ->capture_default_str();
  cmd.add_option("--topology", o.topology, "topology: a bundled name (topologies/*.json) or a file")
      ->capture_default_str();
  cmd.add_option("--trace", o.trace,
                 "routing: a canonical trace directory, esft:<task>[,<task>] (shipped ESFT traces) or "
                 "synthetic:<zipf|drift|switch>")
      ->capture_default_str();
  cmd.add_option("--calibration", o.calibration,
                 "calibration: a bundled name (configs/calibration) or a file")
      ->capture_default_str();
  cmd.add_option("--balancers", o.balancers, "balancers to compare, by name (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  cmd.add_option("--mode", o.mode, "train (forward + backward) or prefill (forward only)")
      ->capture_default_str();
  cmd.add_option("--fidelity", o.fidelity,
                 "ptask (one SimGrid parallel task per collective) or flow (one comm per pair, "
                 "<= 144 ranks)")
      ->capture_default_str();
  cmd.add_option("--precision", o.precision, "GEMM and dispatch precision: bf16 or fp8")
      ->capture_default_str();
  cmd.add_option("--backward-comm-precision", o.backward_comm_precision,
                 "element type of combine_bwd (the gradient before the down-projection): bf16 or fp8; "
                 "default: as --precision");
  cmd.add_option("--schedule", o.schedule,
                 "train: sequential, 1f1b or dualpipe (default); prefill: sequential or two-batch (default)");
  cmd.add_option("--pp", o.pp, "pipeline stages; the simulated EP group is one stage")->capture_default_str();
  cmd.add_option("--ranks", o.ranks, "EP ranks (0: the trace's, or 32 for generated traces)")
      ->capture_default_str();
  cmd.add_option("--slots", o.slots, "redundant expert slots per rank")->capture_default_str();
  cmd.add_option("--domain", o.domain, "NVLink domain size override (0: the topology's)")
      ->capture_default_str();
  cmd.add_option("--tokens-per-rank", o.tokens_per_rank,
                 "tokens per rank per microbatch for generated traces (0: 4096 for esft, 8192 for synthetic)")
      ->capture_default_str();
  cmd.add_option("--microbatches", o.microbatches,
                 "replay at most this many microbatches (0: all; synthetic: 8; esft: 4, reusing its "
                 "sequences over shuffled passes when it holds fewer tokens)")
      ->capture_default_str();
  cmd.add_option("--imbalance", o.imbalance, "synthetic traces: target rank imbalance")
      ->capture_default_str();
  cmd.add_option("--seed", o.seed, "seed of trace composition / generation")->capture_default_str();
  cmd.add_option("--seq-len", o.seq_len,
                 "tokens per sequence for traces without sequences (0: tokens per rank)")
      ->capture_default_str();
  cmd.add_flag("--recompute", o.recompute, "full activation recompute in the backward pass");
  cmd.add_flag("--no-dedup", o.no_dedup,
               "dispatch one copy per (token, expert) instead of per (token, rank)");
  cmd.add_option("--weight-sync", o.weight_sync, "weight_sync plan mode: direct, adaptive or force_relay")
      ->capture_default_str();
  cmd.add_flag("--no-ptask-compress", o.no_ptask_compress,
               "hand SimGrid the full byte matrix instead of the load-preserving compressed one (same "
               "result, slower)");
}

sim::SimConfig to_sim_config(const SimCliOptions& o) {
  sim::SimConfig c;
  c.model = o.model;
  c.topology = o.topology;
  c.trace = o.trace;
  c.calibration = o.calibration;
  c.balancers = o.balancers;
  c.mode = sim::parse_mode(o.mode);
  c.fidelity = sim::parse_fidelity(o.fidelity);
  c.precision = sim::parse_precision(o.precision);
  c.backward_comm_precision = o.backward_comm_precision;
  c.schedule = o.schedule;
  c.pp = o.pp;
  c.ranks = o.ranks;
  c.slots = o.slots;
  c.domain = o.domain;
  c.tokens_per_rank = o.tokens_per_rank;
  c.microbatches = o.microbatches;
  c.imbalance = o.imbalance;
  c.seed = o.seed;
  c.seq_len = o.seq_len;
  c.recompute = o.recompute;
  c.dedup = !o.no_dedup;
  c.weight_sync_mode = o.weight_sync;
  c.ptask_compress = !o.no_ptask_compress;
  return c;
}

std::vector<std::string> to_args(const SimCliOptions& o) {
  std::string balancers;
  for (const auto& b : o.balancers) balancers += (balancers.empty() ? "" : ",") + b;
  std::ostringstream imbalance;
  imbalance.precision(17);
  imbalance << o.imbalance;
  std::vector<std::string> a = {"--model",
                                o.model,
                                "--topology",
                                o.topology,
                                "--trace",
                                o.trace,
                                "--calibration",
                                o.calibration,
                                "--balancers",
                                balancers,
                                "--mode",
                                o.mode,
                                "--fidelity",
                                o.fidelity,
                                "--precision",
                                o.precision,
                                "--pp",
                                std::to_string(o.pp),
                                "--ranks",
                                std::to_string(o.ranks),
                                "--slots",
                                std::to_string(o.slots),
                                "--domain",
                                std::to_string(o.domain),
                                "--tokens-per-rank",
                                std::to_string(o.tokens_per_rank),
                                "--microbatches",
                                std::to_string(o.microbatches),
                                "--imbalance",
                                imbalance.str(),
                                "--seed",
                                std::to_string(o.seed),
                                "--seq-len",
                                std::to_string(o.seq_len),
                                "--weight-sync",
                                o.weight_sync};
  if (!o.schedule.empty()) {
    a.push_back("--schedule");
    a.push_back(o.schedule);
  }
  if (!o.backward_comm_precision.empty()) {
    a.push_back("--backward-comm-precision");
    a.push_back(o.backward_comm_precision);
  }
  if (o.recompute) a.push_back("--recompute");
  if (o.no_dedup) a.push_back("--no-dedup");
  if (o.no_ptask_compress) a.push_back("--no-ptask-compress");
  return a;
}

}  // namespace rackep::tools
