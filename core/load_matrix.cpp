#include "core/load_matrix.hpp"

#include <algorithm>
#include <numeric>

#include "core/error.hpp"

namespace rackep {

LoadMatrix::LoadMatrix(int num_ranks, int num_experts)
    : num_ranks_(num_ranks),
      num_experts_(num_experts),
      data_(static_cast<size_t>(num_ranks) * static_cast<size_t>(num_experts), 0) {
  RACKEP_CHECK(num_ranks >= 0 && num_experts >= 0, "negative load matrix shape");
}

LoadMatrix::LoadMatrix(int num_ranks, int num_experts, std::vector<int32_t> values)
    : num_ranks_(num_ranks), num_experts_(num_experts), data_(std::move(values)) {
  RACKEP_CHECK(data_.size() == static_cast<size_t>(num_ranks) * static_cast<size_t>(num_experts),
               "load matrix values do not match its shape");
}

std::vector<int64_t> LoadMatrix::expert_totals() const {
  std::vector<int64_t> w(static_cast<size_t>(num_experts_), 0);
  for (int s = 0; s < num_ranks_; ++s) {
    const int32_t* r = row(s);
    for (int l = 0; l < num_experts_; ++l) w[l] += r[l];
  }
  return w;
}

std::vector<int64_t> LoadMatrix::source_totals() const {
  std::vector<int64_t> t(static_cast<size_t>(num_ranks_), 0);
  for (int s = 0; s < num_ranks_; ++s) {
    const int32_t* r = row(s);
    t[s] = std::accumulate(r, r + num_experts_, int64_t{0});
  }
  return t;
}

std::vector<int64_t> LoadMatrix::rank_loads(const ClusterShape& shape) const {
  RACKEP_CHECK(shape.num_experts() == num_experts_, "shape does not match load matrix");
  const std::vector<int64_t> w = expert_totals();
  std::vector<int64_t> rl(static_cast<size_t>(shape.num_ranks), 0);
  for (int l = 0; l < num_experts_; ++l) rl[shape.master_rank(l)] += w[l];
  return rl;
}

int64_t LoadMatrix::total() const {
  return std::accumulate(data_.begin(), data_.end(), int64_t{0});
}

void LoadMatrix::validate(const std::string& source, const ClusterShape* shape) const {
  if (shape != nullptr) {
    if (shape->num_ranks != num_ranks_)
      throw InputError(source, "num_ranks",
                       "load matrix has " + std::to_string(num_ranks_) + " source ranks, expected " +
                           std::to_string(shape->num_ranks));
    if (shape->num_experts() != num_experts_)
      throw InputError(source, "num_experts",
                       "load matrix has " + std::to_string(num_experts_) + " experts, expected " +
                           std::to_string(shape->num_experts()));
  }
  for (size_t i = 0; i < data_.size(); ++i) {
    if (data_[i] < 0) {
      const size_t s = i / static_cast<size_t>(std::max(num_experts_, 1));
      const size_t l = i % static_cast<size_t>(std::max(num_experts_, 1));
      throw InputError(source, "loads",
                       "negative token count " + std::to_string(data_[i]) + " at source rank " +
                           std::to_string(s) + ", expert " + std::to_string(l));
    }
  }
}

double imbalance(const std::vector<int64_t>& loads) {
  if (loads.empty()) return 1.0;
  const int64_t sum = std::accumulate(loads.begin(), loads.end(), int64_t{0});
  if (sum <= 0) return 1.0;
  const int64_t mx = *std::max_element(loads.begin(), loads.end());
  return static_cast<double>(mx) * static_cast<double>(loads.size()) / static_cast<double>(sum);
}

}  // namespace rackep
