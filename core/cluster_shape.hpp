// File: core/cluster_shape.hpp
// ClusterShape: the EP group of docs/ALGORITHMS.md §1. N ranks, M master experts per rank, R redundant slots
// per rank, NVLink domains of G consecutive ranks. Logical expert l is mastered on rank l / M, slot l % M;
// physical id p = rank * S + slot with S = M + R.
// Usage:
//   rackep::ClusterShape shape{64, 4, 2, 64};
//   shape.validate("--ranks/--slots/--domain");
//   int p = shape.master_physical(l);
#pragma once

#include <cstdint>
#include <string>

namespace rackep {

struct ClusterShape {
  int num_ranks = 0;      ///< N: EP ranks (GPUs) in the group.
  int num_masters = 0;    ///< M: master experts per rank; L = N * M logical experts.
  int num_redundant = 0;  ///< R: redundant (replica) slots per rank.
  int domain_size = 0;    ///< G: ranks per NVLink domain; N % G == 0.

  int num_experts() const { return num_ranks * num_masters; }
  int slots_per_rank() const { return num_masters + num_redundant; }
  int num_physical() const { return num_ranks * slots_per_rank(); }
  int num_domains() const { return num_ranks / domain_size; }
  int domain_of_rank(int rank) const { return rank / domain_size; }
  int master_rank(int expert) const { return expert / num_masters; }
  int master_physical(int expert) const {
    return master_rank(expert) * slots_per_rank() + expert % num_masters;
  }
  int rank_of_physical(int physical) const { return physical / slots_per_rank(); }
  int slot_of_physical(int physical) const { return physical % slots_per_rank(); }

  /// Throws InputError(source, field, ...) when the shape is impossible: non-positive N, M or G, negative R,
  /// N not a multiple of G, or sizes whose products overflow int32.
  void validate(const std::string& source) const;

  /// Shape for `num_experts` logical experts over `num_ranks` ranks; throws InputError when L % N != 0.
  static ClusterShape from_experts(int num_ranks, int num_experts, int num_redundant, int domain_size,
                                   const std::string& source);

  bool operator==(const ClusterShape& o) const {
    return num_ranks == o.num_ranks && num_masters == o.num_masters && num_redundant == o.num_redundant &&
           domain_size == o.domain_size;
  }
};

}  // namespace rackep
