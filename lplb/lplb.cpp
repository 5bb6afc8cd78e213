#include "lplb/lplb.hpp"

#include <glpk.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/allocation.hpp"
#include "core/error.hpp"

namespace rackep {
namespace {

const char* const kOptions = "lplb options";

RedundancyTopology from_columns(const std::string& name, const std::vector<std::vector<int32_t>>& columns) {
  RedundancyTopology t;
  t.name = name;
  t.directions = static_cast<int>(columns.size());
  t.group_size = static_cast<int>(columns.front().size());
  t.r2o.resize(static_cast<size_t>(t.group_size) * t.directions);
  for (int k = 0; k < t.directions; ++k)
    for (int i = 0; i < t.group_size; ++i) t.r2o[static_cast<size_t>(i) * t.directions + k] = columns[k][i];
  return t;
}

void check_loads(const char* field, const std::vector<double>& v, size_t size) {
  if (v.size() != size)
    throw InputError("lplb lp", field,
                     "expected " + std::to_string(size) + " values, got " + std::to_string(v.size()));
  for (double x : v)
    if (!std::isfinite(x) || x < 0.0) throw InputError("lplb lp", field, "loads must be finite and >= 0");
}

struct ProbDeleter {
  void operator()(glp_prob* p) const { glp_delete_prob(p); }
};

// One simplex attempt; fills `x` (the g*d keep fractions) on success.
bool run_simplex(glp_prob* lp, bool presolve, int max_iterations, int num_vars, std::vector<double>& x) {
  glp_smcp parm;
  glp_init_smcp(&parm);
  parm.msg_lev = GLP_MSG_OFF;
  parm.presolve = presolve ? GLP_ON : GLP_OFF;
  if (max_iterations >= 0) parm.it_lim = max_iterations;
  if (!presolve) glp_std_basis(lp);
  if (glp_simplex(lp, &parm) != 0 || glp_get_status(lp) != GLP_OPT) return false;
  for (int v = 0; v < num_vars; ++v) {
    const double value = glp_get_col_prim(lp, 1 + v);
    if (!std::isfinite(value)) return false;
    x[v] = std::min(1.0, std::max(0.0, value));
  }
  return true;
}

}  // namespace

void RedundancyTopology::validate() const {
  if (group_size < 1 || directions < 0 || r2o.size() != static_cast<size_t>(group_size) * directions)
    throw InputError("lplb topology", "r2o", "r2o must be group_size x directions");
  for (int k = 0; k < directions; ++k) {
    std::vector<int> hits(static_cast<size_t>(group_size), 0);
    for (int i = 0; i < group_size; ++i) {
      const int r = source(i, k);
      if (r < 0 || r >= group_size || r == i)
        throw InputError("lplb topology", "r2o",
                         "rank " + std::to_string(i) + " direction " + std::to_string(k) +
                             " must copy another rank of its group, got " + std::to_string(r));
      hits[r] += 1;
    }
    for (int r = 0; r < group_size; ++r)
      if (hits[r] != 1)
        throw InputError("lplb topology", "r2o",
                         "direction " + std::to_string(k) + " copies rank " + std::to_string(r) + " " +
                             std::to_string(hits[r]) + " times (must be exactly once)");
  }
}

RedundancyTopology cube8p2e() {
  return from_columns("Cube8P2E", {{3, 0, 1, 2, 7, 4, 5, 6}, {6, 7, 4, 5, 0, 1, 2, 3}});
}

RedundancyTopology ring8p() {
  return from_columns("Ring8P", {{1, 2, 3, 4, 5, 6, 7, 0}});
}

RedundancyTopology hypercube16p2e() {
  return from_columns("Hypercube16P2E", {{3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14},
                                         {12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}});
}

RedundancyTopology ring_shift_topology(int group_size, int directions) {
  if (directions < 1 || directions > group_size - 1)
    throw InputError(kOptions, "directions",
                     std::to_string(directions) +
                         " directions need 1 <= d <= group size - 1 = " + std::to_string(group_size - 1));
  RedundancyTopology t;
  t.name = "RingShift" + std::to_string(group_size) + "P" + std::to_string(directions) + "E";
  t.group_size = group_size;
  t.directions = directions;
  t.r2o.resize(static_cast<size_t>(group_size) * directions);
  for (int k = 0; k < directions; ++k) {
    const int shift = 1 + k * (group_size - 1) / directions;
    for (int i = 0; i < group_size; ++i)
      t.r2o[static_cast<size_t>(i) * directions + k] = (i + shift) % group_size;
  }
  return t;
}

RedundancyTopology redundancy_topology(int group_size, int directions) {
  if (group_size == 8 && directions == 2) return cube8p2e();
  if (group_size == 8 && directions == 1) return ring8p();
  if (group_size == 16 && directions == 2) return hypercube16p2e();
  return ring_shift_topology(group_size, directions);
}

double lplb_makespan(const RedundancyTopology& topology, const std::vector<double>& fixed,
                     const std::vector<double>& replicated, const std::vector<double>& keep) {
  const int g = topology.group_size;
  const int d = topology.directions;
  std::vector<double> load(fixed.begin(), fixed.end());
  for (int r = 0; r < g; ++r)
    for (int k = 0; k < d; ++k) {
      const size_t v = static_cast<size_t>(r) * d + k;
      load[r] += replicated[v] * keep[v];
    }
  for (int i = 0; i < g; ++i)
    for (int k = 0; k < d; ++k) {
      const size_t v = static_cast<size_t>(topology.source(i, k)) * d + k;
      load[i] += replicated[v] * (1.0 - keep[v]);
    }
  return load.empty() ? 0.0 : *std::max_element(load.begin(), load.end());
}

LplbLpSolution solve_lplb_lp(const RedundancyTopology& topology, const std::vector<double>& fixed,
                             const std::vector<double>& replicated, int max_iterations) {
  topology.validate();
  const int g = topology.group_size;
  const int d = topology.directions;
  const int nv = g * d;
  check_loads("fixed", fixed, static_cast<size_t>(g));
  check_loads("replicated", replicated, static_cast<size_t>(nv));
  LplbLpSolution sol;
  sol.keep.assign(static_cast<size_t>(nv), 1.0);
  double scale = 0.0;
  for (double v : fixed) scale = std::max(scale, v);
  for (double v : replicated) scale = std::max(scale, v);
  if (scale <= 0.0 || nv == 0) {
    sol.solved = true;
    sol.makespan = lplb_makespan(topology, fixed, replicated, sol.keep);
    return sol;
  }

  // Columns: x[v] = 1..nv, y[v] = nv+1..2nv, t = 2nv+1. Rows: load of rank i = 1..g, x+y=1 rows g+1..g+nv.
  std::unique_ptr<glp_prob, ProbDeleter> lp(glp_create_prob());
  glp_set_obj_dir(lp.get(), GLP_MIN);
  glp_add_cols(lp.get(), 2 * nv + 1);
  for (int v = 0; v < nv; ++v) {
    glp_set_col_bnds(lp.get(), 1 + v, GLP_DB, 0.0, 1.0);
    glp_set_col_bnds(lp.get(), 1 + nv + v, GLP_LO, 0.0, 0.0);
  }
  const int col_t = 2 * nv + 1;
  glp_set_col_bnds(lp.get(), col_t, GLP_LO, 0.0, 0.0);
  glp_set_obj_coef(lp.get(), col_t, 1.0);
  glp_add_rows(lp.get(), g + nv);
  std::vector<int> ia(1, 0), ja(1, 0);
  std::vector<double> ar(1, 0.0);
  auto put = [&](int row, int col, double value) {
    ia.push_back(row);
    ja.push_back(col);
    ar.push_back(value);
  };
  for (int i = 0; i < g; ++i) {
    const int row = 1 + i;
    glp_set_row_bnds(lp.get(), row, GLP_UP, 0.0, -fixed[i] / scale);  // sum - t <= -f  <=>  sum + f + s = t
    for (int k = 0; k < d; ++k) {
      const int own = i * d + k;
      if (replicated[own] > 0.0) put(row, 1 + own, replicated[own] / scale);
      const int copied = topology.source(i, k) * d + k;
      if (replicated[copied] > 0.0) put(row, 1 + nv + copied, replicated[copied] / scale);
    }
    put(row, col_t, -1.0);
  }
  for (int v = 0; v < nv; ++v) {
    const int row = 1 + g + v;
    glp_set_row_bnds(lp.get(), row, GLP_FX, 1.0, 1.0);
    put(row, 1 + v, 1.0);
    put(row, 1 + nv + v, 1.0);
  }
  glp_load_matrix(lp.get(), static_cast<int>(ia.size()) - 1, ia.data(), ja.data(), ar.data());

  sol.solved = run_simplex(lp.get(), /*presolve=*/false, max_iterations, nv, sol.keep) ||
               run_simplex(lp.get(), /*presolve=*/true, max_iterations, nv, sol.keep);
  if (!sol.solved) std::fill(sol.keep.begin(), sol.keep.end(), 0.5);
  sol.makespan = lplb_makespan(topology, fixed, replicated, sol.keep);
  return sol;
}

int64_t lplb_tokens_to_original(int64_t n, double keep) {
  if (n <= 0) return 0;
  const double e = std::floor(keep * static_cast<double>(n));
  const int64_t expected = e <= 0.0 ? 0 : (e >= static_cast<double>(n) ? n : static_cast<int64_t>(e));
  // c -> 499c mod n hits exactly the multiples of g = gcd(499, n), g times each, so c' = (499c + 41) mod n
  // takes every value v in [0, n) with v = 41 (mod g), g times each. Count those values below `expected`.
  const int64_t g = std::gcd<int64_t>(499, n);
  const int64_t r = 41 % g;
  const int64_t values = expected > r ? (expected - 1 - r) / g + 1 : 0;
  return g * values;
}

LplbLayout resolve_lplb_layout(const ClusterShape& shape, const LplbOptions& options) {
  if (options.group_size < 1)
    throw InputError(kOptions, "group_size", "must be >= 1, got " + std::to_string(options.group_size));
  if (options.directions < 0)
    throw InputError(kOptions, "directions",
                     "must be >= 0 (0: min(2, R)), got " + std::to_string(options.directions));
  if (options.window < 1)
    throw InputError(kOptions, "window", "must be >= 1, got " + std::to_string(options.window));
  if (options.period < 1)
    throw InputError(kOptions, "period", "must be >= 1, got " + std::to_string(options.period));
  const int g = std::min(options.group_size, shape.domain_size);
  if (shape.domain_size % g != 0)
    throw InputError(kOptions, "group_size",
                     "group size " + std::to_string(g) + " does not divide the NVLink domain size " +
                         std::to_string(shape.domain_size));
  const int r = shape.num_redundant;
  LplbLayout layout;
  layout.window = options.window;
  layout.period = options.period;
  layout.reorder_hierarchical = shape.num_domains() > 1;
  if (r == 0) {
    layout.topology.group_size = g;
    return layout;  // nothing to replicate: masters only, no LP
  }
  const int d = options.directions > 0 ? options.directions : std::min(2, r);
  if (r % d != 0)
    throw InputError(kOptions, "directions",
                     std::to_string(r) + " redundant slots per rank are not a multiple of " +
                         std::to_string(d) + " directions");
  if (g < 2)
    throw InputError(kOptions, "group_size",
                     "LPLB copies experts between ranks of a group; group size " + std::to_string(g) +
                         " (min(group_size, domain size)) leaves no other rank");
  if (r > shape.num_masters)
    throw InputError("cluster shape", "slots",
                     "lplb replicates R = " + std::to_string(r) + " of each rank's " +
                         std::to_string(shape.num_masters) + " experts; needs R <= experts per rank");
  layout.topology = redundancy_topology(g, d);
  layout.per_direction = r / d;
  return layout;
}

Plan lplb_placement(const ClusterShape& shape, const LplbLayout& layout, const std::vector<double>& weight) {
  const int n = shape.num_ranks;
  const int m = shape.num_masters;
  const int s = shape.slots_per_rank();
  const int l_count = shape.num_experts();
  RACKEP_CHECK(static_cast<int>(weight.size()) == l_count,
               "lplb_placement: weight size does not match the shape");
  const int g = layout.topology.group_size;
  const int groups = layout.reorder_hierarchical ? n / g : 1;
  const int nodes = layout.reorder_hierarchical ? shape.num_domains() : 1;
  const EplbPlacement nored = rebalance_experts_hierarchical(weight, l_count, groups, nodes, n);

  // Each rank's experts by historical load descending; ties keep EPLB's order.
  std::vector<int32_t> order(nored.phy2log);
  for (int rank = 0; rank < n; ++rank)
    std::stable_sort(order.begin() + static_cast<ptrdiff_t>(rank) * m,
                     order.begin() + static_cast<ptrdiff_t>(rank + 1) * m,
                     [&](int32_t a, int32_t b) { return weight[a] > weight[b]; });

  Plan plan = Plan::masters_only(shape, {});
  plan.has_quota = false;
  plan.masters_fixed = false;
  std::fill(plan.p2l.begin(), plan.p2l.end(), -1);
  for (int rank = 0; rank < n; ++rank)
    for (int k = 0; k < m; ++k) {
      const int e = order[static_cast<size_t>(rank) * m + k];
      plan.p2l[static_cast<size_t>(rank) * s + k] = e;
      plan.l2p[static_cast<size_t>(e) * n] = rank * s + k;
    }
  const int d = layout.topology.directions;
  const int c = layout.per_direction;
  for (int i = 0; i < n && c > 0; ++i) {
    const int base = i / g * g;
    for (int k = 0; k < d; ++k) {
      const int src = base + layout.topology.source(i - base, k);
      for (int j = 0; j < c; ++j) {
        const int e = order[static_cast<size_t>(src) * m + j * d + k];
        const int phys = i * s + m + j * d + k;
        plan.p2l[phys] = e;
        plan.l2p[static_cast<size_t>(e) * n + 1] = phys;
        plan.lcnt[e] = 2;
      }
    }
  }
  return plan;
}

LplbSplit lplb_split(const Plan& plan, const LplbLayout& layout, const LoadMatrix& loads,
                     int max_iterations) {
  const ClusterShape& shape = plan.shape;
  const int n = shape.num_ranks;
  const int m = shape.num_masters;
  const int s = shape.slots_per_rank();
  const int g = layout.topology.group_size;
  const int d = layout.topology.directions;
  const int c = layout.per_direction;
  const std::vector<int64_t> w = loads.expert_totals();
  const int64_t w_max = w.empty() ? 0 : *std::max_element(w.begin(), w.end());
  const double norm = w_max > 0 ? static_cast<double>(w_max) : 1.0;

  LplbSplit out;
  out.keep.assign(static_cast<size_t>(n) * d, 1.0);
  out.lp_makespan.assign(static_cast<size_t>(n / g), 0.0);
  out.keep_all_makespan.assign(static_cast<size_t>(n / g), 0.0);
  // The (rank, direction) variable of each replicated expert; -1 for the others.
  std::vector<int> var_of(static_cast<size_t>(shape.num_experts()), -1);
  std::vector<double> fixed(static_cast<size_t>(g)), replicated(static_cast<size_t>(g) * d);
  for (int group = 0; group < n / g; ++group) {
    std::fill(fixed.begin(), fixed.end(), 0.0);
    std::fill(replicated.begin(), replicated.end(), 0.0);
    bool any = false;
    for (int ir = 0; ir < g; ++ir) {
      const int rank = group * g + ir;
      for (int k = 0; k < m; ++k) {
        const int e = plan.p2l[static_cast<size_t>(rank) * s + k];
        if (e < 0) continue;
        const double load = static_cast<double>(w[e]) / norm;
        if (k < c * d && plan.lcnt[e] == 2) {
          var_of[e] = rank * d + k % d;
          replicated[static_cast<size_t>(ir) * d + k % d] += load;
          any = any || load > 0.0;
        } else {
          fixed[ir] += load;
        }
      }
    }
    if (!any) continue;
    const LplbLpSolution sol = solve_lplb_lp(layout.topology, fixed, replicated, max_iterations);
    (sol.solved ? out.lp_solved : out.lp_fallbacks) += 1;
    std::copy(sol.keep.begin(), sol.keep.end(), out.keep.begin() + static_cast<ptrdiff_t>(group) * g * d);
    out.lp_makespan[group] = sol.makespan * norm;
    const std::vector<double> ones(replicated.size(), 1.0);
    out.keep_all_makespan[group] = lplb_makespan(layout.topology, fixed, replicated, ones) * norm;
  }

  out.alloc = Allocation::shaped_for(plan);
  for (int src = 0; src < n; ++src)
    for (int e = 0; e < shape.num_experts(); ++e) {
      const int32_t tokens = loads.at(src, e);
      if (var_of[e] < 0) {
        RACKEP_CHECK(plan.lcnt[e] == 1, "lplb_split: replicated expert outside the replicated master slots");
        out.alloc.at(src, e, 0) = tokens;
        continue;
      }
      const int64_t original = lplb_tokens_to_original(tokens, out.keep[var_of[e]]);
      out.alloc.at(src, e, 0) = static_cast<int32_t>(original);
      out.alloc.at(src, e, 1) = static_cast<int32_t>(tokens - original);
    }
  return out;
}

LplbBalancer::LplbBalancer(const ClusterShape& shape, const LplbOptions& options)
    : shape_(shape), layout_(resolve_lplb_layout(shape, options)), history_(layout_.window, layout_.period) {}

PlanResult LplbBalancer::plan(const LoadMatrix& loads, const StepContext& ctx) {
  loads.validate("lplb loads", &shape_);
  auto it = plans_.find(ctx.layer);
  if (it == plans_.end()) {
    Plan initial = Plan::masters_only(shape_, {});
    initial.masters_fixed = false;
    it = plans_.emplace(ctx.layer, std::move(initial)).first;
  }
  if (history_.due(ctx.layer) && layout_.per_direction > 0)
    it->second = lplb_placement(shape_, layout_, history_.window_sum(ctx.layer));
  PlanResult result;
  result.plan = it->second;
  last_ = lplb_split(result.plan, layout_, loads);
  lp_solved_ += last_.lp_solved;
  lp_fallbacks_ += last_.lp_fallbacks;
  result.alloc = std::move(last_.alloc);
  last_.alloc = Allocation{};
  result.routed = loads;
  history_.record(ctx.layer, loads.expert_totals());  // only after planning: the plan never sees these loads
  return result;
}

std::unique_ptr<Balancer> make_lplb_balancer(const ClusterShape& shape, const BalancerOptions& options) {
  return std::make_unique<LplbBalancer>(shape, options.lplb);
}

void register_lplb_balancer() {
  register_balancer("lplb", make_lplb_balancer);
}

}  // namespace rackep
