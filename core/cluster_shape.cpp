#include "core/cluster_shape.hpp"

#include <limits>

#include "core/error.hpp"

namespace rackep {

void ClusterShape::validate(const std::string& source) const {
  if (num_ranks <= 0) throw InputError(source, "ranks", "must be positive, got " + std::to_string(num_ranks));
  if (num_masters <= 0)
    throw InputError(source, "experts",
                     "need at least one master expert per rank, got " + std::to_string(num_masters));
  if (num_redundant < 0)
    throw InputError(source, "slots",
                     "redundant slots per rank must be >= 0, got " + std::to_string(num_redundant));
  if (domain_size <= 0)
    throw InputError(source, "domain", "must be positive, got " + std::to_string(domain_size));
  if (num_ranks % domain_size != 0)
    throw InputError(source, "domain",
                     "ranks (" + std::to_string(num_ranks) +
                         ") must be a multiple of the NVLink domain size (" + std::to_string(domain_size) +
                         ")");
  const int64_t phys = int64_t{num_ranks} * (int64_t{num_masters} + num_redundant);
  const int64_t l2p = int64_t{num_ranks} * num_masters * num_ranks;
  if (phys > std::numeric_limits<int32_t>::max() || l2p > std::numeric_limits<int32_t>::max())
    throw InputError(source, "ranks", "shape too large: ranks x experts x ranks overflows int32");
}

ClusterShape ClusterShape::from_experts(int num_ranks, int num_experts, int num_redundant, int domain_size,
                                        const std::string& source) {
  if (num_ranks <= 0) throw InputError(source, "ranks", "must be positive, got " + std::to_string(num_ranks));
  if (num_experts <= 0 || num_experts % num_ranks != 0)
    throw InputError(source, "experts",
                     std::to_string(num_experts) + " experts cannot be split evenly over " +
                         std::to_string(num_ranks) + " ranks (experts must be a positive multiple of ranks)");
  ClusterShape s{num_ranks, num_experts / num_ranks, num_redundant, domain_size};
  s.validate(source);
  return s;
}

}  // namespace rackep
