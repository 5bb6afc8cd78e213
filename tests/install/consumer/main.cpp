// Uses the three installed libraries: plans one record with ultraep (rackep::core), generates it with the
// synthetic generator (rackep::traces), and reads a model config with the simulator's loader (rackep::sim).
#include <cstdio>

#include "core/balancer.hpp"
#include "core/metrics.hpp"
#include "sim/model_config.hpp"
#include "traces/synthetic.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  rackep::SynthConfig sc;
  sc.num_ranks = 8;
  sc.num_experts = 32;
  sc.top_k = 4;
  sc.tokens_per_rank = 1024;
  sc.imbalance = 2.0;
  sc.num_microbatches = 1;
  rackep::SyntheticStream gen(sc);
  rackep::TraceRecord r;
  if (!gen.next(r)) return 3;
  const rackep::ClusterShape shape{8, 4, 2, 8};
  auto b = rackep::make_balancer("ultraep", shape, {});
  const rackep::PlanMetrics m = rackep::measure_plan(r.loads, b->plan(r.loads, {0, 0}));
  const rackep::sim::ModelConfig model = rackep::sim::load_model(argv[1]);
  std::printf("imbalance %.3f -> %.3f, model %s\n", m.imbalance_before, m.imbalance_after,
              model.name.c_str());
  return m.imbalance_after < m.imbalance_before ? 0 : 1;
}
