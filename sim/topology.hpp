// File: sim/topology.hpp
// Hardware descriptions (topologies/*.json): the GPU, its NVLink (scale-up) domain and the scale-out NICs and
// fabric, every number with its source. load_topology() is the one strict parser; Fabric (sim/fabric.hpp)
// turns a Topology into the network one simulation runs on.
// Usage:
//   rackep::sim::Topology t = rackep::sim::load_topology(rackep::sim::resolve_data_file("gb200-nvl72",
//                                                          "topologies", "--topology"));
//   double port = t.scale_up.port_bytes_per_s.value;
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "sim/config_io.hpp"

namespace rackep::sim {

/// One accelerator. Rates are dense (no sparsity), per GPU.
struct GpuSpec {
  std::string name;
  std::string arch;  ///< architecture that selects the calibration's efficiencies ("hopper", "blackwell")
  Sourced bf16_flops_per_s;
  Sourced fp8_flops_per_s;
  Sourced hbm_bytes;
  Sourced hbm_bytes_per_s;
  Sourced num_sms;  ///< streaming multiprocessors (or equivalent cores) available to copy/reduce kernels
};

/// A non-blocking NVLink-class domain: every GPU has one port of `port_bytes_per_s` per direction to a
/// crossbar (docs/HARDWARE.md §A.4); a route inside a domain is port_i (up) + port_j (down).
struct ScaleUp {
  Sourced domain_size;       ///< GPUs per domain
  Sourced port_bytes_per_s;  ///< per direction, nominal
  Sourced port_latency_s;    ///< per port; a GPU-to-GPU route pays it twice
};

/// One NIC per GPU into a fat tree (docs/HARDWARE.md §A.5). `oversubscription` 1 = non-blocking core; s > 1
/// gives each domain an uplink of (domain GPUs x NIC bandwidth / s) per direction.
struct ScaleOut {
  Sourced nic_bytes_per_s;  ///< per direction, nominal
  Sourced nic_latency_s;    ///< per NIC; a route pays it twice
  Sourced core_latency_s;   ///< switches between the two NICs
  Sourced oversubscription;
};

struct Topology {
  std::string file;
  std::string name;
  std::string description;
  Sourced num_gpus;
  GpuSpec gpu;
  ScaleUp scale_up;
  bool has_scale_out = false;
  ScaleOut scale_out;
};

/// Parses and validates a topology file. Throws InputError(path, field, ...) on a missing, unknown or
/// out-of-range field, or when num_gpus is not a multiple of the domain size.
Topology load_topology(const std::string& path);

/// The file's content as parsed (with sources), for --dump-topology.
nlohmann::json topology_to_json(const Topology& topology);

}  // namespace rackep::sim
