// The SimGrid step engine: hand-worked graphs, fidelity agreement on single phases, and schedule invariants
// on end-to-end simulations. SimGrid 3.32 allows one engine per process, so every case runs in its own
// sim_case process and this test reads its JSON output (stdout only; stderr is kept apart).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "tests/cli_util.hpp"

namespace {

const std::string kRoot = RACKEP_SOURCE_DIR;

// The case's stdout parsed as JSON; stderr (logs, sanitizer reports) is kept apart and shown on failure.
nlohmann::json run(const std::string& args) {
  const std::string cmd = std::string(SIM_CASE_EXE) + " " + args;
  const rackep::test::CliRun r = rackep::test::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.text();
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json::object();
}

double phase_time(const std::string& fidelity, const std::string& topology, int ranks,
                  const std::string& matrix, const std::string& extra = "") {
  return run("phase " + fidelity + " " + topology + " " + std::to_string(ranks) + " " + matrix +
             (extra.empty() ? "" : " " + extra))["time_s"]
      .get<double>();
}

TEST(SimEngine, TwoRanksOneLinkExactInEveryFidelity) {
  // 1e9 B at 1e11 B/s + two 1 us ports = 0.010002 s.
  const std::string topo = kRoot + "/tests/sim/data/two_gpu.json";
  for (const char* f : {"ptask", "flow"}) EXPECT_NEAR(phase_time(f, topo, 2, "two"), 0.010002, 1e-9) << f;
}

TEST(SimEngine, FidelitiesAgreeWithTheBoundOnASkewedSingleTierRack) {
  const std::string topo = kRoot + "/topologies/gb200-nvl72.json";
  const nlohmann::json p = run("phase ptask " + topo + " 16 skewed");
  const double flow = phase_time("flow", topo, 16, "skewed");
  EXPECT_NEAR(p["time_s"].get<double>() / p["analytic_s"].get<double>(), 1.0, 1e-6);
  EXPECT_NEAR(flow / p["analytic_s"].get<double>(), 1.0, 0.01);
}

TEST(SimEngine, CompressedPtaskEqualsFullPtaskOnTwoTiers) {
  const std::string topo = kRoot + "/tests/sim/data/two_domains.json";
  const double full = phase_time("ptask", topo, 16, "mixed", "full");
  const double compressed = phase_time("ptask", topo, 16, "mixed");
  EXPECT_NEAR(compressed / full, 1.0, 1e-9);
}

TEST(SimEngine, IndependentStreamsEndAtTheMax) {
  for (const char* f : {"ptask", "flow"}) {
    const nlohmann::json r = run(std::string("dag streams ") + f);
    EXPECT_NEAR(r["ops"][0][1].get<double>(), 1.0, 1e-9) << f;
    EXPECT_NEAR(r["span_s"].get<double>(), 2.0 + 2e-6, 1e-9) << f;
  }
}

TEST(SimEngine, TwoFlowsOnOneLinkShareIt) {
  for (const char* f : {"ptask", "flow"}) {
    const nlohmann::json r = run(std::string("dag shared-link ") + f);
    EXPECT_NEAR(r["ops"][0][1].get<double>(), 2.0 + 2e-6, 1e-6) << f;
    EXPECT_NEAR(r["ops"][1][1].get<double>(), 2.0 + 2e-6, 1e-6) << f;
  }
}

TEST(SimEngine, CommKernelHolding20Of132SmsSlowsAConcurrentGemm) {
  const nlohmann::json r = run("dag sm-hold ptask");
  EXPECT_NEAR(r["ops"][0][1].get<double>(), 132.0 / 112.0, 1e-9);  // the GEMM
  EXPECT_NEAR(r["ops"][1][1].get<double>(), 5.0 + 2e-6, 1e-9);     // the transfer is not slowed
}

TEST(SimEngine, DependenciesChainAcrossStreams) {
  const nlohmann::json r = run("dag chain ptask");
  EXPECT_NEAR(r["ops"][1][0].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(r["span_s"].get<double>(), 3.0 + 2e-6, 1e-9);
}

double step(const std::string& args) {
  const nlohmann::json r = run("report ptask " + args);
  return r["balancers"][0]["step_s"].get<double>();
}

TEST(SimSchedules, DualPipeNoSlowerThan1F1BNoSlowerThanSequential) {
  const std::string base = "balancers=ultraep ranks=16 tokens=2048 microbatches=4";
  const double seq = step(base + " schedule=sequential");
  const double f1b = step(base + " schedule=1f1b");
  const double dual = step(base + " schedule=dualpipe");
  EXPECT_LE(f1b, seq * (1 + 1e-12));
  EXPECT_LT(dual, f1b);
}

TEST(SimSchedules, AllEqualWithoutCommunication) {
  // One rank: no bytes move; a calibration without fixed communication costs.
  std::ifstream in(kRoot + "/configs/calibration/default.json");
  nlohmann::json cal = nlohmann::json::parse(in);
  for (const char* k : {"all_to_all_launch_s", "allgather_launch_s", "weight_sync_launch_s"})
    cal[k]["value"] = 0.0;
  const std::string path = std::string(::testing::TempDir()) + "/no_launch_calibration.json";
  std::ofstream(path) << cal.dump(2);
  const std::string base = "balancers=none ranks=1 tokens=1024 microbatches=4 calibration=" + path +
                           " trace=synthetic:zipf imbalance=1";
  const double seq = step(base + " schedule=sequential");
  EXPECT_NEAR(step(base + " schedule=1f1b") / seq, 1.0, 1e-9);
  EXPECT_NEAR(step(base + " schedule=dualpipe") / seq, 1.0, 1e-9);
}

TEST(SimSchedules, TwoBatchPrefillNoSlowerThanSequential) {
  // DeepSeek-V3 across two H800 nodes: internode all-to-alls comparable to the compute.
  const std::string base =
      "balancers=ultraep mode=prefill model=deepseek-v3 topology=hgx-h800 ranks=16 tokens=4096 "
      "microbatches=1 "
      "precision=fp8 trace=synthetic:zipf imbalance=1.5";
  EXPECT_LT(step(base + " schedule=two-batch"), step(base + " schedule=sequential"));
}

TEST(SimSimulation, BalancedTraceEveryBalancerMatchesIdeal) {
  // The deterministic rho = 1 synthetic pattern: every rank perfectly balanced, nothing to replicate.
  const nlohmann::json r =
      run("report ptask trace=synthetic:zipf imbalance=1 ranks=8 tokens=512 slots=0 "
          "balancers=none,ultraep,eplb,lplb,ideal");
  const nlohmann::json& bs = r["balancers"];
  ASSERT_EQ(bs.size(), 5u);
  const double ideal = bs[4]["step_s"].get<double>();
  for (const nlohmann::json& b : bs) {
    EXPECT_DOUBLE_EQ(b["imbalance"].get<double>(), 1.0) << b["name"];
    EXPECT_EQ(b["replicas"].get<double>(), 0.0) << b["name"];
    EXPECT_GE(b["step_s"].get<double>(), ideal * (1 - 1e-12)) << b["name"];
  }
  EXPECT_NEAR(bs[0]["step_s"].get<double>() / ideal, 1.0, 1e-9);  // none: nothing to balance, no overhead
}

TEST(SimSimulation, PrefillRunsForwardOnly) {
  const std::string base = "report ptask trace=synthetic:zipf imbalance=1 ranks=8 tokens=512 balancers=none";
  const nlohmann::json p = run(base + " mode=prefill");
  const nlohmann::json t = run(base);
  EXPECT_GT(t["balancers"][0]["step_s"].get<double>(), 2.0 * p["balancers"][0]["step_s"].get<double>());
  EXPECT_DOUBLE_EQ(p["global_tokens_per_step"].get<double>(), 8 * 512);
}

TEST(SimSimulation, ZeroOneShardsAdamStateOverDataParallelism) {
  // Per parameter: 2 + 2 bytes of BF16 weight and gradient everywhere, 12 bytes of FP32 Adam state divided
  // over the data-parallel group (ZeRO-1): EP x DP ranks for the replicated parameters R (attention, shared
  // experts, dense layer, embeddings), DP for the rank's experts E. Three runs give R and E back.
  const std::string base = "report ptask balancers=none microbatches=1 ";  // DeepSeek-V2-Lite, EP 8
  auto state = [&](const std::string& args) {
    return run(base + args)["inputs"]["model_state_gib"].get<double>() * 1024.0 * 1024.0 * 1024.0;
  };
  const double full = state("zero=0 dp=4"), zero1 = state("zero=1 dp=1"), zero1_dp4 = state("zero=1 dp=4");
  EXPECT_DOUBLE_EQ(state("zero=0 dp=1"), full);  // without sharding DP changes nothing
  // full = 16 (R + E); zero1 = 4 (R + E) + 12 (R / 8 + E).
  const double sum = full / 16.0;
  const double replicated = (full - zero1) / (12.0 * (1.0 - 1.0 / 8.0));
  const double experts = sum - replicated;
  // E by hand: 26 MoE layers x 64 / 8 = 8 master experts x 3 x 2048 x 1408 (gate, up, down).
  EXPECT_NEAR(experts, 26.0 * 8.0 * 3.0 * 2048.0 * 1408.0, 1.0);
  EXPECT_GT(replicated, 0.0);
  EXPECT_NEAR(zero1_dp4, 4.0 * sum + 12.0 * (replicated / 32.0 + experts / 4.0), 1e-6 * zero1_dp4);
}

TEST(SimEngine, PtaskReportIsByteIdenticalAcrossRuns) {
  const nlohmann::json a = run("report ptask");
  const nlohmann::json b = run("report ptask");
  EXPECT_EQ(a.dump(), b.dump());
  EXPECT_NE(a.dump().find("ultraep"), std::string::npos);
}

}  // namespace
