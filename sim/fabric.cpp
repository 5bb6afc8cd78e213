#include "sim/fabric.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace rackep::sim {

int64_t TrafficMatrix::network_bytes() const {
  int64_t total = 0;
  for (int s = 0; s < num_ranks; ++s)
    for (int d = 0; d < num_ranks; ++d)
      if (s != d) total += at(s, d);
  return total;
}

int64_t TrafficMatrix::nonzeros() const {
  int64_t n = 0;
  for (int s = 0; s < num_ranks; ++s)
    for (int d = 0; d < num_ranks; ++d)
      if (s != d && at(s, d) > 0) ++n;
  return n;
}

void TrafficMatrix::add(const TrafficMatrix& other) {
  RACKEP_CHECK(other.num_ranks == num_ranks, "TrafficMatrix::add: shape mismatch");
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] += other.bytes[i];
}

Fabric make_fabric(const Topology& t, const FabricRequest& req) {
  const int gpus = static_cast<int>(t.num_gpus.value);
  if (req.num_ranks <= 0) throw InputError("--ranks", std::to_string(req.num_ranks), "must be positive");
  if (req.num_ranks > gpus) {
    throw InputError("--ranks", std::to_string(req.num_ranks),
                     "topology " + t.name + " (" + t.file + ") has only " + std::to_string(gpus) + " GPUs");
  }
  if (req.domain_size < 0) throw InputError("--domain", std::to_string(req.domain_size), "must be positive");
  if (!(req.scale_up_efficiency > 0.0 && req.scale_up_efficiency <= 1.0) ||
      !(req.scale_out_efficiency > 0.0 && req.scale_out_efficiency <= 1.0)) {
    throw InputError("calibration", "efficiency", "link efficiencies must lie in (0, 1]");
  }
  Fabric f;
  f.topology_name = t.name;
  f.num_ranks = req.num_ranks;
  const int g = req.domain_size > 0 ? req.domain_size : static_cast<int>(t.scale_up.domain_size.value);
  f.domain_size = std::min(g, req.num_ranks);
  if (f.num_ranks % f.domain_size != 0) {
    throw InputError("--domain", std::to_string(f.domain_size),
                     "does not divide the number of EP ranks " + std::to_string(f.num_ranks));
  }
  f.port_bytes_per_s = t.scale_up.port_bytes_per_s.value * req.scale_up_efficiency;
  f.port_latency_s = t.scale_up.port_latency_s.value;
  f.has_scale_out = t.has_scale_out;
  if (f.num_domains() > 1 && !f.has_scale_out) {
    throw InputError(t.file, "scale_out",
                     "missing, but " + std::to_string(f.num_ranks) + " ranks span " +
                         std::to_string(f.num_domains()) + " scale-up domains");
  }
  if (f.has_scale_out) {
    f.nic_bytes_per_s = t.scale_out.nic_bytes_per_s.value * req.scale_out_efficiency;
    f.nic_latency_s = t.scale_out.nic_latency_s.value;
    f.core_latency_s = t.scale_out.core_latency_s.value;
    const double s = t.scale_out.oversubscription.value;
    if (s > 1.0) f.uplink_bytes_per_s = f.domain_size * f.nic_bytes_per_s / s;
  }
  return f;
}

LinkLoads link_loads(const Fabric& f, const TrafficMatrix& m) {
  RACKEP_CHECK(m.num_ranks == f.num_ranks, "traffic matrix does not match the fabric");
  const int n = f.num_ranks;
  const int d = f.num_domains();
  LinkLoads l;
  l.port_up.assign(n, 0);
  l.port_down.assign(n, 0);
  l.nic_up.assign(n, 0);
  l.nic_down.assign(n, 0);
  l.uplink_up.assign(d, 0);
  l.uplink_down.assign(d, 0);
  for (int s = 0; s < n; ++s) {
    const int64_t* row = m.bytes.data() + static_cast<size_t>(s) * n;
    for (int t = 0; t < n; ++t) {
      const int64_t b = row[t];
      if (s == t || b <= 0) continue;
      if (f.same_domain(s, t)) {
        l.port_up[s] += b;
        l.port_down[t] += b;
        l.intra_used = true;
      } else {
        l.nic_up[s] += b;
        l.nic_down[t] += b;
        l.uplink_up[f.domain_of(s)] += b;
        l.uplink_down[f.domain_of(t)] += b;
        l.inter_used = true;
      }
    }
  }
  return l;
}

