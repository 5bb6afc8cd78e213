#include "core/ultraep.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/allocation.hpp"
#include "core/error.hpp"

namespace rackep {
namespace {

// Options are decimal numbers; the reference evaluates lo and T0 in float32, which drifts for large totals.
// We use exact rational arithmetic on options quantised to 1e-6 (docs/ALGORITHMS.md §2.4.3 notes), so the CPU
// and the GPU planner agree bit for bit.
constexpr int64_t kOptionScale = 1000000;

int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

struct Export {
  int expert;  // domain-local expert
  int target;  // domain-local rank
  int64_t quota;
};

enum class Floor { kDynamic, kStatic };

}  // namespace

struct UltraEpPlanner::Impl {
  ClusterShape shape;
  UltraEpOptions options;
  int64_t bt_scaled = kOptionScale;
  int64_t eps_scaled = 0;
  Plan plan;
  std::vector<UltraEpDomainStats> stats;

  // Per-domain workspace (size G or E).
  std::vector<int64_t> w;      // domain experts' W
  std::vector<int64_t> rl;     // rank loads
  std::vector<int> src_order;  // ranks by RL desc
  std::vector<int>
      exp_order;  // [G*M] masters of each rank by W desc (sorted on first use, see sorted_masters)
  std::vector<char> exp_sorted;  // [G] whether exp_order of a rank is sorted for the current domain
  std::vector<int64_t> excess, slack, exported;
  std::vector<int> slots_used;
  std::vector<int64_t> occupied_stamp;  // [G] per rank: the stamp of the expert whose instance it holds
  int64_t stamp = 0;
  std::vector<Export> exports, best_exports;

  Impl(const ClusterShape& s, const UltraEpOptions& o) : shape(s), options(o) {
    shape.validate("cluster shape");
    if (!(o.balance_threshold >= 0.0) || !std::isfinite(o.balance_threshold))
      throw InputError("ultraep options", "balance_threshold", "must be a finite number >= 0");
    if (!(o.eps >= -1.0) || !std::isfinite(o.eps))
      throw InputError("ultraep options", "eps", "must be a finite number");
    if (o.min_tokens_per_replica < 1)
      throw InputError("ultraep options", "min_tokens_per_replica", "must be >= 1");
    bt_scaled = std::max<int64_t>(std::llround(o.balance_threshold * kOptionScale), kOptionScale);
    eps_scaled = std::max<int64_t>(std::llround(o.eps * kOptionScale), 0);
    const int g = shape.domain_size;
    const int e = g * shape.num_masters;
    w.resize(e);
    rl.resize(g);
    src_order.resize(g);
    exp_order.resize(e);
    exp_sorted.resize(g);
    excess.resize(g);
    slack.resize(g);
    exported.resize(e);
    slots_used.resize(g);
    occupied_stamp.assign(g, -1);
    exports.reserve(static_cast<size_t>(g) * shape.num_redundant);
    best_exports.reserve(static_cast<size_t>(g) * shape.num_redundant);
    plan = Plan::masters_only(shape, std::vector<int64_t>(shape.num_experts(), 0));
    plan.has_quota = true;
    plan.domain_threshold.assign(shape.num_domains(), 0);
    stats.assign(shape.num_domains(), {});
  }

  // The masters of domain rank r by W descending, ties lower expert id first. Sorted on first use: only
  // ranks with excess are ever sources, usually a few of the domain.
  const int* sorted_masters(int r) {
    const int m = shape.num_masters;
    int* order = &exp_order[r * m];
    if (!exp_sorted[r]) {
      std::iota(order, order + m, r * m);
      std::sort(order, order + m, [&](int a, int b) { return w[a] != w[b] ? w[a] > w[b] : a < b; });
      exp_sorted[r] = 1;
    }
    return order;
  }

