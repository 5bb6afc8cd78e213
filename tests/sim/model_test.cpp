// Hand-worked checks of the analytic fabric, the ptask compression and the traffic builders.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ultraep.hpp"
#include "sim/topology.hpp"
#include "sim/topology.hpp"
#include "sim/traffic.hpp"
#include "tests/sim/test_matrices.hpp"

namespace rackep::sim {
namespace {

const std::string kRoot = RACKEP_SOURCE_DIR;

TEST(SimFabric, TwoRanksOneLinkIsBytesOverBandwidthPlusLatency) {
  // 1e9 B over a 1e11 B/s port: 10 ms; the route crosses two ports of 1 us each: 10.002 ms exactly.
  const Topology t = load_topology(kRoot + "/tests/sim/data/two_gpu.json");
  const Fabric f = make_fabric(t, {2, 0, 1.0, 1.0});
  EXPECT_NEAR(analytic_phase_time_s(f, testing::make_matrix("two", 2)), 1e9 / 1e11 + 2e-6, 1e-15);
  // An efficiency of 0.5 halves the bandwidth: 20 ms + 2 us.
  const Fabric half = make_fabric(t, {2, 0, 0.5, 1.0});
  EXPECT_NEAR(analytic_phase_time_s(half, testing::make_matrix("two", 2)), 2e9 / 1e11 + 2e-6, 1e-15);
  EXPECT_EQ(analytic_phase_time_s(f, TrafficMatrix(2)), 0.0);
}

TEST(SimFabric, TwoTierTimeIsTheBusiestLink) {
  // Rank 0 sends 1 GB to rank 8 (other domain) and 1 GB to rank 1: NIC 50 GB/s -> 20 ms, uplink (8 x 50 / 2 =
  // 200 GB/s) 5 ms, port 450 GB/s 2.2 ms. Latency of the NIC route: 1 + 2 + 1 us.
  const Topology t = load_topology(kRoot + "/tests/sim/data/two_domains.json");
  const Fabric f = make_fabric(t, {16, 0, 1.0, 1.0});
  ASSERT_EQ(f.num_domains(), 2);
  EXPECT_DOUBLE_EQ(f.uplink_bytes_per_s, 2e11);
  TrafficMatrix m(16);
  m.at(0, 8) = 1000000000;
  m.at(0, 1) = 1000000000;
  EXPECT_NEAR(analytic_phase_time_s(f, m), 0.02 + 4e-6, 1e-15);
}

TEST(SimFabric, CompressionKeepsEveryLinkLoad) {
  const Topology t = load_topology(kRoot + "/tests/sim/data/two_domains.json");
  const Fabric f = make_fabric(t, {16, 0, 1.0, 1.0});
  for (const char* kind : {"skewed", "mixed"}) {
    const TrafficMatrix m = testing::make_matrix(kind, 16);
    const TrafficMatrix c = compress_traffic(f, m);
    const LinkLoads a = link_loads(f, m), b = link_loads(f, c);
    EXPECT_EQ(a.port_up, b.port_up);
    EXPECT_EQ(a.port_down, b.port_down);
    EXPECT_EQ(a.nic_up, b.nic_up);
    EXPECT_EQ(a.nic_down, b.nic_down);
    EXPECT_EQ(a.uplink_up, b.uplink_up);
    EXPECT_EQ(a.uplink_down, b.uplink_down);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(c.at(i, i), 0);
    EXPECT_LT(c.nonzeros(), m.nonzeros() / 2);  // 4 blocks x at most 15 entries, plus diagonal exchanges
    EXPECT_DOUBLE_EQ(analytic_phase_time_s(f, m), analytic_phase_time_s(f, c));
  }
}

TEST(SimTraffic, DedupMatchesTheUniformExpectation) {
  // Uniform routing, N = 8, L = 64, top-8, 8 experts per rank, 4096 tokens per rank: a token misses a given
  // rank with probability (1 - 8/64)^8 = 0.3436 under independent choices (docs/HARDWARE.md §E.1 uses the
  // exact hypergeometric 0.3368), so each (source, destination) carries 4096 x 0.6564 = 2688.6 copies.
  const ClusterShape shape{8, 8, 0, 8};
  LoadMatrix loads(8, 64);
  for (int s = 0; s < 8; ++s)
    for (int l = 0; l < 64; ++l) loads.at(s, l) = 512;
  auto none = make_none_balancer(shape, BalancerOptions{});
  const PlanResult r = none->plan(loads, {0, 0});
  const TrafficMatrix tok = dispatch_token_matrix(r, 8, true);
  const double expected = 4096.0 * (1.0 - std::pow(1.0 - 512.0 / 4096.0, 8));
  for (int s = 0; s < 8; ++s)
    for (int d = 0; d < 8; ++d) EXPECT_EQ(tok.at(s, d), std::llround(expected));
  const TrafficMatrix pairs = dispatch_token_matrix(r, 8, false);
  EXPECT_EQ(pairs.at(0, 1), 8 * 512);
  const TrafficMatrix combine = scale_traffic(tok, 2.0, true);
  EXPECT_EQ(combine.at(3, 1), 2 * tok.at(1, 3));
}

TEST(SimTraffic, TwoHopInternodeCopiesByHand) {
  // 4 ranks in 2 NVLink domains of 2, one expert per rank, top-2. Source 0 sends 100 tokens, each to
  // experts 2 and 3 (both on domain 1). DeepEP moves one copy per (token, domain) over the NIC to rank 2
  // (the peer with the same local index) and rank 2 forwards 100 copies to rank 3 over NVLink: 100 copies
  // cross the NIC instead of 200.
  const Topology topo = load_topology(std::string(RACKEP_SOURCE_DIR) + "/tests/sim/data/two_domains.json");
  const Fabric f = make_fabric(topo, {4, 2, 1.0, 1.0});
  const ClusterShape shape{4, 1, 0, 2};
  LoadMatrix loads(4, 4);
  loads.at(0, 2) = 100;
  loads.at(0, 3) = 100;
  auto none = make_none_balancer(shape, BalancerOptions{});
  const PlanResult r = none->plan(loads, {0, 0});
  const TrafficMatrix m = dispatch_route_matrix(r, 2, true, f, 0);
  EXPECT_EQ(m.at(0, 2), 100);  // NIC: one copy per token
  EXPECT_EQ(m.at(2, 3), 100);  // NVLink fan-out inside domain 1
  EXPECT_EQ(m.at(0, 3), 0);
  EXPECT_EQ(m.network_bytes(), 200);
  const LinkLoads l = link_loads(f, m);
  EXPECT_EQ(l.nic_up[0], 100);
  EXPECT_EQ(l.port_up[2], 100);
  // Node-limited routing caps copies per domain at M x pairs / top_k: with M = 1 and 200 pairs, 100 copies.
  const TrafficMatrix lim = dispatch_route_matrix(r, 2, true, f, 1);
  EXPECT_EQ(lim.at(0, 2), 100);
}

}  // namespace
}  // namespace rackep::sim
