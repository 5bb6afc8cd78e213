// File: core/transfer.hpp
// Data-plane transfer plans (docs/ALGORITHMS.md §3): expert byte sizes, who copies which expert's weights to
// whom in a weight_sync call (direct / adaptive relay / forced relay for fixed-master plans; a resident-set
// diff for persistent placements), the per-rank task lists a tile-streamed GPU copy kernel executes plus a
// CPU reference executor, the grad_reduce pulls, and the analytic cost helpers of §3.5/§3.6. Pure functions,
// no I/O. Usage:
//   rackep::ExpertBytes eb{4096, 1536};                               // Qwen3-235B expert, bf16
//   rackep::TransferPlan tp = rackep::plan_weight_sync(plan, eb, rackep::WeightSyncOptions{});
//   double t_s = rackep::weight_sync_time_s(tp, rackep::WeightSyncCostParams{});
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/plan.hpp"

namespace rackep {

// ---------------------------------------------------------------------------------------------------------
// Expert byte sizes (§3.1, §3.3, §3.6)
// ---------------------------------------------------------------------------------------------------------

/// Sizes of one routed expert's weights and gradients. Two shards: fc1 (gate+up fused, 2·H·F elements) at
/// byte offset 0 of an expert buffer, fc2 (down, H·F elements) right after it. Weights are `elt_bytes` wide
/// (bf16 = 2), gradients are always fp32. FP8 scale shards are not modelled.
struct ExpertBytes {
  int64_t hidden = 0;  ///< H: model hidden size.
  int64_t ffn = 0;     ///< F: expert FFN (intermediate) size.
  int elt_bytes = 2;   ///< bytes per weight element: 1 (fp8), 2 (bf16) or 4 (fp32).

  static constexpr int kNumShards = 2;                  ///< 0 = fc1, 1 = fc2.
  static constexpr int64_t kTileBytes = 32 * 1024;      ///< weight_sync tile (UltraEP config.cuh).
  static constexpr int64_t kChunkBytes = 256 * 1024;    ///< relay chunk = 8 tiles.
  static constexpr int64_t kGradTileBytes = 64 * 1024;  ///< grad_reduce tile (16,384 floats).
  static constexpr int64_t kGradEltBytes = 4;           ///< gradients are fp32.

  int64_t shard_elements(int shard) const { return (shard == 0 ? 2 : 1) * hidden * ffn; }
  int64_t fc1_elements() const { return shard_elements(0); }
  int64_t fc2_elements() const { return shard_elements(1); }
  /// Weight bytes of one shard.
  int64_t shard_bytes(int shard) const { return shard_elements(shard) * elt_bytes; }
  /// Byte offset of a shard inside an expert's contiguous weight buffer (fc1 at 0, fc2 after fc1).
  int64_t shard_offset_bytes(int shard) const { return shard == 0 ? 0 : shard_bytes(0); }
  /// B_w = 3·H·F·elt_bytes: bytes copied per replica.
  int64_t weight_bytes() const { return shard_bytes(0) + shard_bytes(1); }
  /// fp32 gradient bytes of one shard.
  int64_t grad_shard_bytes(int shard) const { return shard_elements(shard) * kGradEltBytes; }
  /// B_g = 3·H·F·4: gradient bytes pulled per replica.
  int64_t grad_bytes() const { return grad_shard_bytes(0) + grad_shard_bytes(1); }

  /// 32 KiB tiles of one weight shard (last one may be short).
  int64_t shard_tiles(int shard) const;
  /// Tiles of a whole expert's weights, summed per shard.
  int64_t weight_tiles() const { return shard_tiles(0) + shard_tiles(1); }
  /// 256 KiB relay chunks of one weight shard (last one may be short).
  int shard_chunks(int shard) const;
  int weight_chunks() const { return shard_chunks(0) + shard_chunks(1); }
  /// Chunks of the larger shard: the stride of the ready-flag index (§3.3).
  int max_chunks_per_shard() const;
  /// 64 KiB grad tiles of one gradient shard and of the whole expert.
  int64_t grad_shard_tiles(int shard) const;
  int64_t grad_tiles() const { return grad_shard_tiles(0) + grad_shard_tiles(1); }

  /// Symmetric-heap memory of one redundant slot: B_w for inference, B_w + B_g in training (§3.1).
  int64_t slot_bytes_inference() const { return weight_bytes(); }
  int64_t slot_bytes_training() const { return weight_bytes() + grad_bytes(); }

