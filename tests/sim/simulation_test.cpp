// Simulator input checks that fail before a SimGrid engine exists (so several per process); end-to-end
// simulations run in sim_case processes (engine_test.cpp).
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "sim/report.hpp"
#include "sim/simulator.hpp"

namespace rackep::sim {
namespace {

SimConfig balanced_config() {
  // The deterministic rho = 1 pattern of the synthetic generator: every source rank sends exactly
  // T k / L = 512 x 6 / 64 = 48 tokens to every expert, so every rank is perfectly balanced.
  SimConfig c;
  c.trace = "synthetic:zipf";
  c.imbalance = 1.0;
  c.ranks = 8;
  c.tokens_per_rank = 512;
  c.microbatches = 2;
  c.slots = 0;
  c.balancers = {"none", "ultraep", "ultraep-legacy", "eplb", "lplb", "ideal"};
  return c;
}

TEST(SimSimulation, FlowFidelityRefusesLargeRanks) {
  SimConfig c = balanced_config();
  c.fidelity = Fidelity::kFlow;
  c.topology = "gb200-nvl72x8";
  c.ranks = 256;
  c.domain = 64;
  c.model = "deepseek-v3";
  c.tokens_per_rank = 64;
  c.microbatches = 1;
  try {
    run_simulation(c);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.source(), "--fidelity");
    EXPECT_NE(std::string(e.what()).find("144"), std::string::npos);
  }
}

}  // namespace
}  // namespace rackep::sim