  // docs/ALGORITHMS.md §2.4.2. Fills `exports` on success.
  bool oracle(int64_t t, Floor floor_mode) {
    const int g = shape.domain_size;
    const int m = shape.num_masters;
    const int r_slots = shape.num_redundant;
    exports.clear();
    int64_t run_excess = 0, run_slack = 0;
    for (int r = 0; r < g; ++r) {
      excess[r] = std::max<int64_t>(rl[r] - t, 0);
      slack[r] = std::max<int64_t>(t - rl[r], 0);
      slots_used[r] = 0;
      run_excess += excess[r];
      run_slack += slack[r];
    }
    if (run_excess == 0) return true;
    if (run_excess > run_slack) return false;
    const int64_t keep_if_loaded = options.allow_zero_master_quota ? 0 : 1;
    for (int src : src_order) {
      int64_t need = excess[src];
      if (need == 0) continue;
      if (need > run_slack) return false;
      // Only a source's own masters are exported while it is processed: reset their tallies here.
      const int* masters = sorted_masters(src);
      for (int i = 0; i < m; ++i) exported[masters[i]] = 0;
      for (int i = 0; i < m && need > 0; ++i) {
        const int e = masters[i];
        const int64_t keep = w[e] > 0 ? keep_if_loaded : 0;
        int64_t avail = std::max<int64_t>(w[e] - keep - exported[e], 0);
        ++stamp;  // occupied[e] = {src}: the master rank has slack 0, so it is never eligible anyway
        occupied_stamp[src] = stamp;
        while (need > 0 && avail > 0) {
          int k = 0;
          int best = -1;
          for (int r = 0; r < g; ++r) {
            if (slack[r] <= 0 || slots_used[r] >= r_slots || occupied_stamp[r] == stamp) continue;
            ++k;
            if (best < 0 || slack[r] > slack[best]) best = r;
          }
          if (k == 0) break;
          const int64_t fl = floor_mode == Floor::kDynamic ? std::max<int64_t>(1, ceil_div(need, k))
                                                           : options.min_tokens_per_replica;
          const int64_t q = std::min({need, slack[best], avail});
          if (q < fl) break;  // the largest-slack candidate fails the floor, so every candidate does
          exports.push_back({e, best, q});
          exported[e] += q;
          slack[best] -= q;
          slots_used[best] += 1;
          occupied_stamp[best] = stamp;
          run_excess -= q;
          run_slack -= q;
          need -= q;
          avail -= q;
        }
      }
      if (need > 0) return false;
      if (run_excess > run_slack) return false;
    }
    return true;
  }

  // docs/ALGORITHMS.md §2.4.3. Returns the accepted threshold; `exports` holds its plan.
  int64_t search(UltraEpDomainStats& st) {
    const int g = shape.domain_size;
    int64_t total = 0, mx = 0;
    for (int r = 0; r < g; ++r) {
      total += rl[r];
      mx = std::max(mx, rl[r]);
    }
    int64_t lo = ceil_div(total * bt_scaled, int64_t{g} * kOptionScale);
    int64_t hi = std::max(mx, lo);
    auto call = [&](int64_t t, Floor f) {
      ++st.oracle_calls;
      return oracle(t, f);
    };
    // (a) fast path
    int64_t t = std::max(ceil_div(lo * (kOptionScale + eps_scaled), kOptionScale), lo);
    const int64_t step = std::max<int64_t>(1, (hi + 99) / 100);
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (call(t, Floor::kDynamic)) {
        st.fast_path = true;
        return t;
      }
      t = std::min(hi, t + step);
    }
    // (b) fallback with the static floor. sum(excess) - sum(slack) = total - G*T, so the capacity bisection
    // of the reference ends at the smallest T >= lo with G*T >= total.
    const int64_t lo_cap = std::min(std::max(lo, ceil_div(total, g)), hi);
    if (call(lo_cap, Floor::kStatic)) return lo_cap;
    lo = std::min(lo_cap + 1, hi);
    while (lo < hi) {
      const int64_t range = hi - lo;
      if (range <= 4) {
        int64_t found = -1;
        for (int64_t p = lo; p < lo + 4 && p < hi; ++p)
          if (call(p, Floor::kStatic)) {
            found = p;
            break;
          }
        if (found >= 0) {
          lo = hi = found;
        } else {
          lo = hi;
        }
      } else {
        int64_t probes[4];
        for (int i = 0; i < 4; ++i) probes[i] = lo + range * (i + 1) / 5;
        int f = -1;
        for (int i = 0; i < 4; ++i)
          if (call(probes[i], Floor::kStatic)) {
            f = i;
            break;
          }
        if (f >= 0) {
          hi = probes[f];
          if (f > 0) lo = probes[f - 1] + 1;
        } else {
          lo = probes[3] + 1;
        }
      }
    }
    const bool ok = call(lo, Floor::kStatic);
    RACKEP_CHECK(ok, "ultraep: final threshold infeasible");
    return lo;
  }

