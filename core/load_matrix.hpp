// File: core/load_matrix.hpp
// LoadMatrix: tokens routed from each source rank to each logical expert for one (layer, microbatch),
// N x L int32, row-major (row = source rank). A "token" is one routed (token, expert) pair.
// Usage:
//   rackep::LoadMatrix m(4, 8);
//   m.at(0, 3) = 120;
//   std::vector<int64_t> w = m.expert_totals();   // W[l]
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cluster_shape.hpp"

namespace rackep {

class LoadMatrix {
 public:
  LoadMatrix() = default;
  LoadMatrix(int num_ranks, int num_experts);
  LoadMatrix(int num_ranks, int num_experts, std::vector<int32_t> values);

  int num_ranks() const { return num_ranks_; }
  int num_experts() const { return num_experts_; }
  int32_t at(int source, int expert) const { return data_[index(source, expert)]; }
  int32_t& at(int source, int expert) { return data_[index(source, expert)]; }
  const int32_t* row(int source) const { return data_.data() + index(source, 0); }
  int32_t* row(int source) { return data_.data() + index(source, 0); }
  const std::vector<int32_t>& values() const { return data_; }
  std::vector<int32_t>& values() { return data_; }

  /// W[l] = sum over source ranks.
  std::vector<int64_t> expert_totals() const;
  /// Tokens routed by each source rank (row sums).
  std::vector<int64_t> source_totals() const;
  /// RL[r] = sum of W over the masters of rank r (load before balancing).
  std::vector<int64_t> rank_loads(const ClusterShape& shape) const;
  int64_t total() const;

  /// Throws InputError(source, "loads", ...) naming the first negative entry, or a shape that does not match.
  void validate(const std::string& source, const ClusterShape* shape = nullptr) const;

  bool operator==(const LoadMatrix& o) const {
    return num_ranks_ == o.num_ranks_ && num_experts_ == o.num_experts_ && data_ == o.data_;
  }

 private:
  size_t index(int source, int expert) const {
    return static_cast<size_t>(source) * static_cast<size_t>(num_experts_) + static_cast<size_t>(expert);
  }
  int num_ranks_ = 0;
  int num_experts_ = 0;
  std::vector<int32_t> data_;
};

/// max / mean of `loads` (1.0 when the mean is 0), the paper's imbalance metric.
double imbalance(const std::vector<int64_t>& loads);

}  // namespace rackep
