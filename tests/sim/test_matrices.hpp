// File: tests/sim/test_matrices.hpp
// Deterministic traffic matrices shared by the simulator tests and the sim_case helper.
#pragma once

#include <cmath>
#include <string>

#include "core/error.hpp"
#include "sim/fabric.hpp"

namespace rackep::sim::testing {

/// "two": 1e9 bytes from rank 0 to rank 1. "skewed": every pair sends, destination j receives ~1/(j+1)^1.2 of
/// the traffic (a hot rank 0), source rows vary too. "mixed": skewed plus a column-heavy block, for
/// multi-domain use.
inline TrafficMatrix make_matrix(const std::string& kind, int n) {
  TrafficMatrix m(n);
  if (kind == "two") {
    m.at(0, 1) = 1000000000;
    return m;
  }
  if (kind == "skewed" || kind == "mixed") {
    for (int s = 0; s < n; ++s) {
      for (int d = 0; d < n; ++d) {
        if (s == d) continue;
        const double w = 8e6 / std::pow(d + 1.0, 1.2) * (1.0 + 0.37 * ((s * 7 + d * 3) % 5));
        m.at(s, d) = static_cast<int64_t>(w);
        if (kind == "mixed" && d % 3 == 0) m.at(s, d) += 3000000 + 1000 * s;
      }
    }
    return m;
  }
  throw InputError("test matrix", kind, "unknown");
}

}  // namespace rackep::sim::testing