  /// Throws InputError(source, field, ...) for non-positive H or F, elt_bytes not in {1, 2, 4}, sizes that
  /// overflow, or shard byte sizes (weights) that are not multiples of 16 (the copy engine stores 16 B
  /// vectors).
  void validate(const std::string& source) const;
};

/// ceil(bytes / tile_bytes) for bytes >= 0, tile_bytes > 0.
int64_t ceil_div_bytes(int64_t bytes, int64_t tile_bytes);

// ---------------------------------------------------------------------------------------------------------
// weight_sync plan modes (§3.4)
// ---------------------------------------------------------------------------------------------------------

enum class WeightSyncMode { kDirect, kAdaptive, kForceRelay };

/// "direct" | "adaptive" | "force_relay"; anything else throws InputError(source, "weight_sync_mode", ...).
WeightSyncMode parse_weight_sync_mode(const std::string& text, const std::string& source);
const char* to_string(WeightSyncMode mode);

/// weight_sync tunables, UltraEP defaults.
struct WeightSyncOptions {
  WeightSyncMode mode = WeightSyncMode::kAdaptive;
  int min_replicas = 4;     ///< adaptive: relay only masters with n >= this many replicas.
  int min_fanout_gain = 2;  ///< adaptive: relay only if n − max(k, ceil((n−k)/k)) >= this.
  int max_relays = 8;       ///< cap on k; 0 = no cap (as in the runtime).
  /// UltraEP's Python layer (ultra_ep/config.py) forces `direct` when G <= 8 (Hopper HGX boxes); this
  /// reproduces it by default. Set 0 to get the bare C++ runtime rule only (relay needs mode != direct, R > 0
  /// and G > 2).
  int direct_max_domain_size = 8;

  /// Throws InputError(source, field, ...) for negative values.
  void validate(const std::string& source) const;
};

/// k = relay count for a master with n replicas: 0 if n <= 1, else min(max(1, floor(sqrt(n))), max_relays,
/// n−1).
int relay_count(int num_replicas, const WeightSyncOptions& options);

/// Per-master decision under `options.mode` (ignores the domain-level gate of effective_weight_sync_mode):
/// direct never relays; force_relay relays iff k >= 1; adaptive relays iff n >= min_replicas and
/// n − max(k, ceil((n−k)/k)) >= min_fanout_gain.
bool use_relay(int num_replicas, const WeightSyncOptions& options);

/// The mode a call really runs under: kDirect when options.mode is direct, R == 0, G <= 2, or
/// G <= direct_max_domain_size (the Python rule); options.mode otherwise.
WeightSyncMode effective_weight_sync_mode(const ClusterShape& shape, const WeightSyncOptions& options);

// ---------------------------------------------------------------------------------------------------------
// Transfer plans
// ---------------------------------------------------------------------------------------------------------

/// One whole-expert copy of B_w bytes.
struct TransferCopy {
  int32_t expert = -1;        ///< logical expert id.
  int32_t src_rank = -1;      ///< sending rank.
  int32_t src_physical = -1;  ///< slot the bytes are read from (master slot, relay's replica slot, old slot).
  int32_t dst_rank = -1;
  int32_t dst_physical = -1;  ///< slot written.
  int stage = 1;  ///< 1 = from the master (or, persistent: from an old holder); 2 = relay forward.
  int64_t bytes = 0;
};

/// One relay of a master's relay tree.
struct RelayNode {
  int32_t rank = -1;
  int32_t physical = -1;                 ///< the relay's own replica slot (filled by stage 1).
  int32_t instance = -1;                 ///< its instance index j (>= 1) in the expert's l2p row.
  std::vector<int32_t> child_ranks;      ///< leaves it forwards to, in l2p order.
  std::vector<int32_t> child_physicals;  ///< same leaves as physical ids.
};

/// The relay tree of one relayed master: master -> relays (stage 1) -> children (stage 2).
struct RelayTree {
  int32_t expert = -1;
  int32_t master_rank = -1;
  int32_t master_physical = -1;
  std::vector<RelayNode> relays;  ///< in pick order (relay i got leaf i as its round-robin seed).
};

enum class TransferKind {
  kFixedMaster,  ///< ultraep / ultraep-legacy: replica slots shared by all layers, refilled every call.
  kPersistent,   ///< eplb / lplb: replicas stay resident per layer; only the diff to the last plan moves.
};

/// What one weight_sync call moves. Ordering contract: copies are grouped per master (fixed-master plans) in
/// the walk order of §3.2 (domain rank 0..G−1, master slot 0..M−1), stage-1 copies first (direct: replicas in
/// l2p order; relay: relays in pick order), then that master's stage-2 copies (relay by relay, children in
/// l2p order).
struct TransferPlan {
  ClusterShape shape;
  ExpertBytes expert;
  TransferKind kind = TransferKind::kFixedMaster;
  WeightSyncMode mode = WeightSyncMode::kDirect;  ///< effective mode (kDirect for persistent plans).
  std::vector<TransferCopy> copies;
  std::vector<RelayTree> relay_trees;  ///< one per relayed master, walk order.
  std::vector<int64_t> egress_bytes;   ///< [N] bytes each rank sends (== the sender-load tally SL of §3.4).
  std::vector<int64_t> ingress_bytes;  ///< [N] bytes each rank receives.
  int relay_levels = 0;                ///< forwarding levels: 1 when any master relays, else 0.

