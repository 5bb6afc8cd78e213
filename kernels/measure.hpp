// File: kernels/measure.hpp
// Measurement helpers shared by the calibrate and bench drivers: synthetic expected loads with a target rank
// imbalance (docs/ALGORITHMS.md §2.9 weights, without sampling), timing of a repeated GPU action with CUDA
// events, a least-squares line, and the bf16 dense peak of a device.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <vector>

#include "core/cluster_shape.hpp"
#include "core/load_matrix.hpp"
#include "kernels/device.hpp"
#include "kernels/drivers.hpp"

namespace rackep::kernels {

/// Every source rank routes tokens_per_rank * top_k pairs with expected-value proportions: rank weight
/// 1/(r+1)^alpha, master weight 1/(m+1)^4 within a rank, alpha bisected so max/mean rank load = imbalance.
LoadMatrix synthetic_loads(const ClusterShape& shape, double imbalance, int64_t tokens_per_rank, int top_k);

/// Mean milliseconds of `action` over `repeats` back-to-back runs on `stream` (after one untimed warm-up).
double time_ms(cudaStream_t stream, int repeats, const std::function<void()>& action);

/// y = a + b x by least squares over the points (x, y). Returns {a, b}; {mean y, 0} for fewer than 2 distinct
/// x.
std::pair<double, double> fit_line(const std::vector<Measured>& points);

/// bf16 dense tensor peak in FLOP/s from the device type (H100/H200 SXM 989.4e12, H100 PCIe 756e12,
/// B200 2250e12); 0 when unknown.
double bf16_peak_flops(const DeviceInfo& device);

}  // namespace rackep::kernels
