// File: lplb/lplb.hpp
// rackep::lplb: the LPLB balancer, in its own target because it links GLPK (GPL-3); rackep::core carries no
// GPL dependency. Call rackep::register_lplb_balancer() once to make "lplb" known to make_balancer().
// DeepSeek LPLB (docs/ALGORITHMS.md §5): a static redundancy topology plus, every batch, one small linear
// program per group of ranks that decides what fraction of each replicated expert set stays on the original.
//   - Topology r2o[g][d]: rank i's direction-d redundant slots hold copies of the direction-d experts of
//     group rank r2o[i][d]. Presets Cube8P2E, Ring8P, Hypercube16P2E (LPLB tests/utils.py); any other
//     (g, d) uses ring shifts, r2o[i][k] = (i + 1 + floor(k*(g-1)/d)) mod g (d <= g-1), which is Ring8P
//     for (8, 1).
//   - Slow path (from history, window/period like EPLB): EPLB without redundancy reorders experts over
//     ranks, each rank's experts are sorted by historical load and the top c*d (c = R/d) are replicated;
//     position j*d+k belongs to direction k and sits in master slot j*d+k; its copy lives in redundant
//     slot M+j*d+k of the rank that copies direction k of this rank.
//   - Fast path: the LP of §5 over the current exact loads, one per group. We solve it with GLPK's simplex
//     instead of LPLB's 5-step affine-scaling IPM because the simplex solves these small LPs exactly (to
//     an optimal vertex) and deterministically. On any solver failure the group falls back to LPLB's 50/50
//     split and the fallback is counted. Tokens are mapped per source rank as in LPLB's map kernel (§5).
// Usage:
//   rackep::RedundancyTopology t = rackep::redundancy_topology(/*g=*/8, /*d=*/2);  // Cube8P2E
//   rackep::LplbLpSolution s = rackep::solve_lplb_lp(t, fixed_loads, replicated_loads);
//   auto b = rackep::make_lplb_balancer(shape, options);   // or make_balancer("lplb", ...)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/cluster_shape.hpp"
#include "core/eplb.hpp"
#include "core/load_matrix.hpp"
#include "core/plan.hpp"

namespace rackep {

/// A redundancy topology for groups of `group_size` ranks with `directions` redundancy directions per rank.
struct RedundancyTopology {
  std::string name;
  int group_size = 0;
  int directions = 0;
  std::vector<int32_t>
      r2o;  ///< [group_size * directions]: r2o[i*d + k] = group rank copied by rank i, direction k

