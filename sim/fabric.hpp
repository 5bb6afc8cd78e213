// File: sim/fabric.hpp
// Fabric: the network one simulation runs on, instantiated from a Topology for N EP ranks (with optional
// what-if overrides) and effective bandwidths (nominal x calibrated efficiency). TrafficMatrix: the bytes of
// one communication phase, source rank x destination rank. This file also holds the closed-form phase time
// (the `analytic` fidelity) and the load-preserving compression the `ptask` fidelity hands to SimGrid.
//
// Links (all per direction): port_up/down[i] (NVLink port of rank i), nic_up/down[i] (NIC of rank i),
// uplink_up/down[d] (domain d's share of an oversubscribed fat tree; absent when non-blocking).
// Routes: same domain -> port_up[i], port_down[j]; other domain -> nic_up[i], [uplink_up[a]], core,
// [uplink_down[b]], nic_down[j]. Local traffic (i == i) never touches a link.
// Usage:
//   Fabric f = make_fabric(topology, {/*num_ranks=*/64, /*domain_size=*/0, 0.81, 0.9});
//   TrafficMatrix m(64); m.at(0, 1) = 1 << 20;
//   double t_s = analytic_phase_time_s(f, m);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/topology.hpp"

namespace rackep::sim {

/// Bytes of one phase: at(s, d) = bytes rank s sends to rank d. Integral byte counts.
struct TrafficMatrix {
  int num_ranks = 0;
  std::vector<int64_t> bytes;  ///< row-major, row = source

  TrafficMatrix() = default;
  explicit TrafficMatrix(int n) : num_ranks(n), bytes(static_cast<size_t>(n) * n, 0) {}
  int64_t& at(int s, int d) { return bytes[static_cast<size_t>(s) * num_ranks + d]; }
  int64_t at(int s, int d) const { return bytes[static_cast<size_t>(s) * num_ranks + d]; }
  /// Bytes that cross a link (the diagonal excluded).
  int64_t network_bytes() const;
  int64_t nonzeros() const;
  /// Adds `other` entry by entry; shapes must match.
  void add(const TrafficMatrix& other);
};

struct FabricRequest {
  int num_ranks = 0;                 ///< EP ranks = simulated GPUs (the first num_ranks GPUs of the topology)
  int domain_size = 0;               ///< 0: the topology's, clamped to num_ranks
  double scale_up_efficiency = 1.0;  ///< achieved / nominal NVLink bandwidth of an all-to-all
  double scale_out_efficiency = 1.0;  ///< achieved / nominal NIC bandwidth
};

struct Fabric {
  std::string topology_name;
  int num_ranks = 0;
  int domain_size = 0;
  double port_bytes_per_s = 0.0;  ///< effective, per direction
  double port_latency_s = 0.0;
  bool has_scale_out = false;
  double nic_bytes_per_s = 0.0;  ///< effective, per direction
  double nic_latency_s = 0.0;
  double core_latency_s = 0.0;
  double uplink_bytes_per_s = 0.0;  ///< per domain and direction; 0 = non-blocking core (no uplink links)

  int num_domains() const { return num_ranks / domain_size; }
  int domain_of(int rank) const { return rank / domain_size; }
  bool same_domain(int a, int b) const { return domain_of(a) == domain_of(b); }
  double intra_latency_s() const { return 2.0 * port_latency_s; }
  double inter_latency_s() const { return 2.0 * nic_latency_s + core_latency_s; }
};

/// Throws InputError("--ranks" / "--domain", ...) when num_ranks exceeds the topology, the domain size does
/// not divide num_ranks, or ranks span several domains on a topology without scale-out.
Fabric make_fabric(const Topology& topology, const FabricRequest& request);

/// Bytes on every link of `fabric` for `m`, and which route classes carry traffic.
struct LinkLoads {
  std::vector<int64_t> port_up, port_down, nic_up, nic_down, uplink_up, uplink_down;
  bool intra_used = false;
  bool inter_used = false;
};
LinkLoads link_loads(const Fabric& fabric, const TrafficMatrix& m);

/// The `analytic` fidelity: max over links of bytes / bandwidth, plus the largest latency of a route that
/// carries bytes; 0 for a phase with no network bytes. This is the bound a single SimGrid ptask reaches.
double analytic_phase_time_s(const Fabric& fabric, const TrafficMatrix& m);

/// A matrix with exactly the same bytes on every link and the same route classes in use, but at most
/// 2G-1 non-zeros per (domain, domain) block (north-west-corner transport plans; the zero diagonal inside a
/// domain is restored by exchanges that keep all row and column sums). A SimGrid ptask over it ends at the
/// same time as over `m` on this fabric (every route's latency depends only on its class) and costs O(N D)
/// instead of O(N^2) route look-ups.
TrafficMatrix compress_traffic(const Fabric& fabric, const TrafficMatrix& m);

}  // namespace rackep::sim
