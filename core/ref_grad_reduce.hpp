// File: core/ref_grad_reduce.hpp
// CPU reference of the deterministic grad_reduce kernel (docs/ALGORITHMS.md §3.6): for every master of a
// GradReducePlan (core/transfer.hpp), each fp32 gradient element becomes ((g_master + g_1) + g_2) + ... with
// the replicas j = 1, 2, ... in l2p order, and every replica gradient buffer touched is zeroed. The GPU
// kernel must match it bit for bit on every run. Usage:
//   rackep::GradReducePlan gp = rackep::plan_grad_reduce(plan, eb);
//   rackep::grad_reduce_reference(gp, slot_grads);   // slot_grads[p]: eb.grad_bytes() / 4 floats, fc1 then
//   fc2
#pragma once

#include <cstdint>
#include <vector>

#include "core/transfer.hpp"

namespace rackep {

/// One master's reduction: the master's slot and its replicas' slots in summation order.
struct GradReduceGroup {
  int32_t expert = -1;
  int32_t master_physical = -1;
  std::vector<int32_t> replica_physicals;  ///< instance order j = 1, 2, ...
};

/// The pulls of `plan` grouped per master (pulls of one expert are contiguous and in instance order).
std::vector<GradReduceGroup> grad_reduce_groups(const GradReducePlan& plan);

/// Runs the ordered sum in place. `slot_grads[p]` is physical slot p's gradient (plan.expert.grad_bytes() / 4
/// floats: fc1 then fc2); slots no pull touches may be empty. Throws InputError("grad_reduce cpu", ...) when
/// a touched buffer has the wrong size.
void grad_reduce_reference(const GradReducePlan& plan, std::vector<std::vector<float>>& slot_grads);

}  // namespace rackep