double analytic_phase_time_s(const Fabric& f, const TrafficMatrix& m) {
  const LinkLoads l = link_loads(f, m);
  int64_t port_max = 0, nic_max = 0, up_max = 0;
  for (int i = 0; i < f.num_ranks; ++i) {
    port_max = std::max({port_max, l.port_up[i], l.port_down[i]});
    nic_max = std::max({nic_max, l.nic_up[i], l.nic_down[i]});
  }
  for (int i = 0; i < f.num_domains(); ++i) up_max = std::max({up_max, l.uplink_up[i], l.uplink_down[i]});
  double transfer_s = static_cast<double>(port_max) / f.port_bytes_per_s;
  if (l.inter_used) {
    transfer_s = std::max(transfer_s, static_cast<double>(nic_max) / f.nic_bytes_per_s);
    if (f.uplink_bytes_per_s > 0.0) {
      transfer_s = std::max(transfer_s, static_cast<double>(up_max) / f.uplink_bytes_per_s);
    }
  }
  double latency_s = 0.0;
  if (l.intra_used) latency_s = f.intra_latency_s();
  if (l.inter_used) latency_s = std::max(latency_s, f.inter_latency_s());
  return transfer_s + latency_s;
}

namespace {

// North-west-corner transport plan of rows `rows` (with supplies) onto columns `cols` (with demands); equal
// totals. Writes into `out` at (rows[i], cols[j]).
void north_west_corner(const std::vector<int>& rows, std::vector<int64_t> supply,
                       const std::vector<int>& cols, std::vector<int64_t> demand, TrafficMatrix& out) {
  size_t i = 0, j = 0;
  while (i < rows.size() && j < cols.size()) {
    if (supply[i] == 0) {
      ++i;
      continue;
    }
    if (demand[j] == 0) {
      ++j;
      continue;
    }
    const int64_t x = std::min(supply[i], demand[j]);
    out.at(rows[i], cols[j]) += x;
    supply[i] -= x;
    demand[j] -= x;
  }
}

// Moves the mass of diagonal entry (i, i) of the block [lo, hi) off the diagonal: for an entry (a, b) with
// a != i and b != i, (a, b) -= x, (i, i) -= x, (a, i) += x, (i, b) += x keeps every row and column sum.
// Enough mass exists outside row i and column i because the original block had a zero diagonal.
void clear_diagonal(TrafficMatrix& m, int lo, int hi) {
  for (int i = lo; i < hi; ++i) {
    for (int a = lo; a < hi && m.at(i, i) > 0; ++a) {
      if (a == i) continue;
      for (int b = lo; b < hi && m.at(i, i) > 0; ++b) {
        if (b == i || m.at(a, b) == 0) continue;
        const int64_t x = std::min(m.at(i, i), m.at(a, b));
        m.at(a, b) -= x;
        m.at(i, i) -= x;
        m.at(a, i) += x;
        m.at(i, b) += x;
      }
    }
    RACKEP_CHECK(m.at(i, i) == 0, "compress_traffic: diagonal mass could not be moved");
  }
}

}  // namespace

TrafficMatrix compress_traffic(const Fabric& f, const TrafficMatrix& m) {
  RACKEP_CHECK(m.num_ranks == f.num_ranks, "traffic matrix does not match the fabric");
  const int g = f.domain_size;
  const int d = f.num_domains();
  TrafficMatrix out(f.num_ranks);
  std::vector<int> rows(g), cols(g);
  std::vector<int64_t> supply(g), demand(g);
  for (int a = 0; a < d; ++a) {
    for (int b = 0; b < d; ++b) {
      for (int k = 0; k < g; ++k) {
        rows[k] = a * g + k;
        cols[k] = b * g + k;
      }
      std::fill(supply.begin(), supply.end(), 0);
      std::fill(demand.begin(), demand.end(), 0);
      for (int i = 0; i < g; ++i) {
        for (int j = 0; j < g; ++j) {
          if (rows[i] == cols[j]) continue;
          const int64_t x = m.at(rows[i], cols[j]);
          supply[i] += x;
          demand[j] += x;
        }
      }
      north_west_corner(rows, supply, cols, demand, out);
      if (a == b) clear_diagonal(out, a * g, (a + 1) * g);
    }
  }
  return out;
}

}  // namespace rackep::sim
