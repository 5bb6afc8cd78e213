#include "core/balancer.hpp"

#include <map>
#include <mutex>

#include "core/eplb.hpp"
#include "core/error.hpp"
#include "core/legacy.hpp"
#include "core/ultraep.hpp"

namespace rackep {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, BalancerFactory> factories;
};

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    // Built-in balancers (docs/ALGORITHMS.md §2, §4). Keep this list sorted by name. "lplb" (§5) lives in
    // rackep::lplb (GLPK, GPL-3) and registers itself there: register_lplb_balancer().
    reg->factories["eplb"] = make_eplb_balancer;
    reg->factories["ideal"] = make_ideal_balancer;
    reg->factories["none"] = make_none_balancer;
    reg->factories["ultraep"] = make_ultraep_balancer;
    reg->factories["ultraep-legacy"] = make_legacy_balancer;
    return reg;
  }();
  return *r;
}

}  // namespace

void register_balancer(const std::string& name, BalancerFactory factory) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.factories[name] = std::move(factory);
}

std::vector<std::string> balancer_names() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  std::vector<std::string> names;
  for (const auto& kv : r.factories) names.push_back(kv.first);
  return names;
}

std::unique_ptr<Balancer> make_balancer(const std::string& name, const ClusterShape& shape,
                                        const BalancerOptions& options) {
  BalancerFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.factories.find(name);
    if (it != r.factories.end()) factory = it->second;
  }
  if (!factory) {
    std::string known;
    for (const auto& n : balancer_names()) known += (known.empty() ? "" : ", ") + n;
    throw InputError("--balancers", name, "unknown balancer (known: " + known + ")");
  }
  shape.validate("cluster shape");
  return factory(shape, options);
}

}  // namespace rackep
