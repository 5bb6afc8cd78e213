#include "kernels/measure.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "kernels/check.hpp"
#include "kernels/timing.hpp"

namespace rackep::kernels {

LoadMatrix synthetic_loads(const ClusterShape& shape, double imbalance, int64_t tokens_per_rank, int top_k) {
  const int n = shape.num_ranks;
  const int m = shape.num_masters;
  auto probs = [&](double alpha) {
    std::vector<double> p(static_cast<size_t>(shape.num_experts()));
    double sum = 0.0;
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < m; ++i) {
        const double v = std::pow(r + 1.0, -alpha) * (m > 1 ? std::pow(i + 1.0, -4.0) : 1.0);
        p[static_cast<size_t>(r) * m + i] = v;
        sum += v;
      }
    for (double& v : p) v /= sum;
    return p;
  };
  auto ratio = [&](double alpha) {
    const std::vector<double> p = probs(alpha);
    double mx = 0.0;
    for (int r = 0; r < n; ++r) {
      double s = 0.0;
      for (int i = 0; i < m; ++i) s += p[static_cast<size_t>(r) * m + i];
      mx = std::max(mx, s);
    }
    return mx * n;
  };
  double lo = 0.0, hi = 8.0;
  if (imbalance > 1.0)
    for (int it = 0; it < 48; ++it) {
      const double mid = 0.5 * (lo + hi);
      (ratio(mid) < imbalance ? lo : hi) = mid;
    }
  const std::vector<double> p = probs(imbalance > 1.0 ? hi : 0.0);
  LoadMatrix loads(n, shape.num_experts());
  for (int s = 0; s < n; ++s)
    for (int l = 0; l < shape.num_experts(); ++l)
      loads.at(s, l) =
          static_cast<int32_t>(std::llround(static_cast<double>(tokens_per_rank * top_k) * p[l]));
  return loads;
}

double time_ms(cudaStream_t stream, int repeats, const std::function<void()>& action) {
  action();
  RACKEP_CUDA_CHECK(cudaStreamSynchronize(stream));
  EventTimer t(stream);
  t.start();
  for (int i = 0; i < std::max(repeats, 1); ++i) action();
  t.stop();
  return t.ms() / std::max(repeats, 1);
}

std::pair<double, double> fit_line(const std::vector<Measured>& pts) {
  if (pts.empty()) return {0.0, 0.0};
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const Measured& p : pts) {
    sx += p.x;
    sy += p.y;
    sxx += p.x * p.x;
    sxy += p.x * p.y;
  }
  const double k = static_cast<double>(pts.size());
  const double den = k * sxx - sx * sx;
  if (pts.size() < 2 || std::fabs(den) < 1e-30) return {sy / k, 0.0};
  const double b = (k * sxy - sx * sy) / den;
  return {(sy - b * sx) / k, b};
}

double bf16_peak_flops(const DeviceInfo& d) {
  if (d.cc_major == 9) return d.name.find("PCIe") != std::string::npos ? 756e12 : 989.4e12;
  if (d.cc_major == 10) return 2250e12;
  return 0.0;
}

}  // namespace rackep::kernels
