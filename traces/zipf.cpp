#include "traces/zipf.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace rackep {
namespace {

double sum_inclusion(const std::vector<float>& w, double c) {
  double s = 0.0;
  for (float x : w) s += 1.0 - std::exp(-c * static_cast<double>(x));
  return s;
}

}  // namespace

std::vector<float> zipf_weights(int num_ranks, int num_masters, double alpha) {
  RACKEP_CHECK(num_ranks > 0 && num_masters > 0, "zipf_weights: empty shape");
  const double beta = num_masters > 1 ? 4.0 : 0.0;
  std::vector<double> w(static_cast<size_t>(num_ranks) * num_masters);
  double total = 0.0;
  for (int r = 0; r < num_ranks; ++r) {
    const double rw = 1.0 / std::pow(r + 1.0, alpha);
    for (int m = 0; m < num_masters; ++m) {
      const double v = rw * (1.0 / std::pow(m + 1.0, beta));
      w[static_cast<size_t>(r) * num_masters + m] = v;
      total += v;
    }
  }
  std::vector<float> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = static_cast<float>(w[i] / total);
  return out;
}

std::vector<double> inclusion_probabilities(const std::vector<float>& weights, int top_k) {
  std::vector<double> p(weights.size(), 1.0);
  if (top_k >= static_cast<int>(weights.size())) return p;
  double c = 1.0;
  // NOTE: bounded so that weights that underflowed to 0 (sum p can never reach k) cannot hang the search.
  for (int i = 0; i < 2000 && sum_inclusion(weights, c) < top_k; ++i) c *= 2.0;
  double lo = 0.0, hi = c;
  for (int i = 0; i < 48; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (sum_inclusion(weights, mid) >= top_k) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  for (size_t l = 0; l < weights.size(); ++l) p[l] = 1.0 - std::exp(-hi * static_cast<double>(weights[l]));
  return p;
}

double zipf_rank_ratio(int num_ranks, int num_masters, int top_k, double alpha) {
  const std::vector<double> p = inclusion_probabilities(zipf_weights(num_ranks, num_masters, alpha), top_k);
  double mx = 0.0, total = 0.0;
  for (int r = 0; r < num_ranks; ++r) {
    double s = 0.0;
    for (int m = 0; m < num_masters; ++m) s += p[static_cast<size_t>(r) * num_masters + m];
    mx = std::max(mx, s);
    total += s;
  }
  const double mean = total / num_ranks;
  return mean > 0.0 ? mx / mean : 1.0;
}

double zipf_alpha(int num_ranks, int num_masters, int top_k, double target_imbalance) {
  if (target_imbalance == 1.0) return 0.0;
  double lo = 0.0, hi = 8.0;
  for (int i = 0; i < 32; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (zipf_rank_ratio(num_ranks, num_masters, top_k, mid) < target_imbalance) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return hi;
}

}  // namespace rackep
