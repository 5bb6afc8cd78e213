// File: sim/engine.hpp
// Executes a StepGraph in SimGrid 3.32 (docs/DESIGN.md "The simulator"). Hosts are GPUs, links are the
// fabric's NVLink ports and NICs (plus, for pipeline parallelism, one peer host per rank standing for the
// neighbour stage, reached over the rank's NIC). Every (rank, stream) is an actor that runs its operations in
// order; compute operations are executions on the rank's host; a collective is one SimGrid activity over its
// byte matrix, started when the last participating rank arrives. Concurrent activities share hosts and links
// inside SimGrid: two microbatches' all-to-alls, grad_reduce against dispatch, PP sends against the EP
// traffic, two compute streams on one GPU. While a communication kernel runs it holds `sms` SMs of its rank:
// the host's speed drops to (num_sms - held) / num_sms of the GPU (a SimGrid pstate per SM count), so compute
// that runs concurrently slows and compute that runs alone keeps the whole GPU.
// Fidelities: `ptask` (default; one parallel task per collective, host/model:ptask_L07: every collective ends
// when its most loaded link drains) and `flow` (one SimGrid comm per (src, dst) pair, CM02 max-min sharing
// with the TCP corrections off; at most kMaxFlowRanks ranks). SimGrid 3.32 allows one engine per process:
// create one StepEngine and call run() once per balancer. Usage:
//   StepEngine e({Fidelity::kPtask, fabric, /*num_sms=*/132, /*peers=*/false, /*compress=*/true});
//   StepResult r = e.run(graph);   // r.span_s, r.start/end per (op, rank)
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "sim/fabric.hpp"
#include "sim/step_graph.hpp"

namespace rackep::sim {

enum class Fidelity { kPtask, kFlow };
Fidelity parse_fidelity(const std::string& text);  ///< InputError("--fidelity", ...)
const char* to_string(Fidelity f);

/// Per-flow simulation cost grows with the square of concurrent flows (docs/HARDWARE.md): refuse beyond this.
constexpr int kMaxFlowRanks = 144;

struct EngineConfig {
  Fidelity fidelity = Fidelity::kPtask;
  Fabric fabric;
  int num_sms = 1;       ///< SMs per GPU
  bool peers = false;    ///< build one pipeline peer host per rank (PP sends)
  bool compress = true;  ///< ptask: hand SimGrid the load-preserving compressed matrices
};

struct StepResult {
  double span_s = 0.0;             ///< from the first operation's start to the last operation's end
  std::vector<double> start, end;  ///< [op * N + rank], relative to the step's start
};

class StepEngine {
 public:
  /// Throws InputError("--fidelity", ...) for `flow` above kMaxFlowRanks, a second engine in this process;
  /// InputError("--pp", ...) when peers are asked for on a fabric without NICs.
  explicit StepEngine(const EngineConfig& config);
  ~StepEngine();
  StepEngine(const StepEngine&) = delete;
  StepEngine& operator=(const StepEngine&) = delete;

  /// Simulates one step. The graph's rank count must match the fabric.
  StepResult run(const StepGraph& graph);
  /// What was built (hosts, links, example routes, configuration), for --dump-topology.
  nlohmann::json describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The fabric as JSON (effective bandwidths, latencies, domain layout).
nlohmann::json fabric_to_json(const Fabric& fabric);

}  // namespace rackep::sim
