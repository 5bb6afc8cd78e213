// File: sim/comm_model.hpp
// The communication-cost interface the step loop runs against (STYLE.md rule 3: the loop does not know which
// model answers). A phase is a collective that starts when every rank is ready (all-to-all phases are
// synchronisation points, HARDWARE.md §E.5); the model says when each rank has sent and received all of its
// bytes. Three fidelities (DESIGN.md): `analytic` (closed form, sim/fabric.hpp), `ptask` (default: one
// SimGrid parallel task per phase carrying the byte matrix, host/model:ptask_L07) and `flow` (one SimGrid
// comm per pair between actors through mailboxes, CM02 with cross-traffic and TCP-gamma off; at most
// kMaxFlowRanks ranks). Only one SimGrid engine may exist per process (SimGrid 3.32): create at most one
// ptask/flow model per process. Usage:
//   std::unique_ptr<CommModel> cm = make_comm_model(Fidelity::kPtask, fabric, gpu);
//   cm->run([&] { std::vector<double> done_s; cm->phase(matrix, done_s); });
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/fabric.hpp"

namespace rackep::sim {

enum class Fidelity { kPtask, kFlow, kAnalytic };
Fidelity parse_fidelity(const std::string& text);  ///< InputError("--fidelity", ...)
const char* to_string(Fidelity f);

/// Per-flow simulation cost grows with the square of concurrent flows (HARDWARE.md §A.7): refuse beyond this.
constexpr int kMaxFlowRanks = 144;

class CommModel {
 public:
  virtual ~CommModel() = default;
  virtual Fidelity fidelity() const = 0;
  /// Simulates one phase that starts at once on all ranks. `done_s[r]` (resized to N) is the time from the
  /// start until rank r has sent and received all of its bytes; all entries are equal except under `flow`.
  /// A phase with no network bytes takes 0. Must be called from inside run().
  virtual void phase(const TrafficMatrix& m, std::vector<double>& done_s) = 0;
  /// Runs `body` in simulation context (SimGrid: inside a controller actor while the engine runs); exceptions
  /// thrown by `body` propagate out of run(). Call once per model.
  virtual void run(const std::function<void()>& body) = 0;
  /// What was built (hosts, links, routes, configuration), for --dump-topology.
  virtual nlohmann::json describe() const = 0;
};

/// Throws InputError("--fidelity", ...) for `flow` above kMaxFlowRanks ranks, and when a SimGrid-backed model
/// already exists in this process.
std::unique_ptr<CommModel> make_comm_model(Fidelity fidelity, const Fabric& fabric, double host_flops_per_s);

/// The `analytic` model (also used directly by tests and sweeps).
std::unique_ptr<CommModel> make_analytic_comm_model(const Fabric& fabric);
/// SimGrid-backed models (sim/comm_simgrid.cpp). `compress` (ptask only) hands SimGrid the load-preserving
/// compressed matrix of compress_traffic() instead of the full one; the result is identical.
std::unique_ptr<CommModel> make_simgrid_comm_model(Fidelity fidelity, const Fabric& fabric,
                                                   double host_flops_per_s, bool compress);

/// The fabric as JSON (effective bandwidths, latencies, domain layout).
nlohmann::json fabric_to_json(const Fabric& fabric);

}  // namespace rackep::sim