  int64_t num_copies() const { return static_cast<int64_t>(copies.size()); }
  /// Sum of the bytes of all copies (== Σ egress == Σ ingress).
  int64_t total_bytes() const;
  int64_t max_egress_bytes() const;
  int64_t max_ingress_bytes() const;
  /// Rank with the largest egress (ingress); the lowest such rank on ties; -1 when nothing moves.
  int busiest_egress_rank() const;
  int busiest_ingress_rank() const;
  /// Bytes of copies whose sender and receiver lie in different NVLink domains (persistent plans only; always
  /// 0 for fixed-master plans, whose replicas are intra-domain by construction).
  int64_t cross_domain_bytes() const;
};

/// weight_sync of a fixed-master plan (masters_fixed == true: ultraep, ultraep-legacy), §3.2/§3.4. Every
/// replica (instance j >= 1) is refilled from its master: directly, or through a relay tree chosen with the
/// sender-load tally SL, masters walked in domain order. Throws InputError("plan", ...) when the plan is
/// malformed, not fixed-master, or has an instance outside its master's NVLink domain; InputError from
/// eb/options validation.
TransferPlan plan_weight_sync(const Plan& plan, const ExpertBytes& eb, const WeightSyncOptions& options);

/// weight_sync of a persistent placement (masters_fixed == false or Balancer::persistent_replicas(): eplb,
/// lplb). Happens only at re-plan time (when the new plan of a layer differs from the layer's previous one);
/// between re-plans the replicas stay resident and nothing moves. For each (rank, expert) pair of `next`
/// whose rank held no instance of that expert in `previous`, one copy of B_w goes from a rank that held the
/// expert in `previous`: the same NVLink domain as the receiver first, then the smallest sender tally (bytes
/// already assigned to it in this diff), then the lowest rank; it is read from that rank's lowest old slot of
/// the expert and lands in the receiver's lowest new slot of it. Pairs are walked by ascending physical id of
/// `next`. A rank holding several instances of one expert (EPLB allows that) receives the weights once; the
/// extra instances are local copies that move no bytes. Senders are assumed to send the *previous* weights
/// (staged), so slot reuse is not a hazard. For the first plan of a layer pass the initial placement (e.g.
/// Plan::masters_only) as `previous`. Throws InputError("plan", ...) when the plans are malformed or their
/// shapes differ.
TransferPlan plan_persistent_weight_sync(const Plan& previous, const Plan& next, const ExpertBytes& eb);

// ---------------------------------------------------------------------------------------------------------
// Task lists of the tile-streamed copy kernel (§3.2, §3.3) and a CPU reference executor
// ---------------------------------------------------------------------------------------------------------

/// A stage-1 relay task's "ready" signal: on completion of its last tile, write the epoch to flag `flag_slot`
/// of rank `rank`.
struct ReadySignal {
  int32_t rank = -1;
  int32_t flag_slot = -1;
};

/// One copy task: `num_bytes` bytes at byte `offset_bytes` of shard `shard` of the expert in `src_physical`,
/// copied to the same range of every destination slot. Plain data: indices point into the owning StageTasks.
struct WeightSyncTask {
  int32_t expert = -1;
  int32_t shard = 0;   ///< 0 = fc1, 1 = fc2.
  int32_t chunk = -1;  ///< chunk index inside the shard; -1 = whole shard (direct task).
  /// Master slot (stage 1) or the relay's replica slot (stage 2); always on the executing rank.
  int32_t src_physical = -1;
  int64_t offset_bytes = 0;  ///< within the shard.
  int64_t num_bytes = 0;
  int32_t dst_begin = 0;  ///< first destination in StageTasks::dst_physical.
  int32_t num_dst = 0;
  int32_t signal_begin = 0;  ///< first entry in StageTasks::ready_signals (stage-1 relay tasks).
  int32_t num_signals = 0;
  int32_t wait_flag = -1;  ///< stage 2: this rank's ready-flag slot to wait on (flag >= epoch); -1 = none.
  int64_t num_tiles = 0;   ///< ceil(num_bytes / kTileBytes).
};

/// The tasks one stage of one rank runs. tile_offsets[t] is the first global tile of task t (size tasks+1): a
/// persistent block takes global tile g from an atomic counter and binary-searches the owning task.
struct StageTasks {
  std::vector<WeightSyncTask> tasks;
  std::vector<int32_t> dst_physical;
  std::vector<ReadySignal> ready_signals;
  std::vector<int64_t> tile_offsets{0};

