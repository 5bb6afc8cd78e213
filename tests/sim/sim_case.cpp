// sim_case: runs one SimGrid-backed case in its own process (SimGrid 3.32 allows one engine per process) and
// prints the result as JSON on stdout. Driven by engine_test.cpp.
//   sim_case phase <fidelity> <topology file> <ranks> <matrix: two|skewed|mixed> [full]
//   sim_case dag <streams|shared-link|sm-hold|peer> <fidelity>   hand-worked graphs on
//   tests/sim/data/two_gpu.json sim_case report <fidelity> [key=value ...]   a small end-to-end simulation,
//   JSON report
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>

#include "sim/engine.hpp"
#include "sim/report.hpp"
#include "tests/sim/test_matrices.hpp"

namespace {

using namespace rackep::sim;

std::shared_ptr<const SparseTraffic> one_flow(int src, int dst, double bytes) {
  auto t = std::make_shared<SparseTraffic>();
  t->src = {src};
  t->dst = {dst};
  t->bytes = {bytes};
  return t;
}

Collective coll(std::shared_ptr<const SparseTraffic> t, int sms = 0) {
  Collective c;
  c.traffic = std::move(t);
  c.sms = sms;
  return c;
}

// The graphs of engine_test.cpp; the platform is two GPUs with 1e11 B/s ports of 1 us latency, 132 SMs.
StepGraph dag(const std::string& name) {
  StepGraph g(2);
  if (name == "streams") {
    // 1 s of compute on the compute stream, a 2 s transfer (2e11 B) on the comm stream: ends at the max.
    g.add_compute(Phase::kAttention, kCompute, 0, 0, {1.0, 1.0});
    g.add_collective(Phase::kDispatch, kLane0Comm, 0, 0, coll(one_flow(0, 1, 2e11)));
  } else if (name == "shared-link") {
    // Two 1e11 B transfers 0 -> 1 on two lanes at once share port 0 (up) and port 1 (down): 2 s each.
    g.add_collective(Phase::kDispatch, kLane0Comm, 0, 0, coll(one_flow(0, 1, 1e11)));
    g.add_collective(Phase::kDispatch, kLane1Comm, 0, 1, coll(one_flow(0, 1, 1e11)));
  } else if (name == "sm-hold") {
    // A comm kernel holding 20 of 132 SMs for 5 s runs beside a 1 s GEMM: the GEMM takes 132/112 s.
    g.add_compute(Phase::kExperts, kCompute, 0, 0, {1.0, 1.0});
    g.add_collective(Phase::kDispatch, kLane1Comm, 0, 0, coll(one_flow(0, 1, 5e11), 20));
  } else if (name == "chain") {
    // compute 1 s -> transfer 1 s -> compute 1 s, each waiting for the previous: 3 s (+ 2 us latency).
    const uint32_t a = g.add_compute(Phase::kAttention, kCompute, 0, 0, {1.0, 1.0});
    const uint32_t d = g.add_collective(Phase::kDispatch, kLane0Comm, 0, 0, coll(one_flow(0, 1, 1e11)), {a});
    g.add_compute(Phase::kExperts, kCompute, 0, 0, {1.0, 1.0}, {d});
  } else {
    throw std::invalid_argument("unknown dag case " + name);
  }
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 6 && std::strcmp(argv[1], "phase") == 0) {
      const Fidelity fidelity = parse_fidelity(argv[2]);
      const Topology topo = load_topology(argv[3]);
      const Fabric fabric = make_fabric(topo, {std::stoi(argv[4]), 0, 1.0, 1.0});
      const TrafficMatrix m = rackep::sim::testing::make_matrix(argv[5], fabric.num_ranks);
      const bool full = argc > 6 && std::strcmp(argv[6], "full") == 0;
      StepEngine engine({fidelity, fabric, 132, false, !full});
      StepGraph g(fabric.num_ranks);
      Collective c;
      c.traffic = std::make_shared<const SparseTraffic>(
          SparseTraffic::from_dense(full ? m : compress_traffic(fabric, m)));
      g.add_collective(Phase::kDispatch, kLane0Comm, 0, 0, c);
      const StepResult r = engine.run(g);
      std::printf("{\"time_s\": %.12e, \"analytic_s\": %.12e}\n", r.span_s, analytic_phase_time_s(fabric, m));
      return 0;
    }
    if (argc >= 4 && std::strcmp(argv[1], "dag") == 0) {
      const Topology topo = load_topology(std::string(RACKEP_SOURCE_DIR) + "/tests/sim/data/two_gpu.json");
      const Fabric fabric = make_fabric(topo, {2, 0, 1.0, 1.0});
      StepEngine engine({parse_fidelity(argv[3]), fabric, 132, false, false});
      const StepGraph g = dag(argv[2]);
      const StepResult r = engine.run(g);
      nlohmann::json ops = nlohmann::json::array();
      for (size_t i = 0; i < g.ops().size(); ++i) ops.push_back({r.start[i * 2], r.end[i * 2]});
      std::cout << nlohmann::json{{"span_s", r.span_s}, {"ops", ops}}.dump() << "\n";
      return 0;
    }
    if (argc >= 3 && std::strcmp(argv[1], "report") == 0) {
      SimConfig c;
      c.fidelity = parse_fidelity(argv[2]);
      c.ranks = 8;
      c.tokens_per_rank = 512;
      c.microbatches = 2;
      c.trace = "esft:intent";
      for (int i = 3; i < argc; ++i) {
        const std::string kv = argv[i];
        const size_t eq = kv.find('=');
        const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
        if (k == "schedule")
          c.schedule = v;
        else if (k == "mode")
          c.mode = parse_mode(v);
        else if (k == "pp")
          c.pp = std::stoi(v);
        else if (k == "dp")
          c.dp = std::stoi(v);
        else if (k == "zero")
          c.zero = std::stoi(v);
        else if (k == "model")
          c.model = v;
        else if (k == "topology")
          c.topology = v;
        else if (k == "trace")
          c.trace = v;
        else if (k == "ranks")
          c.ranks = std::stoi(v);
        else if (k == "tokens")
          c.tokens_per_rank = std::stoll(v);
        else if (k == "microbatches")
          c.microbatches = std::stoll(v);
        else if (k == "calibration")
          c.calibration = v;
        else if (k == "balancers") {
          c.balancers.clear();
          for (size_t a = 0, b; a <= v.size(); a = b + 1) {
            b = v.find(',', a);
            if (b == std::string::npos) b = v.size();
            c.balancers.push_back(v.substr(a, b - a));
          }
        } else if (k == "imbalance")
          c.imbalance = std::stod(v);
        else if (k == "slots")
          c.slots = std::stoi(v);
        else if (k == "precision")
          c.precision = parse_precision(v);
        else
          throw std::invalid_argument("unknown key " + k);
      }
      const SimReport r = run_simulation(c);
      std::cout << report_to_json(r).dump(2) << "\n";
      return 0;
    }
    std::fprintf(stderr, "usage: sim_case phase ... | dag <case> <fidelity> | report <fidelity> [k=v ...]\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sim_case: error: %s\n", e.what());
    return 1;
  }
}
