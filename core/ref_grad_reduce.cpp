#include "core/ref_grad_reduce.hpp"

#include <algorithm>
#include <string>

#include "core/error.hpp"

namespace rackep {

std::vector<GradReduceGroup> grad_reduce_groups(const GradReducePlan& plan) {
  std::vector<GradReduceGroup> groups;
  for (const GradPull& pull : plan.pulls) {
    if (groups.empty() || groups.back().expert != pull.expert ||
        groups.back().master_physical != pull.master_physical) {
      GradReduceGroup g;
      g.expert = pull.expert;
      g.master_physical = pull.master_physical;
      groups.push_back(g);
    }
    groups.back().replica_physicals.push_back(pull.replica_physical);
  }
  return groups;
}

void grad_reduce_reference(const GradReducePlan& plan, std::vector<std::vector<float>>& slot_grads) {
  const size_t floats = static_cast<size_t>(plan.expert.grad_bytes() / ExpertBytes::kGradEltBytes);
  auto buffer = [&](int32_t p) -> float* {
    if (p < 0 || static_cast<size_t>(p) >= slot_grads.size() || slot_grads[p].size() != floats)
      throw InputError("grad_reduce cpu", "slot_grads",
                       "slot " + std::to_string(p) + " needs " + std::to_string(floats) + " floats");
    return slot_grads[p].data();
  };
  for (const GradReduceGroup& g : grad_reduce_groups(plan)) {
    float* master = buffer(g.master_physical);
    std::vector<float*> replicas;
    for (int32_t p : g.replica_physicals) replicas.push_back(buffer(p));
    for (size_t i = 0; i < floats; ++i) {
      float acc = master[i];
      for (float* r : replicas) {
        acc += r[i];
        r[i] = 0.0f;
      }
      master[i] = acc;
    }
  }
}

}  // namespace rackep
