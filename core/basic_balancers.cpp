// The `none`, `ideal` and `ultraep` balancers (docs/ALGORITHMS.md §1, §2).
#include <algorithm>

#include "core/allocation.hpp"
#include "core/error.hpp"
#include "core/ultraep.hpp"

namespace rackep {
namespace {

void check_loads(const LoadMatrix& loads, const ClusterShape& shape, const std::string& who) {
  RACKEP_CHECK(loads.num_ranks() == shape.num_ranks && loads.num_experts() == shape.num_experts(),
               who + ": load matrix does not match the cluster shape");
}

// Masters only; every token is served by its expert's master.
class NoneBalancer : public Balancer {
 public:
  explicit NoneBalancer(const ClusterShape& shape) : shape_(shape) {}
  std::string name() const override { return "none"; }
  PlanResult plan(const LoadMatrix& loads, const StepContext&) override {
    check_loads(loads, shape_, name());
    PlanResult r{Plan::masters_only(shape_, loads.expert_totals()), {}, loads};
    r.alloc = allocate_by_quota(r.plan, loads, true);
    return r;
  }

 private:
  ClusterShape shape_;
};

// Force-balanced routing (Megatron --moe-router-force-load-balancing): each source rank's tokens are spread
// uniformly over all L experts. Remainders rotate over experts across sources so that global expert loads
// differ by at most one token. The throughput ceiling every other balancer is compared with.
class IdealBalancer : public Balancer {
 public:
  explicit IdealBalancer(const ClusterShape& shape) : shape_(shape) {}
  std::string name() const override { return "ideal"; }
  PlanResult plan(const LoadMatrix& loads, const StepContext&) override {
    check_loads(loads, shape_, name());
    const int l_count = shape_.num_experts();
    LoadMatrix spread(shape_.num_ranks, l_count);
    const std::vector<int64_t> per_source = loads.source_totals();
    int64_t offset = 0;
    for (int s = 0; s < shape_.num_ranks; ++s) {
      const int64_t base = per_source[s] / l_count;
      const int64_t extra = per_source[s] % l_count;
      int32_t* row = spread.row(s);
      for (int l = 0; l < l_count; ++l) row[l] = static_cast<int32_t>(base);
      for (int64_t i = 0; i < extra; ++i) row[(offset + i) % l_count] += 1;
      offset = (offset + extra) % l_count;
    }
    PlanResult r{Plan::masters_only(shape_, spread.expert_totals()), {}, std::move(spread)};
    r.alloc = allocate_by_quota(r.plan, r.routed, true);
    return r;
  }

 private:
  ClusterShape shape_;
};

// UltraEP: exact loads every (layer, microbatch), quota plan + per-source split.
class UltraEpBalancer : public Balancer {
 public:
  UltraEpBalancer(const ClusterShape& shape, const UltraEpOptions& options)
      : shape_(shape), options_(options), planner_(shape, options) {}
  std::string name() const override { return "ultraep"; }
  PlanResult plan(const LoadMatrix& loads, const StepContext&) override {
    check_loads(loads, shape_, name());
    PlanResult r{planner_.plan(loads.expert_totals()), {}, loads};
    r.alloc = allocate_by_quota(r.plan, loads, options_.locality_aware);
    return r;
  }

 private:
  ClusterShape shape_;
  UltraEpOptions options_;
  UltraEpPlanner planner_;
};

}  // namespace

std::unique_ptr<Balancer> make_none_balancer(const ClusterShape& shape, const BalancerOptions&) {
  return std::make_unique<NoneBalancer>(shape);
}
std::unique_ptr<Balancer> make_ideal_balancer(const ClusterShape& shape, const BalancerOptions&) {
  return std::make_unique<IdealBalancer>(shape);
}
std::unique_ptr<Balancer> make_ultraep_balancer(const ClusterShape& shape, const BalancerOptions& options) {
  return std::make_unique<UltraEpBalancer>(shape, options.ultraep);
}

}  // namespace rackep
