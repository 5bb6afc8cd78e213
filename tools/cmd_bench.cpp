// `rackep bench planner`: Google Benchmark of the UltraEP planner on the shapes of the UltraEP README
// microbenchmark (EP 64, L = 256, R = 2, top-8, 8192 tokens per rank, rank imbalance 1.5 / 2 / 3) and at rack
// scale (N = G = 72 with L = 576; N = 576 in 8 NVLink domains of 72 with L = 4608). Loads are sampled by the
// seeded Zipf generator of docs/ALGORITHMS.md §2.9. `rackep bench kernels` is the CUDA backend's (forwarded
// to rackep-gpu). Built with RACKEP_BUILD_BENCHMARKS=OFF, `bench planner` does not exist and nothing links
// Google Benchmark.
#include "tools/commands.hpp"

#if RACKEP_HAVE_BENCHMARK
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/metrics.hpp"
#include "core/ultraep.hpp"
#include "traces/synthetic.hpp"

namespace rackep::tools {
namespace {

struct PlannerCase {
  std::string name;
  ClusterShape shape;
  double imbalance;
  int samples;
  const char* paper;  // the UltraEP README's figures for this case, or ""
};

struct CaseData {
  PlannerCase c;
  std::vector<LoadMatrix> loads;
  std::vector<std::vector<int64_t>> w;
};

CaseData make_case(const PlannerCase& c) {
  SynthConfig sc;
  sc.num_ranks = c.shape.num_ranks;
  sc.num_experts = c.shape.num_experts();
  sc.top_k = 8;
  sc.tokens_per_rank = 8192;
  sc.imbalance = c.imbalance;
  sc.num_microbatches = c.samples;
  sc.seed = 33;
  SyntheticStream gen(sc);
  CaseData d{c, {}, {}};
  TraceRecord r;
  while (gen.next(r)) {
    d.w.push_back(r.loads.expert_totals());
    d.loads.push_back(r.loads);
  }
  return d;
}

// Solve only (the counterpart of the paper's update_placement kernel): W -> p2l, l2p, lcnt, quota.
void bm_solve(benchmark::State& state, const CaseData* d) {
  UltraEpPlanner planner(d->c.shape, {});
  size_t i = 0;
  for (auto _ : state) {
    const Plan& p = planner.plan(d->w[i]);
    benchmark::DoNotOptimize(p.lcnt.data());
    i = (i + 1) % d->w.size();
  }
}

// Solve + the per-source locality-aware split for every source rank (what the simulator consumes).
void bm_plan_and_split(benchmark::State& state, const CaseData* d) {
  auto balancer = make_ultraep_balancer(d->c.shape, {});
  size_t i = 0;
  for (auto _ : state) {
    PlanResult r = balancer->plan(d->loads[i], {0, 0});
    benchmark::DoNotOptimize(r.alloc.tokens.data());
    i = (i + 1) % d->loads.size();
  }
}

void print_outcomes(const std::vector<std::unique_ptr<CaseData>>& cases) {
  std::printf("\nPlanner outcomes (mean over the sampled microbatches; paper = UltraEP README, EP 64):\n");
  std::printf("%-24s %7s %7s %7s %9s %9s %9s   %s\n", "case", "before", "after", "LB", "max inst",
              "(largest)", "replicas", "paper: before -> after, max inst / replicas");
  for (const auto& d : cases) {
    auto balancer = make_ultraep_balancer(d->c.shape, {});
    double before = 0, after = 0, lb = 0, replicas = 0, max_inst_mean = 0;
    int max_inst = 0;
    for (const LoadMatrix& m : d->loads) {
      const PlanMetrics pm = measure_plan(m, balancer->plan(m, {0, 0}));
      before += pm.imbalance_before;
      after += pm.imbalance_after;
      lb += pm.domain_lower_bound;
      max_inst_mean += pm.max_instances;
      replicas += static_cast<double>(pm.total_replicas);
      max_inst = std::max(max_inst, pm.max_instances);
    }
    const double n = static_cast<double>(d->loads.size());
    std::printf("%-24s %7.3f %7.3f %7.3f %9.2f %9d %9.1f   %s\n", d->c.name.c_str(), before / n, after / n,
                lb / n, max_inst_mean / n, max_inst, replicas / n, d->c.paper);
  }
}

void run_planner_bench(std::vector<std::string> extra) {
  const std::vector<PlannerCase> cases = {
      {"ep64_L256_R2_imb1.5", {64, 4, 2, 64}, 1.5, 8, "1.51 -> 1.01, 4 / 38, GPU 67 us"},
      {"ep64_L256_R2_imb2", {64, 4, 2, 64}, 2.0, 8, "2.01 -> 1.01, 5 / 46, GPU 72 us"},
      {"ep64_L256_R2_imb3", {64, 4, 2, 64}, 3.0, 8, "3.03 -> 1.01, 6 / 51, GPU 78 us"},
      {"ep72_L576_R2_imb2", {72, 8, 2, 72}, 2.0, 4, ""},
      {"ep576_8x72_L4608_R2_imb2", {576, 8, 2, 72}, 2.0, 2, ""},
  };
  std::vector<std::unique_ptr<CaseData>> data;
  for (const auto& c : cases) {
    data.push_back(std::make_unique<CaseData>(make_case(c)));
    benchmark::RegisterBenchmark(("ultraep_solve/" + c.name).c_str(), bm_solve, data.back().get())
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("ultraep_plan_and_split/" + c.name).c_str(), bm_plan_and_split,
                                 data.back().get())
        ->Unit(benchmark::kMicrosecond);
  }
  std::vector<char*> argv;
  std::string prog = "rackep-bench-planner";
  argv.push_back(prog.data());
  for (auto& e : extra) argv.push_back(e.data());
  int argc = static_cast<int>(argv.size());
  benchmark::Initialize(&argc, argv.data());
  if (benchmark::ReportUnrecognizedArguments(argc, argv.data()))
    throw CLI::ValidationError("bench planner", "unrecognised Google Benchmark arguments");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_outcomes(data);
}

}  // namespace
}  // namespace rackep::tools
#endif  // RACKEP_HAVE_BENCHMARK

namespace rackep::tools {

CLI::App* add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (planner: Google Benchmark; kernels: GPU)");
  bench->require_subcommand(1);
#if RACKEP_HAVE_BENCHMARK
  CLI::App* planner = bench->add_subcommand(
      "planner",
      "UltraEP planner time per plan on one CPU core (EP 64 / L 256 / R 2 at imbalance 1.5, 2, 3; EP 72; EP "
      "576). "
      "Extra arguments go to Google Benchmark, e.g. --benchmark_repetitions=5 --benchmark_format=json");
  planner->allow_extras();
  planner->callback([planner] { run_planner_bench(planner->remaining()); });
#endif
  return bench;
}

}  // namespace rackep::tools
