#include "sim/topology.hpp"

#include "core/error.hpp"

namespace rackep::sim {
namespace {

Sourced positive(JsonFields& f, const std::string& key, double max_value) {
  Sourced s = f.sourced(key);
  if (!(s.value > 0.0) || s.value > max_value) {
    f.fail(key, "must be in (0, " + std::to_string(max_value) + "], got " + std::to_string(s.value));
  }
  return s;
}

Sourced non_negative(JsonFields& f, const std::string& key, double max_value) {
  Sourced s = f.sourced(key);
  if (s.value < 0.0 || s.value > max_value) {
    f.fail(key, "must be in [0, " + std::to_string(max_value) + "], got " + std::to_string(s.value));
  }
  return s;
}

Sourced whole(JsonFields& f, const std::string& key, double max_value) {
  Sourced s = positive(f, key, max_value);
  if (s.value != static_cast<double>(static_cast<int64_t>(s.value))) f.fail(key, "must be an integer");
  return s;
}

}  // namespace

Topology load_topology(const std::string& path) {
  const nlohmann::json doc = read_json_file(path);
  JsonFields root(doc, path, "");
  Topology t;
  t.file = path;
  t.name = root.string("name");
  t.description = root.string("description");
  t.num_gpus = whole(root, "num_gpus", 1 << 20);
  {
    JsonFields g = root.object("gpu");
    t.gpu.name = g.string("name");
    t.gpu.arch = g.string("arch");
    if (t.gpu.arch.empty()) g.fail("arch", "must name the GPU architecture (hopper, blackwell, ...)");
    t.gpu.bf16_flops_per_s = positive(g, "bf16_flops_per_s", 1e18);
    t.gpu.fp8_flops_per_s = positive(g, "fp8_flops_per_s", 1e18);
    t.gpu.hbm_bytes = positive(g, "hbm_bytes", 1e13);
    t.gpu.hbm_bytes_per_s = positive(g, "hbm_bytes_per_s", 1e14);
    t.gpu.num_sms = whole(g, "num_sms", 4096);
    g.finish();
  }
  {
    JsonFields s = root.object("scale_up");
    t.scale_up.domain_size = whole(s, "domain_size", 1 << 20);
    t.scale_up.port_bytes_per_s = positive(s, "port_bytes_per_s", 1e14);
    t.scale_up.port_latency_s = non_negative(s, "port_latency_s", 1e-2);
    s.finish();
  }
  t.has_scale_out = root.has("scale_out");
  if (t.has_scale_out) {
    JsonFields s = root.object("scale_out");
    t.scale_out.nic_bytes_per_s = positive(s, "nic_bytes_per_s", 1e14);
    t.scale_out.nic_latency_s = non_negative(s, "nic_latency_s", 1e-2);
    t.scale_out.core_latency_s = non_negative(s, "core_latency_s", 1e-2);
    t.scale_out.oversubscription = positive(s, "oversubscription", 1e6);
    if (t.scale_out.oversubscription.value < 1.0)
      s.fail("oversubscription", "must be >= 1 (1 = non-blocking)");
    s.finish();
  }
  root.finish();
  const auto n = static_cast<int64_t>(t.num_gpus.value);
  const auto g = static_cast<int64_t>(t.scale_up.domain_size.value);
  if (n % g != 0) {
    throw InputError(path, "scale_up.domain_size",
                     std::to_string(g) + " does not divide num_gpus " + std::to_string(n));
  }
  if (n > g && !t.has_scale_out) {
    throw InputError(path, "scale_out", "missing: num_gpus spans several scale-up domains");
  }
  return t;
}

nlohmann::json topology_to_json(const Topology& t) {
  nlohmann::json j;
  j["name"] = t.name;
  j["description"] = t.description;
  j["num_gpus"] = to_json(t.num_gpus);
  j["gpu"] = {{"name", t.gpu.name},
              {"arch", t.gpu.arch},
              {"bf16_flops_per_s", to_json(t.gpu.bf16_flops_per_s)},
              {"fp8_flops_per_s", to_json(t.gpu.fp8_flops_per_s)},
              {"hbm_bytes", to_json(t.gpu.hbm_bytes)},
              {"hbm_bytes_per_s", to_json(t.gpu.hbm_bytes_per_s)},
              {"num_sms", to_json(t.gpu.num_sms)}};
  j["scale_up"] = {{"domain_size", to_json(t.scale_up.domain_size)},
                   {"port_bytes_per_s", to_json(t.scale_up.port_bytes_per_s)},
                   {"port_latency_s", to_json(t.scale_up.port_latency_s)}};
  if (t.has_scale_out) {
    j["scale_out"] = {{"nic_bytes_per_s", to_json(t.scale_out.nic_bytes_per_s)},
                      {"nic_latency_s", to_json(t.scale_out.nic_latency_s)},
                      {"core_latency_s", to_json(t.scale_out.core_latency_s)},
                      {"oversubscription", to_json(t.scale_out.oversubscription)}};
  }
  return j;
}

}  // namespace rackep::sim
