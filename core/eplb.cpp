#include "core/eplb.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "core/allocation.hpp"
#include "core/error.hpp"

namespace rackep {
namespace {

const char* const kSource = "eplb options";

void require(bool ok, const char* field, const std::string& message) {
  if (!ok) throw InputError(kSource, field, message);
}

void check_weights(const std::vector<double>& weight) {
  for (size_t i = 0; i < weight.size(); ++i)
    require(std::isfinite(weight[i]) && weight[i] >= 0.0, "weight",
            "expert " + std::to_string(i) + " has a negative or non-finite load");
}

// Inverse of a partial permutation of [0, n): out[perm[i]] = i, -1 where nothing maps.
std::vector<int32_t> inverse(const std::vector<int32_t>& perm, int n) {
  std::vector<int32_t> inv(static_cast<size_t>(n), -1);
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int32_t>(i);
  return inv;
}

}  // namespace

EplbPacking balanced_packing(const std::vector<double>& weight, int num_packs, int capacity) {
  const int n = static_cast<int>(weight.size());
  require(num_packs > 0, "num_packs", "must be positive, got " + std::to_string(num_packs));
  if (capacity == 0) {
    require(n % num_packs == 0, "num_packs",
            std::to_string(n) + " items do not split evenly into " + std::to_string(num_packs) + " packs");
    capacity = n / num_packs;
  }
  require(capacity > 0 && static_cast<int64_t>(capacity) * num_packs >= n, "capacity",
          std::to_string(n) + " items do not fit into " + std::to_string(num_packs) + " packs of " +
              std::to_string(capacity));
  EplbPacking out;
  out.pack.assign(static_cast<size_t>(n), -1);
  out.rank_in_pack.assign(static_cast<size_t>(n), -1);
  if (capacity == 1 && n == num_packs) {
    std::iota(out.pack.begin(), out.pack.end(), 0);
    std::fill(out.rank_in_pack.begin(), out.rank_in_pack.end(), 0);
    return out;
  }
  std::vector<int> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weight[a] > weight[b]; });
  std::vector<double> pack_weight(static_cast<size_t>(num_packs), 0.0);
  std::vector<int> pack_items(static_cast<size_t>(num_packs), 0);
  for (int item : order) {
    int best = -1;
    for (int p = 0; p < num_packs; ++p)
      if (pack_items[p] < capacity && (best < 0 || pack_weight[p] < pack_weight[best])) best = p;
    RACKEP_CHECK(best >= 0, "balanced_packing ran out of room");
    out.pack[item] = best;
    out.rank_in_pack[item] = pack_items[best];
    pack_weight[best] += weight[item];
    pack_items[best] += 1;
  }
  return out;
}

EplbReplication replicate_experts(const std::vector<double>& weight, int num_physical, int max_copies) {
  const int l_count = static_cast<int>(weight.size());
  require(num_physical >= l_count, "num_physical",
          "need at least one physical slot per expert: " + std::to_string(num_physical) + " < " +
              std::to_string(l_count));
  require(max_copies >= 0, "max_copies", "must be >= 0");
  EplbReplication out;
  out.phy2log.resize(static_cast<size_t>(l_count));
  std::iota(out.phy2log.begin(), out.phy2log.end(), 0);
  out.rank.assign(static_cast<size_t>(l_count), 0);
  out.logcnt.assign(static_cast<size_t>(l_count), 1);
  for (int i = l_count; i < num_physical; ++i) {
    int best = -1;
    double best_value = 0.0;
    for (int e = 0; e < l_count; ++e) {
      if (max_copies > 0 && out.logcnt[e] >= max_copies) continue;
      const double value = weight[e] / out.logcnt[e];
      if (best < 0 || value > best_value) {
        best = e;
        best_value = value;
      }
    }
    if (best < 0) break;  // every expert is at the cap
    out.phy2log.push_back(best);
    out.rank.push_back(out.logcnt[best]);
    out.logcnt[best] += 1;
  }
  return out;
}