  int64_t total_tiles() const { return tile_offsets.back(); }
  /// Index of the task owning global tile `tile` (0 <= tile < total_tiles()).
  int task_of_tile(int64_t tile) const;
};

struct RankWeightSyncTasks {
  StageTasks
      stage1;  ///< from this rank's masters: direct per (master, shard); relay per (master, shard, chunk).
  StageTasks
      stage2;  ///< from this rank's relay slots per (relay, shard, chunk), each waiting on its ready flag.
};

/// Every rank's tasks for one weight_sync call. Ready flag slot of (replica slot s, shard, chunk) on its
/// rank:
/// ((s − M)·2 + shard)·max_chunks_per_shard + chunk; flags_per_rank = R·2·max_chunks_per_shard.
struct WeightSyncTaskList {
  ClusterShape shape;
  ExpertBytes expert;
  int max_chunks_per_shard = 0;
  int flags_per_rank = 0;
  std::vector<RankWeightSyncTasks> ranks;  ///< [N]

  /// Ready-flag slot of (physical replica slot, shard, chunk) on the slot's rank.
  int32_t flag_slot(int32_t physical, int shard, int chunk) const;
};

/// Materialise the §3.2 task lists from a fixed-master TransferPlan (same decisions, same order per rank as
/// the UltraEP build kernel). A persistent TransferPlan (resident-set diff) becomes one direct task per
/// (copy, shard) on the copy's sender, in copy order; its copies read the sender's slot in place, so a slot
/// that one copy reads and another overwrites in the same call is not staged (plan_persistent_weight_sync
/// assumes staged senders): such lists time the movement exactly but may copy the new content.
WeightSyncTaskList build_weight_sync_tasks(const TransferPlan& plan);

/// What the CPU executor did.
struct CpuCopyStats {
  int64_t tiles = 0;          ///< tiles copied (each to all destinations of its task).
  int64_t bytes_written = 0;  ///< bytes stored into destination slots.
  int64_t signals = 0;        ///< ready flags raised.
};

/// CPU reference of the copy engine: `slot_buffers[p]` is the B_w-byte weight buffer of physical slot p (fc1
/// then fc2). Runs every rank's stage 1 and stage 2 as two concurrent persistent streams per rank, each
/// taking tiles in global tile order (binary search over tile_offsets) and copying them with memcpy.
/// Schedule, repeated until done: every rank's stage 2 runs ahead as far as its ready flags allow, then every
/// rank's stage 1 copies one tile (raising its ready signals after a task's last tile). Forwarding thus never
/// waits for anything but its flag, so a signal raised before its chunk is complete would leave garbage in
/// the children. Slots the tasks do not touch may be empty. Throws InputError("weight_sync cpu",
/// "slot_buffers", ...) when a touched buffer has the wrong size; RACKEP_CHECK fails when stage 2 deadlocks
/// on a flag nobody raises.
CpuCopyStats execute_weight_sync_cpu(const WeightSyncTaskList& tasks,
                                     std::vector<std::vector<uint8_t>>& slot_buffers);

// ---------------------------------------------------------------------------------------------------------
// grad_reduce pulls (§3.6)
// ---------------------------------------------------------------------------------------------------------

/// One replica gradient pulled into its master: the puller reads B_g from the replica host and writes B_g of
/// zeros back (one fc1 task + one fc2 task).
struct GradPull {
  int32_t expert = -1;
  int32_t instance = -1;         ///< j >= 1 in l2p order.
  int32_t puller_rank = -1;      ///< rank of instance 0 (the master for fixed-master plans).
  int32_t master_physical = -1;  ///< slot of instance 0.
  int32_t replica_rank = -1;
  int32_t replica_physical = -1;
  int64_t bytes = 0;  ///< B_g read (and, separately, B_g of zeros written).
};

/// Every pull of one grad_reduce call and its per-rank totals.
struct GradReducePlan {
  ClusterShape shape;
  ExpertBytes expert;
  std::vector<GradPull> pulls;         ///< by expert, then instance.
  std::vector<int64_t> pulled_bytes;   ///< [N] gradient bytes each rank reads (as puller): SM-bound work.
  std::vector<int64_t> written_bytes;  ///< [N] zero bytes each rank writes back (as puller).
  std::vector<int64_t> served_bytes;   ///< [N] bytes read out of each rank's replica gradient buffers.
  std::vector<int64_t> zeroed_bytes;   ///< [N] bytes of zeros written into each rank's replica buffers.
  std::vector<int32_t> num_tasks;      ///< [N] two per pull (fc1, fc2) on the puller.
  std::vector<int64_t> grad_tiles;     ///< [N] 64 KiB tiles of those tasks.

