#include "sim/calibration.hpp"

#include <cmath>

#include "core/error.hpp"

namespace rackep::sim {

double Calibration::gemm_efficiency(double tokens) const {
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
    const nlohmann::json& curve = root.raw("gemm_efficiency");
    if (!curve.is_array() || curve.empty()) {
      throw InputError(path, "gemm_efficiency", "must be a non-empty array of points");
    }
    for (size_t i = 0; i < curve.size(); ++i) {
      JsonFields p(curve[i], path, "gemm_efficiency[" + std::to_string(i) + "]");
      EfficiencyPoint e;
      const nlohmann::json& t = p.raw("tokens");
      const nlohmann::json& v = p.raw("efficiency");
      if (!t.is_number() || t.get<double>() <= 0.0) p.fail("tokens", "must be a positive number");
      if (!v.is_number() || !(v.get<double>() > 0.0 && v.get<double>() <= 1.0)) {
        p.fail("efficiency", "must be in (0, 1]");
      }
      e.tokens = t.get<double>();
      e.efficiency = v.get<double>();
      e.source = p.string("source");
      if (e.source.empty()) p.fail("source", "must name where the number comes from");
      if (!c.gemm_curve.empty() && e.tokens <= c.gemm_curve.back().tokens) {
        p.fail("tokens", "points must be in increasing order of tokens");
      }
      p.finish();
      c.gemm_curve.push_back(e);
    }
  }
  c.attention_forward_efficiency = fraction(root, "attention_forward_efficiency");
  c.attention_backward_efficiency = fraction(root, "attention_backward_efficiency");
  c.kernel_launch_s = seconds(root, "kernel_launch_s");
  c.scale_up_efficiency = fraction(root, "scale_up_efficiency");
  c.scale_out_efficiency = fraction(root, "scale_out_efficiency");
  c.all_to_all_launch_s = seconds(root, "all_to_all_launch_s");
  c.allgather_launch_s = seconds(root, "allgather_launch_s");
  c.weight_sync_launch_s = seconds(root, "weight_sync_launch_s");
  c.grad_reduce_num_sms = root.sourced("grad_reduce_num_sms");
  if (!(c.grad_reduce_num_sms.value >= 1.0)) root.fail("grad_reduce_num_sms", "must be >= 1");
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