EplbPlacement rebalance_experts_hierarchical(const std::vector<double>& weight, int num_physical,
                                             int num_groups, int num_nodes, int num_gpus, int max_copies) {
  check_weights(weight);
  const int l_count = static_cast<int>(weight.size());
  require(num_groups > 0 && l_count % num_groups == 0, "num_groups",
          std::to_string(l_count) + " experts do not split into " + std::to_string(num_groups) + " groups");
  require(num_nodes > 0 && num_groups % num_nodes == 0, "num_nodes",
          std::to_string(num_groups) + " groups do not split over " + std::to_string(num_nodes) + " nodes");
  require(num_gpus > 0 && num_gpus % num_nodes == 0, "num_nodes",
          std::to_string(num_gpus) + " GPUs do not split over " + std::to_string(num_nodes) + " nodes");
  require(num_physical % num_gpus == 0 && num_physical >= l_count, "num_physical",
          std::to_string(num_physical) + " physical experts are not a multiple of " +
              std::to_string(num_gpus) + " GPUs or fewer than the " + std::to_string(l_count) + " experts");
  const int group_size = l_count / num_groups;
  const int groups_per_node = num_groups / num_nodes;
  const int per_gpu = num_physical / num_gpus;
  const int log_per_node = l_count / num_nodes;
  const int phy_per_node = num_physical / num_nodes;
  const int gpus_per_node = num_gpus / num_nodes;

  // Step 1: groups onto nodes; renumber experts node-major ("meta-logical" ids).
  std::vector<double> group_tokens(static_cast<size_t>(num_groups), 0.0);
  for (int l = 0; l < l_count; ++l) group_tokens[l / group_size] += weight[l];
  const EplbPacking group_pack = balanced_packing(group_tokens, num_nodes);
  std::vector<int32_t> log2mlog(static_cast<size_t>(l_count));
  for (int l = 0; l < l_count; ++l) {
    const int g = l / group_size;
    log2mlog[l] =
        (group_pack.pack[g] * groups_per_node + group_pack.rank_in_pack[g]) * group_size + l % group_size;
  }
  const std::vector<int32_t> mlog2log = inverse(log2mlog, l_count);

  EplbPlacement out;
  out.phy2log.assign(static_cast<size_t>(num_physical), -1);
  out.phyrank.assign(static_cast<size_t>(num_physical), -1);
  std::vector<int32_t> mlogcnt(static_cast<size_t>(l_count), 0);
  for (int node = 0; node < num_nodes; ++node) {
    // Step 2: replicate inside the node.
    std::vector<double> mlog_tokens(static_cast<size_t>(log_per_node));
    for (int i = 0; i < log_per_node; ++i) mlog_tokens[i] = weight[mlog2log[node * log_per_node + i]];
    const EplbReplication rep = replicate_experts(mlog_tokens, phy_per_node, max_copies);
    for (int i = 0; i < log_per_node; ++i) mlogcnt[node * log_per_node + i] = rep.logcnt[i];
    // Step 3: pack the node's copies onto its GPUs.
    const int copies = static_cast<int>(rep.phy2log.size());
    std::vector<double> phy_tokens(static_cast<size_t>(copies));
    for (int p = 0; p < copies; ++p) phy_tokens[p] = mlog_tokens[rep.phy2log[p]] / rep.logcnt[rep.phy2log[p]];
    const EplbPacking pack = balanced_packing(phy_tokens, gpus_per_node, per_gpu);
    std::vector<int32_t> phy2pphy(static_cast<size_t>(copies));
    for (int p = 0; p < copies; ++p) phy2pphy[p] = pack.pack[p] * per_gpu + pack.rank_in_pack[p];
    const std::vector<int32_t> pphy2phy = inverse(phy2pphy, phy_per_node);
    for (int pp = 0; pp < phy_per_node; ++pp) {
      const int p = pphy2phy[pp];
      if (p < 0) continue;
      const size_t global = static_cast<size_t>(node) * phy_per_node + pp;
      out.phy2log[global] = mlog2log[node * log_per_node + rep.phy2log[p]];
      out.phyrank[global] = rep.rank[p];
    }
  }
  out.logcnt.resize(static_cast<size_t>(l_count));
  for (int l = 0; l < l_count; ++l) out.logcnt[l] = mlogcnt[log2mlog[l]];
  out.max_count = l_count == 0 ? 0 : *std::max_element(out.logcnt.begin(), out.logcnt.end());
  out.log2phy.assign(static_cast<size_t>(l_count) * out.max_count, -1);
  for (int p = 0; p < num_physical; ++p)
    if (out.phy2log[p] >= 0)
      out.log2phy[static_cast<size_t>(out.phy2log[p]) * out.max_count + out.phyrank[p]] = p;
  return out;
}

EplbPlacement rebalance_experts(const std::vector<double>& weight, int num_physical, int num_groups,
                                int num_nodes, int num_gpus, int max_copies) {
  require(num_groups > 0, "num_groups", "must be positive");
  require(num_nodes > 0, "num_nodes", "must be positive");
  if (num_groups % num_nodes == 0)
    return rebalance_experts_hierarchical(weight, num_physical, num_groups, num_nodes, num_gpus, max_copies);
  return rebalance_experts_hierarchical(weight, num_physical, 1, 1, num_gpus, max_copies);
}

