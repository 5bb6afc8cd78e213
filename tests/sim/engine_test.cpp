// SimGrid-backed fidelities. SimGrid 3.32 allows one engine per process, so every case runs in its own
// sim_case process and this test reads its JSON output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

#include "tests/cli_util.hpp"

namespace {

const std::string kRoot = RACKEP_SOURCE_DIR;

// The case's stdout (its JSON); stderr (logs, sanitizer reports) is kept apart and shown on failure.
std::string run(const std::string& args) {
  const std::string cmd = std::string(SIM_CASE_EXE) + " " + args;
  const rackep::test::CliRun r = rackep::test::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.text();
  return r.out;
}

double phase_time(const std::string& fidelity, const std::string& topology, int ranks,
                  const std::string& matrix, const std::string& extra = "") {
  const std::string out = run("phase " + fidelity + " " + topology + " " + std::to_string(ranks) + " " +
                              matrix + (extra.empty() ? "" : " " + extra));
  return nlohmann::json::parse(out)["time_s"].get<double>();
}

TEST(SimEngine, TwoRanksOneLinkExactInEveryFidelity) {
  // 1e9 B at 1e11 B/s + two 1 us ports = 0.010002 s.
  const std::string topo = kRoot + "/tests/sim/data/two_gpu.json";
  for (const char* f : {"analytic", "ptask", "flow"}) {
    EXPECT_NEAR(phase_time(f, topo, 2, "two"), 0.010002, 1e-9) << f;
  }
}

TEST(SimEngine, FidelitiesAgreeOnASkewedSingleTierRack) {
  const std::string topo = kRoot + "/topologies/gb200-nvl72.json";
  const double analytic = phase_time("analytic", topo, 16, "skewed");
  const double ptask = phase_time("ptask", topo, 16, "skewed");
  const double flow = phase_time("flow", topo, 16, "skewed");
  EXPECT_NEAR(ptask / analytic, 1.0, 1e-6);
  EXPECT_NEAR(flow / analytic, 1.0, 0.01);
}

TEST(SimEngine, CompressedPtaskEqualsFullPtaskOnTwoTiers) {
  const std::string topo = kRoot + "/tests/sim/data/two_domains.json";
  const double full = phase_time("ptask", topo, 16, "mixed", "full");
  const double compressed = phase_time("ptask", topo, 16, "mixed");
  const double analytic = phase_time("analytic", topo, 16, "mixed");
  EXPECT_NEAR(compressed / full, 1.0, 1e-9);
  EXPECT_NEAR(analytic / full, 1.0, 1e-6);
}

TEST(SimEngine, PtaskReportIsByteIdenticalAcrossRuns) {
  const std::string a = run("report ptask");
  const std::string b = run("report ptask");
  EXPECT_EQ(a, b);
  EXPECT_NE(a.find("ultraep"), std::string::npos);
}

}  // namespace
