#include "sim/calibration.hpp"

#include <cmath>

#include "core/error.hpp"

namespace rackep::sim {

const char* to_string(GemmPass p) {
  switch (p) {
    case GemmPass::kForward:
      return "forward";
    case GemmPass::kDgrad:
      return "dgrad";
    case GemmPass::kWgrad:
      return "wgrad";
  }
  return "?";
}

double Calibration::gemm_efficiency(double tokens, GemmPass pass) const {
  const std::vector<EfficiencyPoint>& gemm_curve = gemm_curves[static_cast<int>(pass)];
  RACKEP_CHECK(!gemm_curve.empty(), "empty GEMM efficiency curve");
  if (tokens <= gemm_curve.front().tokens) return gemm_curve.front().efficiency;
  if (tokens >= gemm_curve.back().tokens) return gemm_curve.back().efficiency;
  for (size_t i = 1; i < gemm_curve.size(); ++i) {
    const EfficiencyPoint& a = gemm_curve[i - 1];
    const EfficiencyPoint& b = gemm_curve[i];
    if (tokens <= b.tokens) {
      const double x =
          (std::log2(tokens) - std::log2(a.tokens)) / (std::log2(b.tokens) - std::log2(a.tokens));
      return a.efficiency + x * (b.efficiency - a.efficiency);
    }
  }
  return gemm_curve.back().efficiency;
}

const PlannerCost& Calibration::planner(const std::string& balancer) const {
  auto it = planners.find(balancer);
  if (it != planners.end()) return it->second;
  return planners.at("default");
}

const AttentionEfficiency& Calibration::attention_for(const std::string& arch, const std::string& type) const {
  for (const AttentionEfficiency& a : attention)
    if (a.arch == arch && a.type == type) return a;
  throw InputError(file, "attention",
                   "no entry for GPU architecture '" + arch + "' and attention type '" + type + "'");
}

const ArchEfficiency& Calibration::arch(const std::string& name) const {
  auto it = archs.find(name);
  if (it == archs.end()) {
    throw InputError(file, "architectures", "no entry for GPU architecture '" + name + "'");
  }
  return it->second;
}

namespace {

Sourced fraction(JsonFields& f, const std::string& key) {
  Sourced s = f.sourced(key);
  if (!(s.value > 0.0 && s.value <= 1.0)) f.fail(key, "must be in (0, 1], got " + std::to_string(s.value));
  return s;
}

Sourced seconds(JsonFields& f, const std::string& key) {
  Sourced s = f.sourced(key);
  if (!(s.value >= 0.0 && s.value < 10.0)) f.fail(key, "must be in [0, 10) seconds");
  return s;
}

}  // namespace

Calibration load_calibration(const std::string& path) {
  const nlohmann::json doc = read_json_file(path);
  JsonFields root(doc, path, "");
  Calibration c;
  c.file = path;
  c.name = root.string("name");
  {
    JsonFields curves = root.object("gemm_efficiency");
    for (int pass = 0; pass < kNumGemmPasses; ++pass) {
      const std::string key = to_string(static_cast<GemmPass>(pass));
      const std::string where = "gemm_efficiency." + key;
      const nlohmann::json& curve = curves.raw(key);
      if (!curve.is_array() || curve.empty()) throw InputError(path, where, "must be a non-empty array of points");
      std::vector<EfficiencyPoint>& out = c.gemm_curves[pass];
      for (size_t i = 0; i < curve.size(); ++i) {
        JsonFields p(curve[i], path, where + "[" + std::to_string(i) + "]");
        EfficiencyPoint e;
        const nlohmann::json& t = p.raw("tokens");
        const nlohmann::json& v = p.raw("efficiency");
        if (!t.is_number() || !(t.get<double>() > 0.0)) p.fail("tokens", "must be a positive number");
        if (!v.is_number() || !(v.get<double>() > 0.0 && v.get<double>() <= 1.0)) {
          p.fail("efficiency", "must be in (0, 1]");
        }
        e.tokens = t.get<double>();
        e.efficiency = v.get<double>();
        e.source = p.string("source");
        if (e.source.empty()) p.fail("source", "must name where the number comes from");
        if (!out.empty() && e.tokens <= out.back().tokens) {
          p.fail("tokens", "points must be in increasing order of tokens");
        }
        p.finish();
        out.push_back(e);
      }
    }
    curves.finish();
  }
  {
    const nlohmann::json& list = root.raw("attention");
    if (!list.is_array() || list.empty()) throw InputError(path, "attention", "must be a non-empty array");
    for (size_t i = 0; i < list.size(); ++i) {
      JsonFields a(list[i], path, "attention[" + std::to_string(i) + "]");
      AttentionEfficiency e;
      e.arch = a.string("arch");
      e.type = a.string("type");
      if (e.type != "mla" && e.type != "gqa") a.fail("type", "must be mla or gqa");
      e.forward = fraction(a, "forward_efficiency");
      e.backward = fraction(a, "backward_efficiency");
      a.finish();
      c.attention.push_back(e);
    }
  }
  {
    JsonFields archs = root.object("architectures");
    const nlohmann::json& obj = root.raw("architectures");
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.key() == "comment") continue;
      JsonFields a = archs.object(it.key());
      ArchEfficiency e;
      e.scale_up_efficiency = fraction(a, "scale_up_efficiency");
      e.scale_out_efficiency = fraction(a, "scale_out_efficiency");
      a.finish();
      c.archs[it.key()] = e;
    }
    archs.finish();
  }
  c.memory_bound_efficiency = fraction(root, "memory_bound_efficiency");
  c.kernel_launch_s = seconds(root, "kernel_launch_s");
  c.all_to_all_launch_s = seconds(root, "all_to_all_launch_s");
  c.allgather_launch_s = seconds(root, "allgather_launch_s");
  c.weight_sync_launch_s = seconds(root, "weight_sync_launch_s");
  {
    JsonFields sms = root.object("comm_sms");
    auto count = [&](const std::string& key) {
      Sourced s = sms.sourced(key);
      if (!(s.value >= 0.0 && s.value <= 4096.0 && s.value == std::floor(s.value))) {
        sms.fail(key, "must be an integer number of SMs in [0, 4096]");
      }
      return s;
    };
    c.comm_sms.all_to_all = count("all_to_all");
    c.comm_sms.weight_sync = count("weight_sync");
    c.comm_sms.grad_reduce = count("grad_reduce");
    c.comm_sms.load_allgather = count("load_allgather");
    c.comm_sms.pp_send = count("pp_send");
    sms.finish();
    if (!(c.comm_sms.grad_reduce.value >= 1.0)) sms.fail("grad_reduce", "must be >= 1");
  }
  c.grad_reduce_bytes_per_sm_s = root.sourced("grad_reduce_bytes_per_sm_s");
  if (!(c.grad_reduce_bytes_per_sm_s.value > 0.0))
    root.fail("grad_reduce_bytes_per_sm_s", "must be positive");
  {
    JsonFields planners = root.object("planners");
    const nlohmann::json& obj = root.raw("planners");
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.key() == "comment") continue;
      JsonFields p = planners.object(it.key());
      PlannerCost pc;
      pc.fixed_s = seconds(p, "fixed_s").value;
      pc.per_expert_s = seconds(p, "per_expert_s").value;
      pc.reroute_fixed_s = seconds(p, "reroute_fixed_s").value;
      pc.reroute_per_pair_s = seconds(p, "reroute_per_pair_s").value;
      pc.needs_load_allgather = p.boolean("needs_load_allgather");
      pc.source = p.string("source");
      p.finish();
      c.planners[it.key()] = pc;
    }
    planners.finish();
    if (c.planners.count("default") == 0) planners.fail("default", "missing (used for balancers not listed)");
  }
  root.finish();
  return c;
}

}  // namespace rackep::sim
