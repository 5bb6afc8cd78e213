// File: traces/zipf.hpp
// The Zipf load model of docs/ALGORITHMS.md 2.9 (UltraEP tests/utils.py), step by step: expert weights for
// an exponent alpha, top-k inclusion probabilities, the expected rank imbalance rho(alpha), and the
// 32-step bisection that finds alpha for a target rho. Pure functions; TV-K (8) is their unit test.
// Sampling lives in traces/synthetic.hpp.
// Usage:
//   double alpha = rackep::zipf_alpha(/*num_ranks=*/64, /*num_masters=*/4, /*top_k=*/8, 2.0);
//   std::vector<float> w = rackep::zipf_weights(64, 4, alpha);  // w[r*M + m], sums to 1
#pragma once

#include <vector>

namespace rackep {

/// §2.9 step 1: weight of expert l = r*M + m is (r+1)^-alpha * (m+1)^-beta with beta = 4 if M > 1 else 0,
/// normalised to sum 1 in float64, then rounded to float32. Rank 0 is hottest; within a rank, master 0.
std::vector<float> zipf_weights(int num_ranks, int num_masters, double alpha);

/// §2.9 step 2: p_l = 1 - exp(-c * w_l) with c such that sum p = top_k: c doubles from 1 until sum p >= k,
/// then 48 bisection steps on [0, c] keep the upper end. All p = 1 when top_k >= L. Computed in float64 from
/// the float32 weights.
std::vector<double> inclusion_probabilities(const std::vector<float>& weights, int top_k);

/// §2.9 step 3: rho(alpha) = max_r sum_m p_{rM+m} / mean_r sum_m p_{rM+m} (1 when the mean is 0).
double zipf_rank_ratio(int num_ranks, int num_masters, int top_k, double alpha);

/// §2.9 step 4: alpha = 0 when target == 1; otherwise 32 bisection steps on [0, 8] (rho(mid) < target ->
/// lo = mid, else hi = mid) and the upper end is returned. The caller checks target >= 1 (and, if it cares,
/// that rho(8) reaches the target; zipf_rank_ratio(..., 8.0) is the largest reachable imbalance).
double zipf_alpha(int num_ranks, int num_masters, int top_k, double target_imbalance);

}  // namespace rackep