EplbLayout resolve_eplb_layout(const ClusterShape& shape, const EplbOptions& options) {
  require(options.window >= 1, "window", "must be >= 1, got " + std::to_string(options.window));
  require(options.period >= 1, "period", "must be >= 1, got " + std::to_string(options.period));
  require(options.num_groups >= 0, "num_groups", "must be >= 0 (0: one per NVLink domain)");
  require(options.num_nodes >= 0, "num_nodes", "must be >= 0 (0: one per NVLink domain)");
  const int nodes = options.num_nodes > 0 ? options.num_nodes : shape.num_domains();
  const int groups = options.num_groups > 0 ? options.num_groups : shape.num_domains();
  require(shape.num_ranks % nodes == 0, "num_nodes",
          std::to_string(nodes) + " nodes do not divide the " + std::to_string(shape.num_ranks) + " ranks");
  require(shape.num_experts() % groups == 0, "num_groups",
          std::to_string(groups) + " groups do not divide the " + std::to_string(shape.num_experts()) +
              " experts");
  EplbLayout layout;
  layout.window = options.window;
  layout.period = options.period;
  switch (options.policy) {
    case EplbPolicy::kAuto:
      layout.hierarchical = groups % nodes == 0 && nodes > 1;
      break;
    case EplbPolicy::kHierarchical:
      require(groups % nodes == 0, "policy",
              "hierarchical needs num_groups (" + std::to_string(groups) +
                  ") to be a multiple of num_nodes (" + std::to_string(nodes) + ")");
      layout.hierarchical = true;
      break;
    case EplbPolicy::kGlobal:
      layout.hierarchical = false;
      break;
  }
  if (layout.hierarchical) {
    layout.num_groups = groups;
    layout.num_nodes = nodes;
  }
  return layout;
}

Plan eplb_plan(const ClusterShape& shape, const EplbLayout& layout, const std::vector<double>& weight) {
  const int n = shape.num_ranks;
  const int l_count = shape.num_experts();
  RACKEP_CHECK(static_cast<int>(weight.size()) == l_count, "eplb_plan: weight size does not match the shape");
  const EplbPlacement placement = rebalance_experts_hierarchical(
      weight, shape.num_physical(), layout.num_groups, layout.num_nodes, n, /*max_copies=*/n);
  Plan plan = Plan::masters_only(shape, {});
  plan.masters_fixed = false;
  plan.has_quota = false;
  plan.p2l = placement.phy2log;
  plan.lcnt = placement.logcnt;
  std::fill(plan.l2p.begin(), plan.l2p.end(), -1);
  for (int l = 0; l < l_count; ++l)
    for (int j = 0; j < placement.logcnt[l]; ++j)
      plan.l2p[static_cast<size_t>(l) * n + j] = placement.physical(l, j);
  return plan;
}

LoadWindow::LoadWindow(int window, int period) : window_(window), period_(period) {
  RACKEP_CHECK(window >= 1 && period >= 1, "LoadWindow needs window >= 1 and period >= 1");
}

bool LoadWindow::due(int layer) const {
  auto it = layers_.find(layer);
  return it != layers_.end() && !it->second.loads.empty() && it->second.calls % period_ == 0;
}

int64_t LoadWindow::calls(int layer) const {
  auto it = layers_.find(layer);
  return it == layers_.end() ? 0 : it->second.calls;
}

std::vector<double> LoadWindow::window_sum(int layer) const {
  auto it = layers_.find(layer);
  if (it == layers_.end()) return {};
  return std::vector<double>(it->second.sum.begin(), it->second.sum.end());
}

void LoadWindow::record(int layer, const std::vector<int64_t>& w) {
  Layer& state = layers_[layer];
  if (state.sum.empty()) state.sum.assign(w.size(), 0);
  RACKEP_CHECK(state.sum.size() == w.size(), "LoadWindow: expert count changed between calls");
  state.loads.push_back(w);
  for (size_t l = 0; l < w.size(); ++l) state.sum[l] += w[l];
  if (static_cast<int>(state.loads.size()) > window_) {
    const std::vector<int64_t>& old = state.loads.front();
    for (size_t l = 0; l < old.size(); ++l) state.sum[l] -= old[l];
    state.loads.pop_front();
  }
  state.calls += 1;
}

namespace {

class EplbBalancer : public Balancer {
 public:
  EplbBalancer(const ClusterShape& shape, const EplbOptions& options)
      : shape_(shape),
        layout_(resolve_eplb_layout(shape, options)),
        history_(layout_.window, layout_.period) {}

  std::string name() const override { return "eplb"; }
  bool persistent_replicas() const override { return true; }

  PlanResult plan(const LoadMatrix& loads, const StepContext& ctx) override {
    loads.validate("eplb loads", &shape_);
    auto it = plans_.find(ctx.layer);
    if (it == plans_.end()) {
      Plan initial = Plan::masters_only(shape_, {});
      initial.masters_fixed = false;
      it = plans_.emplace(ctx.layer, std::move(initial)).first;
    }
    if (history_.due(ctx.layer)) it->second = eplb_plan(shape_, layout_, history_.window_sum(ctx.layer));
    PlanResult result;
    result.plan = it->second;
    result.alloc = allocate_round_robin(result.plan, loads);
    result.routed = loads;
    history_.record(ctx.layer,
                    loads.expert_totals());  // only after planning: the plan never sees these loads
    return result;
  }

 private:
  ClusterShape shape_;
  EplbLayout layout_;
  LoadWindow history_;
  std::map<int, Plan> plans_;
};

}  // namespace

std::unique_ptr<Balancer> make_eplb_balancer(const ClusterShape& shape, const BalancerOptions& options) {
  return std::make_unique<EplbBalancer>(shape, options.eplb);
}

}  // namespace rackep