  int64_t total_pulled_bytes() const;
  int64_t max_pulled_bytes() const;
};

/// grad_reduce of one layer's plan. Fixed-master plans: for each master (expert order == rank-major, slot
/// order) and each replica j = 1..C−1 in l2p order, the master's rank pulls. Persistent placements
/// (masters_fixed == false, no master): instance 0 plays the master, i.e. every instance j >= 1 is pulled by
/// instance 0's rank; a pull between two instances on the same rank (EPLB duplicates) is still listed and
/// counted (it is SM work) but crosses no link, and a pull across NVLink domains goes over the scale-out
/// fabric — the simulator decides how to cost those. Throws InputError("plan", ...) for a malformed plan.
GradReducePlan plan_grad_reduce(const Plan& plan, const ExpertBytes& eb);

// ---------------------------------------------------------------------------------------------------------
// Analytic cost model (§3.5, §3.6)
// ---------------------------------------------------------------------------------------------------------

/// t_ws = launch_s + max_r max(E_r / egress_bytes_per_s, I_r / ingress_bytes_per_s)
///        + relay_levels · kChunkBytes / egress_bytes_per_s.
/// Defaults: the least-squares fit of the README EP64 direct-mode figures (§3.5: 0.214/0.265/0.317 ms for
/// 4/5/6 replicas of a 36 MiB expert → t0 ≈ 8 µs, ≈ 733 GB/s marginal per-GPU egress). Ingress is not
/// separately measured there; it defaults to the same figure. Calibrate on the device before relying on them.
struct WeightSyncCostParams {
  double launch_s = 8e-6;
  double egress_bytes_per_s = 733e9;
  double ingress_bytes_per_s = 733e9;
  /// Throws InputError(source, field, ...) unless launch_s >= 0 and both bandwidths > 0.
  void validate(const std::string& source) const;
};

/// Analytic time of one weight_sync call. A plan with no copies still costs launch_s (task build + launch
/// run); callers that skip the call altogether (persistent plans between re-plans) should not charge it.
double weight_sync_time_s(const TransferPlan& plan, const WeightSyncCostParams& params);

/// t_gr = pulled_bytes / (num_sms · bytes_per_sm_s). Defaults: 42 SMs (grad_reduce_num_sms, §3.6) and the
/// per-SM pull rate of the README EP64 point with 6 replicas of a 72 MiB fp32 expert: 6·75,497,472 B / 2.425
/// ms / 42 SMs ≈ 4.45e9 B/s per SM ([inferred], §3.6: calibrate b_SM on the device).
struct GradReduceCostParams {
  int num_sms = 42;
  double bytes_per_sm_s = 4.45e9;
  /// Throws InputError(source, field, ...) unless num_sms > 0 and bytes_per_sm_s > 0.
  void validate(const std::string& source) const;
};

double grad_reduce_time_s(int64_t pulled_bytes, const GradReduceCostParams& params);
/// The busiest puller bounds the call: grad_reduce_time_s(plan.max_pulled_bytes(), params).
double grad_reduce_time_s(const GradReducePlan& plan, const GradReduceCostParams& params);

namespace detail {
/// Shared plan checks of the transfer planners: array sizes, lcnt in [1, N], l2p entries in range and
/// consistent with p2l; with `fixed_masters`, instance 0 is the master slot, replicas sit in redundant slots
/// inside the master's NVLink domain on distinct ranks. Throws InputError(source, field, ...).
void check_transfer_plan(const Plan& plan, bool fixed_masters, const std::string& source);
}  // namespace detail

}  // namespace rackep
