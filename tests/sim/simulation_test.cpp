// End-to-end simulations with the analytic fidelity (no SimGrid engine, so several per process).
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
  c.fidelity = Fidelity::kAnalytic;
  c.trace = "synthetic:zipf";
  c.imbalance = 1.0;
  c.ranks = 8;
  c.tokens_per_rank = 512;
  c.microbatches = 2;
  c.slots = 0;
  c.balancers = {"none", "ultraep", "ultraep-legacy", "eplb", "lplb", "ideal"};
  return c;
}

TEST(SimSimulation, BalancedTraceEveryBalancerEqualsIdeal) {
  const SimReport r = run_simulation(balanced_config());
  ASSERT_EQ(r.balancers.size(), 6u);
  const BalancerSummary& ideal = r.balancers.back();
  ASSERT_EQ(ideal.name, "ideal");
  for (const BalancerSummary& b : r.balancers) {
    EXPECT_DOUBLE_EQ(b.imbalance, 1.0) << b.name;
    EXPECT_EQ(b.replicas, 0.0) << b.name;
    // Identical work and traffic: the only difference is the balancing overhead on the critical path.
    EXPECT_NEAR(b.step_s - b.exposed_overhead_s, ideal.step_s, 1e-12) << b.name;
  }
  EXPECT_DOUBLE_EQ(r.balancers.front().step_s, ideal.step_s);  // none: no overhead at all
  EXPECT_DOUBLE_EQ(r.balancers.front().pct_of_ideal, 100.0);
}

TEST(SimSimulation, SameInputsGiveIdenticalOutput) {
  SimConfig c = balanced_config();
  c.trace = "esft:intent";
  c.slots = 2;
  c.balancers = {"none", "ultraep", "eplb", "ideal"};
  const SimReport a = run_simulation(c);
  const SimReport b = run_simulation(c);
  EXPECT_EQ(report_to_json(a).dump(), report_to_json(b).dump());
  EXPECT_EQ(format_table(a), format_table(b));
  // And the real trace is imbalanced, which ultraep fixes.
  EXPECT_GT(a.balancers[0].imbalance, 1.2);
  EXPECT_LT(a.balancers[1].imbalance, 1.1);
}

TEST(SimSimulation, PrefillRunsForwardOnly) {
  SimConfig c = balanced_config();
  c.mode = Mode::kPrefill;
  c.balancers = {"none"};
  SimConfig t = c;
  t.mode = Mode::kTrain;
  const SimReport p = run_simulation(c);
  const SimReport tr = run_simulation(t);
  // Two prefill passes of the same work; a training step of two microbatches costs more than both passes.
  EXPECT_GT(tr.balancers[0].step_s, 2.0 * p.balancers[0].step_s);
  EXPECT_DOUBLE_EQ(p.global_tokens_per_step, 8 * 512);
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
