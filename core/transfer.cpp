// weight_sync transfer plans (docs/ALGORITHMS.md §3.1, §3.4): expert sizes, plan modes, the fixed-master
// relay planner and the persistent-placement diff. Task lists live in transfer_tasks.cpp, grad_reduce and
// costs in transfer_grad.cpp.
#include "core/transfer.hpp"

#include <algorithm>
#include <limits>

#include "core/error.hpp"

namespace rackep {

// ---------------------------------------------------------------------------------------------------------
// ExpertBytes
// ---------------------------------------------------------------------------------------------------------

int64_t ceil_div_bytes(int64_t bytes, int64_t tile_bytes) {
  RACKEP_CHECK(bytes >= 0 && tile_bytes > 0, "ceil_div_bytes needs bytes >= 0 and tile_bytes > 0");
  return (bytes + tile_bytes - 1) / tile_bytes;
}

int64_t ExpertBytes::shard_tiles(int shard) const {
  return ceil_div_bytes(shard_bytes(shard), kTileBytes);
}

int ExpertBytes::shard_chunks(int shard) const {
  return static_cast<int>(ceil_div_bytes(shard_bytes(shard), kChunkBytes));
}

int ExpertBytes::max_chunks_per_shard() const {
  return std::max(shard_chunks(0), shard_chunks(1));
}

int64_t ExpertBytes::grad_shard_tiles(int shard) const {
  return ceil_div_bytes(grad_shard_bytes(shard), kGradTileBytes);
}

void ExpertBytes::validate(const std::string& source) const {
  if (hidden <= 0) throw InputError(source, "hidden", "must be positive, got " + std::to_string(hidden));
  if (ffn <= 0) throw InputError(source, "ffn", "must be positive, got " + std::to_string(ffn));
  if (elt_bytes != 1 && elt_bytes != 2 && elt_bytes != 4)
    throw InputError(source, "elt_bytes", "must be 1, 2 or 4, got " + std::to_string(elt_bytes));
  // B_g = 3·H·F·4 is the largest size computed; keep it (and tile/flag counts in int32) well inside range.
  constexpr int64_t kMaxElements = int64_t{1} << 40;
  if (hidden > kMaxElements / ffn || 3 * hidden * ffn > kMaxElements)
    throw InputError(source, "ffn", "expert too large: 3 x hidden x ffn exceeds 2^40 elements");
  for (int shard = 0; shard < kNumShards; ++shard)
    if (shard_bytes(shard) % 16 != 0)
      throw InputError(source, shard == 0 ? "fc1" : "fc2",
                       "shard bytes (" + std::to_string(shard_bytes(shard)) +
                           ") must be a multiple of 16 (16-byte vector stores)");
}

// ---------------------------------------------------------------------------------------------------------
// Modes and the per-master relay decision
// ---------------------------------------------------------------------------------------------------------

WeightSyncMode parse_weight_sync_mode(const std::string& text, const std::string& source) {
  if (text == "direct") return WeightSyncMode::kDirect;
  if (text == "adaptive") return WeightSyncMode::kAdaptive;
  if (text == "force_relay") return WeightSyncMode::kForceRelay;
  throw InputError(source, "weight_sync_mode",
                   "unknown mode '" + text + "' (expected direct, adaptive or force_relay)");
}

const char* to_string(WeightSyncMode mode) {
  switch (mode) {
    case WeightSyncMode::kDirect:
      return "direct";
    case WeightSyncMode::kAdaptive:
      return "adaptive";
    case WeightSyncMode::kForceRelay:
      return "force_relay";
  }
  return "unknown";
}

void WeightSyncOptions::validate(const std::string& source) const {
  if (min_replicas < 0)
    throw InputError(source, "min_replicas", "must be >= 0, got " + std::to_string(min_replicas));
  if (min_fanout_gain < 0)
    throw InputError(source, "min_fanout_gain", "must be >= 0, got " + std::to_string(min_fanout_gain));
  if (max_relays < 0)
    throw InputError(source, "max_relays", "must be >= 0 (0 = no cap), got " + std::to_string(max_relays));
  if (direct_max_domain_size < 0)
    throw InputError(source, "direct_max_domain_size",
                     "must be >= 0 (0 = off), got " + std::to_string(direct_max_domain_size));
}

namespace {

int floor_sqrt(int x) {
  int root = 0;
  while (int64_t{root + 1} * (root + 1) <= x) ++root;
  return root;
}

int ceil_div_int(int a, int b) {
  return (a + b - 1) / b;
}

}  // namespace

int relay_count(int num_replicas, const WeightSyncOptions& options) {
  if (num_replicas <= 1) return 0;
  int k = std::max(1, floor_sqrt(num_replicas));
  if (options.max_relays > 0) k = std::min(k, options.max_relays);
  return std::min(k, num_replicas - 1);
}

bool use_relay(int num_replicas, const WeightSyncOptions& options) {
  if (options.mode == WeightSyncMode::kDirect) return false;
  const int k = relay_count(num_replicas, options);
  if (k <= 0) return false;
  if (options.mode == WeightSyncMode::kForceRelay) return true;
  if (num_replicas < options.min_replicas) return false;
  const int critical_fanout = std::max(k, ceil_div_int(num_replicas - k, k));
  return num_replicas - critical_fanout >= options.min_fanout_gain;
}

WeightSyncMode effective_weight_sync_mode(const ClusterShape& shape, const WeightSyncOptions& options) {
  if (options.mode == WeightSyncMode::kDirect || shape.num_redundant <= 0 || shape.domain_size <= 2)
    return WeightSyncMode::kDirect;
  if (options.direct_max_domain_size > 0 && shape.domain_size <= options.direct_max_domain_size)
    return WeightSyncMode::kDirect;
  return options.mode;
}

// ---------------------------------------------------------------------------------------------------------
// Plan checks
// ---------------------------------------------------------------------------------------------------------

namespace detail {

void check_transfer_plan(const Plan& plan, bool fixed_masters, const std::string& source) {
  const ClusterShape& s = plan.shape;
  s.validate(source);
  const int n = s.num_ranks;
  const int l_count = s.num_experts();
  const int phys_count = s.num_physical();
  if (static_cast<int64_t>(plan.p2l.size()) != phys_count)
    throw InputError(
        source, "p2l",
        "has " + std::to_string(plan.p2l.size()) + " entries, expected " + std::to_string(phys_count));
  if (static_cast<int64_t>(plan.lcnt.size()) != l_count)
    throw InputError(
        source, "lcnt",
        "has " + std::to_string(plan.lcnt.size()) + " entries, expected " + std::to_string(l_count));
  if (static_cast<int64_t>(plan.l2p.size()) != int64_t{l_count} * n)
    throw InputError(source, "l2p",
                     "has " + std::to_string(plan.l2p.size()) +
                         " entries, expected L x N = " + std::to_string(int64_t{l_count} * n));
  if (fixed_masters && !plan.masters_fixed)
    throw InputError(source, "masters_fixed",
                     "plan moves masters; use plan_persistent_weight_sync for persistent placements");
  int64_t instances = 0;
  for (int l = 0; l < l_count; ++l) {
    const int c = plan.lcnt[l];
    const std::string where = "expert " + std::to_string(l);
    if (c < 1 || c > n)
      throw InputError(source, "lcnt", where + " has " + std::to_string(c) + " instances (need 1..N)");
    instances += c;
    for (int j = 0; j < n; ++j) {
      const int32_t p = plan.physical(l, j);
      if (j >= c) {
        if (p != -1)
          throw InputError(source, "l2p", where + ": column " + std::to_string(j) + " beyond lcnt");
        continue;
      }
      if (p < 0 || p >= phys_count)
        throw InputError(source, "l2p",
                         where + ": instance " + std::to_string(j) + " has physical id " + std::to_string(p) +
                             " out of range");
      if (plan.p2l[p] != l)
        throw InputError(source, "p2l",
                         "slot " + std::to_string(p) + " does not hold " + where + " although l2p says so");
      if (!fixed_masters) continue;
      if (j == 0) {
        if (p != s.master_physical(l))
          throw InputError(source, "l2p", where + ": instance 0 is not its master slot");
        continue;
      }
      const int r = s.rank_of_physical(p);
      if (s.slot_of_physical(p) < s.num_masters)
        throw InputError(source, "l2p", where + ": replica " + std::to_string(j) + " sits in a master slot");
      if (s.domain_of_rank(r) != s.domain_of_rank(s.master_rank(l)))
        throw InputError(
            source, "l2p",
            where + ": replica " + std::to_string(j) + " lies outside its master's NVLink domain");
      for (int i = 0; i < j; ++i)
        if (plan.host(l, i) == r)
          throw InputError(source, "l2p", where + " has two instances on rank " + std::to_string(r));
    }
  }
  int64_t filled = 0;
  for (int32_t l : plan.p2l) {
    if (l < -1 || l >= l_count)
      throw InputError(source, "p2l", "logical id " + std::to_string(l) + " out of range");
    if (l >= 0) ++filled;
  }
  if (filled != instances)
    throw InputError(source, "p2l",
                     std::to_string(filled) + " filled slots but lcnt sums to " + std::to_string(instances));
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------
// TransferPlan helpers
// ---------------------------------------------------------------------------------------------------------

namespace {

int argmax_lowest(const std::vector<int64_t>& v) {
  int best = -1;
  for (size_t r = 0; r < v.size(); ++r)
    if (v[r] > 0 && (best < 0 || v[r] > v[best])) best = static_cast<int>(r);
  return best;
}

TransferPlan empty_transfer_plan(const ClusterShape& shape, const ExpertBytes& eb, TransferKind kind) {
  TransferPlan tp;
  tp.shape = shape;
  tp.expert = eb;
  tp.kind = kind;
  tp.egress_bytes.assign(static_cast<size_t>(shape.num_ranks), 0);
  tp.ingress_bytes.assign(static_cast<size_t>(shape.num_ranks), 0);
  return tp;
}

void add_copy(TransferPlan& tp, int32_t expert, int32_t src_physical, int32_t dst_physical, int stage) {
  TransferCopy c;
  c.expert = expert;
  c.src_physical = src_physical;
  c.src_rank = tp.shape.rank_of_physical(src_physical);
  c.dst_physical = dst_physical;
  c.dst_rank = tp.shape.rank_of_physical(dst_physical);
  c.stage = stage;
  c.bytes = tp.expert.weight_bytes();
  tp.egress_bytes[c.src_rank] += c.bytes;
  tp.ingress_bytes[c.dst_rank] += c.bytes;
  tp.copies.push_back(c);
}

}  // namespace

int64_t TransferPlan::total_bytes() const {
  int64_t sum = 0;
  for (const TransferCopy& c : copies) sum += c.bytes;
  return sum;
}

int64_t TransferPlan::max_egress_bytes() const {
  return egress_bytes.empty() ? 0 : *std::max_element(egress_bytes.begin(), egress_bytes.end());
}

int64_t TransferPlan::max_ingress_bytes() const {
  return ingress_bytes.empty() ? 0 : *std::max_element(ingress_bytes.begin(), ingress_bytes.end());
}

int TransferPlan::busiest_egress_rank() const {
  return argmax_lowest(egress_bytes);
}
int TransferPlan::busiest_ingress_rank() const {
  return argmax_lowest(ingress_bytes);
}

int64_t TransferPlan::cross_domain_bytes() const {
  int64_t sum = 0;
  for (const TransferCopy& c : copies)
    if (shape.domain_of_rank(c.src_rank) != shape.domain_of_rank(c.dst_rank)) sum += c.bytes;
  return sum;
}

// ---------------------------------------------------------------------------------------------------------
// Fixed-master weight_sync (§3.2, §3.4)
// ---------------------------------------------------------------------------------------------------------

namespace {

/// Relay tree of one master with replicas `replicas` (physical ids, l2p order) given the tally SL (bytes each
/// rank will send, over masters walked earlier). Mirrors the UltraEP build kernel's tie-breaks exactly.
RelayTree choose_relay_tree(const ClusterShape& shape, int expert, int master_physical,
                            const std::vector<int32_t>& replicas, int k,
                            const std::vector<int64_t>& sender_load, int64_t weight_bytes) {
  const int n = static_cast<int>(replicas.size());
  std::vector<bool> picked(static_cast<size_t>(n), false);
  std::vector<int> relay_idx;  // replica index (0-based among replicas) of each relay, pick order
  std::vector<int> relay_rank;
  for (int i = 0; i < k; ++i) {
    int best = -1;
    int best_penalty = 0;
    int64_t best_load = 0;
    int best_rank = 0;
    for (int c = 0; c < n; ++c) {
      if (picked[c]) continue;
      const int r = shape.rank_of_physical(replicas[c]);
      // A rank that already relays this master is penalised; impossible for legal plans (one instance per
      // rank).
      const int penalty = std::find(relay_rank.begin(), relay_rank.end(), r) != relay_rank.end() ? 1 : 0;
      const int64_t load = sender_load[r];
      const bool better =
          best < 0 || penalty < best_penalty ||
          (penalty == best_penalty && (load < best_load || (load == best_load && r < best_rank)));
      // Equal (penalty, load, rank) keeps the earlier replica index, which is the last tie-break.
      if (!better) continue;
      best = c;
      best_penalty = penalty;
      best_load = load;
      best_rank = r;
    }
    RACKEP_CHECK(best >= 0, "relay selection ran out of replicas");
    picked[best] = true;
    relay_idx.push_back(best);
    relay_rank.push_back(best_rank);
  }

  std::vector<int64_t> projected(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) projected[i] = sender_load[relay_rank[i]];
  std::vector<int> owner(static_cast<size_t>(n), -1);
  std::vector<int> children(static_cast<size_t>(k), 0);
  int leaf_order = 0;
  for (int c = 0; c < n; ++c) {
    if (picked[c]) continue;
    int own = -1;
    if (leaf_order < k) {
      own = leaf_order;  // round-robin seed: leaf i < k goes to relay i
    } else {
      for (int i = 0; i < k; ++i) {
        const bool better = own < 0 || projected[i] < projected[own] ||
                            (projected[i] == projected[own] &&
                             (children[i] < children[own] ||
                              (children[i] == children[own] &&
                               (relay_rank[i] < relay_rank[own] ||
                                (relay_rank[i] == relay_rank[own] && relay_idx[i] < relay_idx[own])))));
        if (better) own = i;
      }
    }
    ++leaf_order;
    owner[c] = own;
    children[own] += 1;
    projected[own] += weight_bytes;
  }

  RelayTree tree;
  tree.expert = expert;
  tree.master_physical = master_physical;
  tree.master_rank = shape.rank_of_physical(master_physical);
  tree.relays.resize(static_cast<size_t>(k));
  for (int i = 0; i < k; ++i) {
    RelayNode& node = tree.relays[i];
    node.physical = replicas[relay_idx[i]];
    node.rank = relay_rank[i];
    node.instance = relay_idx[i] + 1;
  }
  for (int c = 0; c < n; ++c) {
    if (owner[c] < 0) continue;
    tree.relays[owner[c]].child_physicals.push_back(replicas[c]);
    tree.relays[owner[c]].child_ranks.push_back(shape.rank_of_physical(replicas[c]));
  }
  return tree;
}

}  // namespace

TransferPlan plan_weight_sync(const Plan& plan, const ExpertBytes& eb, const WeightSyncOptions& options) {
  eb.validate("expert bytes");
  options.validate("weight_sync options");
  detail::check_transfer_plan(plan, /*fixed_masters=*/true, "plan");
  const ClusterShape& shape = plan.shape;
  TransferPlan tp = empty_transfer_plan(shape, eb, TransferKind::kFixedMaster);
  tp.mode = effective_weight_sync_mode(shape, options);
  WeightSyncOptions run_options = options;
  run_options.mode = tp.mode;
  const int64_t bw = eb.weight_bytes();
  const int s = shape.slots_per_rank();

  // NOTE: the tally is per rank; domains are disjoint and every copy stays in its domain, so one array walked
  // rank by rank equals UltraEP's per-domain tallies (each rank solves its own domain the same way).
  std::vector<int64_t> sender_load(static_cast<size_t>(shape.num_ranks), 0);
  for (int rank = 0; rank < shape.num_ranks; ++rank) {
    for (int slot = 0; slot < shape.num_masters; ++slot) {
      const int master_phys = rank * s + slot;
      const int l = plan.p2l[master_phys];
      if (l < 0) continue;
      const int n = plan.lcnt[l] - 1;
      if (n <= 0) continue;
      std::vector<int32_t> replicas(static_cast<size_t>(n));
      for (int j = 1; j <= n; ++j) replicas[j - 1] = plan.physical(l, j);

      if (!use_relay(n, run_options)) {
        sender_load[rank] += int64_t{n} * bw;
        for (int32_t p : replicas) add_copy(tp, l, master_phys, p, /*stage=*/1);
        continue;
      }
      const int k = relay_count(n, run_options);
      RelayTree tree = choose_relay_tree(shape, l, master_phys, replicas, k, sender_load, bw);
      sender_load[rank] += int64_t{k} * bw;
      for (const RelayNode& node : tree.relays) {
        sender_load[node.rank] += static_cast<int64_t>(node.child_physicals.size()) * bw;
        add_copy(tp, l, master_phys, node.physical, /*stage=*/1);
      }
      for (const RelayNode& node : tree.relays) {
        for (int32_t child : node.child_physicals) add_copy(tp, l, node.physical, child, /*stage=*/2);
        if (!node.child_physicals.empty()) tp.relay_levels = 1;
      }
      tp.relay_trees.push_back(std::move(tree));
    }
  }
  RACKEP_CHECK(sender_load == tp.egress_bytes, "sender-load tally differs from the egress of the copies");
  return tp;
}

// ---------------------------------------------------------------------------------------------------------
// Persistent placements: the resident-set diff
// ---------------------------------------------------------------------------------------------------------

TransferPlan plan_persistent_weight_sync(const Plan& previous, const Plan& next, const ExpertBytes& eb) {
  eb.validate("expert bytes");
  if (!(previous.shape == next.shape))
    throw InputError("plan", "shape", "previous and next plans have different cluster shapes");
  detail::check_transfer_plan(previous, /*fixed_masters=*/false, "plan (previous)");
  detail::check_transfer_plan(next, /*fixed_masters=*/false, "plan (next)");
  const ClusterShape& shape = next.shape;
  const int n = shape.num_ranks;
  const int l_count = shape.num_experts();
  TransferPlan tp = empty_transfer_plan(shape, eb, TransferKind::kPersistent);

  // old_slot[l * N + r]: lowest slot of rank r holding l in `previous`, -1 if none.
  std::vector<int32_t> old_slot(static_cast<size_t>(l_count) * n, -1);
  for (int p = 0; p < shape.num_physical(); ++p) {
    const int l = previous.p2l[p];
    if (l < 0) continue;
    int32_t& o = old_slot[static_cast<size_t>(l) * n + shape.rank_of_physical(p)];
    if (o < 0) o = p;  // ascending p: the first hit is the lowest
  }
  std::vector<bool> handled(static_cast<size_t>(l_count) * n, false);
  std::vector<int64_t> sender_tally(static_cast<size_t>(n), 0);
  for (int p = 0; p < shape.num_physical(); ++p) {
    const int l = next.p2l[p];
    if (l < 0) continue;
    const int r = shape.rank_of_physical(p);
    const size_t key = static_cast<size_t>(l) * n + r;
    if (old_slot[key] >= 0 || handled[key]) continue;  // resident, or this rank already receives l
    handled[key] = true;
    int best = -1;
    bool best_same = false;
    for (int src = 0; src < n; ++src) {
      if (old_slot[static_cast<size_t>(l) * n + src] < 0) continue;
      const bool same = shape.domain_of_rank(src) == shape.domain_of_rank(r);
      // Ranks are scanned in ascending order, so strict comparisons keep the lowest rank on ties.
      if (best < 0 || (same && !best_same) || (same == best_same && sender_tally[src] < sender_tally[best])) {
        best = src;
        best_same = same;
      }
    }
    RACKEP_CHECK(best >= 0, "expert has no instance in the previous plan");
    add_copy(tp, l, old_slot[static_cast<size_t>(l) * n + best], p, /*stage=*/1);
    sender_tally[best] += eb.weight_bytes();
  }
  return tp;
}

}  // namespace rackep