  int source(int rank, int direction) const {
    return r2o[static_cast<size_t>(rank) * directions + direction];
  }
  /// Throws InputError("lplb topology", "r2o", ...) unless every direction is a permutation of the group's
  /// ranks without fixed points (every rank is copied exactly once per direction, never by itself).
  void validate() const;
};

/// LPLB's Cube8P2E: direction 0 = ring inside each half (0<-3, 1<-0, ...), direction 1 = across halves (0<-6,
/// ...).
RedundancyTopology cube8p2e();
/// LPLB's Ring8P: i <- i+1 mod 8.
RedundancyTopology ring8p();
/// LPLB's Hypercube16P2E: direction 0 = ring inside each block of 4, direction 1 = i <- i-4 mod 16.
RedundancyTopology hypercube16p2e();
/// Ring shifts for any 1 <= d <= g-1: r2o[i][k] = (i + 1 + floor(k*(g-1)/d)) mod g (distinct non-zero
/// shifts). Throws InputError("lplb options", "directions", ...) when d < 1 or d > g-1.
RedundancyTopology ring_shift_topology(int group_size, int directions);
/// The preset matching (g, d) — (8,2) Cube8P2E, (8,1) Ring8P, (16,2) Hypercube16P2E — else
/// ring_shift_topology.
RedundancyTopology redundancy_topology(int group_size, int directions);

/// The solution of one group's LP.
struct LplbLpSolution {
  std::vector<double>
      keep;               ///< [g*d] fraction x of each (rank, direction) set kept on the original, in [0,1]
  double makespan = 0.0;  ///< max rank load of the group under `keep`, in the units of the inputs
  bool solved = false;    ///< false: the solver failed and `keep` is the 50/50 fallback
};

/// Max over group ranks i of fixed[i] + sum_k replicated[i][k]*x[i][k] + sum over (r,k) with r2o[i][k] = r of
/// replicated[r][k]*(1 - x[r][k]). `replicated` and `keep` are [g*d], `fixed` is [g].
double lplb_makespan(const RedundancyTopology& topology, const std::vector<double>& fixed,
                     const std::vector<double>& replicated, const std::vector<double>& keep);

/// Solves §5's LP for one group (loads normalised by their max): minimise t subject to, for every rank i,
/// fixed[i] + sum_k w[i][k] x[i][k] + sum_{(r,k): r2o[i][k]=r} w[r][k] y[r][k] + s[i] = t, x + y = 1, all >=
/// 0 (the slack is GLPK's row bound; LPLB's big-M artificial is unnecessary since x = 1 is feasible). GLPK
/// simplex, messages off, presolve off, retried once with presolve on; success needs return code 0 and status
/// GLP_OPT. All-zero loads give keep = 1 without solving. `max_iterations` >= 0 caps simplex iterations
/// (tests use it to force the fallback); -1 = GLPK's default. Throws InputError("lplb lp", ...) on sizes or
/// negative/non-finite loads.
LplbLpSolution solve_lplb_lp(const RedundancyTopology& topology, const std::vector<double>& fixed,
                             const std::vector<double>& replicated, int max_iterations = -1);

/// Tokens of one source rank's n tokens of a replicated expert that go to the original when the kept fraction
/// is `keep`: #{c in [0, n) : (499*c + 41) mod n < E}. As in LPLB's map kernel, E = keep*n is stored as an
/// integer (truncated, clamped to [0, n]). Counted exactly, also when gcd(499, n) != 1 (the map is then not a
/// permutation).
int64_t lplb_tokens_to_original(int64_t n, double keep);

/// The LplbOptions resolved against a shape.
struct LplbLayout {
  RedundancyTopology topology;        ///< empty (directions 0) when nothing is replicated (R = 0)
  int per_direction = 0;              ///< c = R / d experts per (rank, direction); 0 when R = 0
  bool reorder_hierarchical = false;  ///< EPLB reorder policy: hierarchical (groups = N/g, nodes = domains)
  int window = 1;
  int period = 1;
};

/// g = min(group_size, G), must divide G; d = directions or min(2, R); R must be a multiple of d; d <= g-1;
/// c*d = R of each rank's M experts are replicated, so R <= M. Throws InputError("lplb options", <option>,
/// ...) (or ("cluster shape", "slots", ...) when R > M).
LplbLayout resolve_lplb_layout(const ClusterShape& shape, const LplbOptions& options);

/// Slow path: placement from historical expert weights (size L). EPLB without redundancy (rebalance with P =
/// L onto N GPUs; hierarchical with N/g groups over the NVLink domains when there are several, else global),
/// each rank's experts sorted by weight descending (ties: EPLB order), then the topology's copies (see file
/// comment). has_quota = false, masters_fixed = false, replicated experts have exactly 2 instances (original
/// first).
Plan lplb_placement(const ClusterShape& shape, const LplbLayout& layout, const std::vector<double>& weight);

/// Fast path result for one batch.
struct LplbSplit {
  Allocation alloc;                       ///< per-source split: instance 0 = original, 1 = copy
  std::vector<double> keep;               ///< [N*d] kept fraction per (rank, direction); 1 where no LP ran
  std::vector<double> lp_makespan;        ///< [N/g] LP makespan per group in tokens (0 where no LP ran)
  std::vector<double> keep_all_makespan;  ///< [N/g] the same objective with every x = 1 (no copy used)
  int lp_solved = 0;                      ///< groups solved to optimality
  int lp_fallbacks = 0;                   ///< groups that fell back to the 50/50 split
};

/// Fast path: one LP per group over the current loads (normalised by the max expert load), then the
/// per-source token mapping. Replicated sets are read from `plan` (an lplb_placement, or a masters-only plan:
/// then no LP runs and every token stays on its master). Groups whose replicated sets carry no load skip the
/// LP.
LplbSplit lplb_split(const Plan& plan, const LplbLayout& layout, const LoadMatrix& loads,
                     int max_iterations = -1);

/// The `lplb` balancer: per layer, the placement is re-selected from the window's summed W every `period`
/// calls (as eplb; masters only before any history), and every call runs lplb_split on its exact loads.
/// persistent_replicas() is true. Throws InputError from resolve_lplb_layout.
class LplbBalancer : public Balancer {
 public:
  LplbBalancer(const ClusterShape& shape, const LplbOptions& options);
  std::string name() const override { return "lplb"; }
  bool persistent_replicas() const override { return true; }
  PlanResult plan(const LoadMatrix& loads, const StepContext& ctx) override;

  const LplbLayout& layout() const { return layout_; }
  /// Groups solved to optimality / fallen back to 50/50, over all calls so far.
  int64_t lp_solved() const { return lp_solved_; }
  int64_t lp_fallbacks() const { return lp_fallbacks_; }
  /// The fast-path details of the last call (alloc moved out into the PlanResult).
  const LplbSplit& last_split() const { return last_; }

 private:
  ClusterShape shape_;
  LplbLayout layout_;
  LoadWindow history_;
  std::map<int, Plan> plans_;
  int64_t lp_solved_ = 0;
  int64_t lp_fallbacks_ = 0;
  LplbSplit last_;
};

std::unique_ptr<Balancer> make_lplb_balancer(const ClusterShape& shape, const BalancerOptions& options);

/// Registers make_lplb_balancer under the name "lplb" in core's balancer registry (idempotent).
void register_lplb_balancer();

}  // namespace rackep
