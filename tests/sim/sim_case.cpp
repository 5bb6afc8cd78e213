// sim_case: runs one SimGrid-backed case in its own process (SimGrid 3.32 allows one engine per process) and
// prints the result as JSON on stdout. Driven by engine_test.cpp.
//   sim_case phase <fidelity> <topology file> <ranks> <matrix: two|skewed|mixed> [full]
//   sim_case report <fidelity>      a small end-to-end simulation, JSON report
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "sim/comm_model.hpp"
#include "sim/report.hpp"
#include "tests/sim/test_matrices.hpp"

int main(int argc, char** argv) {
  using namespace rackep::sim;
  try {
    if (argc >= 6 && std::strcmp(argv[1], "phase") == 0) {
      const Fidelity fidelity = parse_fidelity(argv[2]);
      const Topology topo = load_topology(argv[3]);
      const Fabric fabric = make_fabric(topo, {std::stoi(argv[4]), 0, 1.0, 1.0});
      const TrafficMatrix m = rackep::sim::testing::make_matrix(argv[5], fabric.num_ranks);
      const bool full = argc > 6 && std::strcmp(argv[6], "full") == 0;
      auto comm = fidelity == Fidelity::kAnalytic ? make_analytic_comm_model(fabric)
                                                  : make_simgrid_comm_model(fidelity, fabric, 1e15, !full);
      std::vector<double> done;
      comm->run([&] { comm->phase(m, done); });
      double worst = 0.0;
      for (double d : done) worst = std::max(worst, d);
      std::printf("{\"time_s\": %.12e}\n", worst);
      return 0;
    }
    if (argc >= 3 && std::strcmp(argv[1], "report") == 0) {
      SimConfig c;
      c.fidelity = parse_fidelity(argv[2]);
      c.ranks = 8;
      c.tokens_per_rank = 512;
      c.microbatches = 2;
      c.trace = "esft:intent";
      const SimReport r = run_simulation(c);
      std::cout << report_to_json(r).dump(2) << "\n" << format_table(r);
      return 0;
    }
    std::fprintf(stderr,
                 "usage: sim_case phase <fidelity> <topology> <ranks> <matrix> [full] | report <fidelity>\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sim_case: error: %s\n", e.what());
    return 1;
  }
}
