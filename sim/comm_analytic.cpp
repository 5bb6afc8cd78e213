#include <algorithm>

#include "core/error.hpp"
#include "sim/comm_model.hpp"

namespace rackep::sim {

Fidelity parse_fidelity(const std::string& text) {
  if (text == "ptask") return Fidelity::kPtask;
  if (text == "flow") return Fidelity::kFlow;
  if (text == "analytic") return Fidelity::kAnalytic;
  throw InputError("--fidelity", text, "must be ptask, flow or analytic");
}

const char* to_string(Fidelity f) {
  switch (f) {
    case Fidelity::kPtask:
      return "ptask";
    case Fidelity::kFlow:
      return "flow";
    case Fidelity::kAnalytic:
      return "analytic";
  }
  return "?";
}

nlohmann::json fabric_to_json(const Fabric& f) {
  nlohmann::json j = {{"topology", f.topology_name},
                      {"num_ranks", f.num_ranks},
                      {"domain_size", f.domain_size},
                      {"num_domains", f.num_domains()},
                      {"port_bytes_per_s_effective", f.port_bytes_per_s},
                      {"port_latency_s", f.port_latency_s},
                      {"intra_domain_route", "port_up[src], port_down[dst]"},
                      {"intra_domain_route_latency_s", f.intra_latency_s()}};
  if (f.has_scale_out) {
    j["nic_bytes_per_s_effective"] = f.nic_bytes_per_s;
    j["nic_latency_s"] = f.nic_latency_s;
    j["core_latency_s"] = f.core_latency_s;
    j["domain_uplink_bytes_per_s"] = f.uplink_bytes_per_s;
    j["inter_domain_route"] =
        f.uplink_bytes_per_s > 0.0
            ? "nic_up[src], uplink_up[src domain], core, uplink_down[dst domain], nic_down[dst]"
            : "nic_up[src], core, nic_down[dst]";
    j["inter_domain_route_latency_s"] = f.inter_latency_s();
  }
  return j;
}

namespace {

class AnalyticCommModel final : public CommModel {
 public:
  explicit AnalyticCommModel(const Fabric& fabric) : fabric_(fabric) {}
  Fidelity fidelity() const override { return Fidelity::kAnalytic; }
  void phase(const TrafficMatrix& m, std::vector<double>& done_s) override {
    done_s.assign(fabric_.num_ranks, analytic_phase_time_s(fabric_, m));
  }
  void run(const std::function<void()>& body) override { body(); }
  nlohmann::json describe() const override {
    return {{"fidelity", "analytic"}, {"fabric", fabric_to_json(fabric_)}};
  }

 private:
  Fabric fabric_;
};

}  // namespace

std::unique_ptr<CommModel> make_analytic_comm_model(const Fabric& fabric) {
  return std::make_unique<AnalyticCommModel>(fabric);
}

std::unique_ptr<CommModel> make_comm_model(Fidelity fidelity, const Fabric& fabric, double host_flops_per_s) {
  if (fidelity == Fidelity::kAnalytic) return make_analytic_comm_model(fabric);
  if (fidelity == Fidelity::kFlow && fabric.num_ranks > kMaxFlowRanks) {
    throw InputError("--fidelity", "flow",
                     "per-flow simulation is limited to " + std::to_string(kMaxFlowRanks) + " ranks (got " +
                         std::to_string(fabric.num_ranks) +
                         "): its cost grows with the square of concurrent flows; use ptask");
  }
  return make_simgrid_comm_model(fidelity, fabric, host_flops_per_s, /*compress=*/true);
}

}  // namespace rackep::sim