  void plan_domain(int d, const std::vector<int64_t>& w_all) {
    const int g = shape.domain_size;
    const int m = shape.num_masters;
    const int n = shape.num_ranks;
    const int s_slots = shape.slots_per_rank();
    const int rank0 = d * g;
    const int l0 = rank0 * m;
    const int e_count = g * m;
    for (int e = 0; e < e_count; ++e) w[e] = w_all[l0 + e];
    for (int r = 0; r < g; ++r) {
      int64_t sum = 0;
      for (int i = 0; i < m; ++i) sum += w[r * m + i];
      rl[r] = sum;
    }
    std::iota(src_order.begin(), src_order.end(), 0);
    // Total orders (ties broken by the lower index), so std::sort gives the reference's stable order without
    // the temporary buffer of std::stable_sort.
    std::sort(src_order.begin(), src_order.end(),
              [&](int a, int b) { return rl[a] != rl[b] ? rl[a] > rl[b] : a < b; });
    std::fill(exp_sorted.begin(), exp_sorted.end(), 0);
    UltraEpDomainStats& st = stats[d];
    st = {};
    exports.clear();
    if (shape.num_redundant > 0 && g > 1) {
      st.threshold = search(st);
    } else {
      st.threshold = *std::max_element(rl.begin(), rl.end());
    }
    plan.domain_threshold[d] = st.threshold;
    // §2.4.4: emit. Masters keep W minus their exports; replicas fill redundant slots in creation order.
    for (int e = 0; e < e_count; ++e) {
      // Column 0 of l2p is always the master (set once by masters_only) and columns beyond the previous
      // plan's instance count are already -1 / 0: touch only what the last plan used, so a plan costs O(L +
      // instances) memory traffic, not O(L * N) (the [L][N] arrays are tens of MiB at N = 576).
      const size_t row = static_cast<size_t>(l0 + e) * n;
      const int used = plan.lcnt[l0 + e];
      if (used > 1) {
        std::fill(plan.l2p.begin() + row + 1, plan.l2p.begin() + row + used, -1);
        std::fill(plan.quota.begin() + row + 1, plan.quota.begin() + row + used, 0);
      }
      plan.quota[row] = w[e];
      plan.lcnt[l0 + e] = 1;
    }
    for (int r = 0; r < g; ++r) {
      const int base = (rank0 + r) * s_slots;
      std::fill(plan.p2l.begin() + base + m, plan.p2l.begin() + base + s_slots, -1);
      slots_used[r] = 0;
    }
    for (const Export& x : exports) {
      const int l = l0 + x.expert;
      plan.quota[static_cast<size_t>(l) * n] -= x.quota;
      const int p = (rank0 + x.target) * s_slots + m + slots_used[x.target]++;
      plan.p2l[p] = l;
      const size_t row = static_cast<size_t>(l) * n;
      const int j = plan.lcnt[l]++;
      plan.l2p[row + j] = p;
      plan.quota[row + j] = x.quota;
    }
  }
};

UltraEpPlanner::UltraEpPlanner(const ClusterShape& shape, const UltraEpOptions& options)
    : impl_(std::make_unique<Impl>(shape, options)) {}
UltraEpPlanner::~UltraEpPlanner() = default;
UltraEpPlanner::UltraEpPlanner(UltraEpPlanner&&) noexcept = default;
UltraEpPlanner& UltraEpPlanner::operator=(UltraEpPlanner&&) noexcept = default;

const Plan& UltraEpPlanner::plan(const std::vector<int64_t>& w) {
  RACKEP_CHECK(static_cast<int>(w.size()) == impl_->shape.num_experts(), "ultraep: W has the wrong size");
  for (int d = 0; d < impl_->shape.num_domains(); ++d) impl_->plan_domain(d, w);
  return impl_->plan;
}

const std::vector<UltraEpDomainStats>& UltraEpPlanner::domain_stats() const {
  return impl_->stats;
}

Plan ultraep_plan(const ClusterShape& shape, const std::vector<int64_t>& w, const UltraEpOptions& options) {
  UltraEpPlanner planner(shape, options);
  return planner.plan(w);
}

}  // namespace rackep
