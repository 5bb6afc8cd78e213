#include "core/step_driver.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"
#include "core/legality.hpp"

namespace rackep {

bool check_plans_by_default() {
#ifndef NDEBUG
  return true;
#else
  const char* env = std::getenv("RACKEP_CHECK_PLANS");
  return env != nullptr && std::strcmp(env, "1") == 0;
#endif
}

StepDriver::StepDriver(const StepDriverConfig& config)
    : config_(config), balancer_(make_balancer(config.balancer, config.shape, config.options)) {
  name_ = balancer_->name();
  persistent_ = balancer_->persistent_replicas();
  config_.expert.validate("expert");
  config_.weight_sync.validate("weight_sync");
  if (config_.microbatches_per_step < 1)
    throw InputError("step driver", "microbatches_per_step", "must be >= 1");
  masters_only_ = Plan::masters_only(config_.shape, {});
}

StepDriver::~StepDriver() = default;
StepDriver::StepDriver(StepDriver&&) noexcept = default;
StepDriver& StepDriver::operator=(StepDriver&&) noexcept = default;

const Plan& StepDriver::resident(int layer) const {
  if (layer < 0 || layer >= static_cast<int>(resident_.size()) || resident_[layer].lcnt.empty())
    return masters_only_;
  return resident_[layer];
}

const StepRecord& StepDriver::step(const LoadMatrix& loads, int layer, int64_t microbatch) {
  RACKEP_CHECK(layer >= 0, "StepDriver::step: negative layer");
  StepRecord& s = last_;
  s.layer = layer;
  s.microbatch = microbatch;
  s.weight_sync.reset();
  s.weight_restore = false;
  s.grad_reduce.reset();
  const auto t0 = std::chrono::steady_clock::now();
  s.result = balancer_->plan(loads, StepContext{layer, microbatch});
  s.planner_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (config_.check_legality) {
    const std::vector<std::string> bad = check_plan(s.result.plan, &s.result.routed, &s.result.alloc);
    if (!bad.empty())
      throw VerificationError(
          name_ + " plan of layer " + std::to_string(layer) + " microbatch " + std::to_string(microbatch),
          "illegal plan (ALGORITHMS.md §2.8): " + bad.front() +
              (bad.size() > 1 ? " (+" + std::to_string(bad.size() - 1) + " more)" : ""));
  }
  s.metrics = measure_plan(loads, s.result);
  const Plan& plan = s.result.plan;
  s.persistent = persistent_ || !plan.masters_fixed;
  const bool replicas = s.metrics.total_replicas > 0;
  bool reduce = false;
  if (!s.persistent) {
    if (replicas) {
      TransferPlan tp = plan_weight_sync(plan, config_.expert, config_.weight_sync);
      if (!tp.copies.empty()) {
        s.weight_sync = std::move(tp);
        s.weight_restore = config_.training;
      }
    }
    reduce = replicas;
  } else {
    if (static_cast<int>(resident_.size()) <= layer) resident_.resize(static_cast<size_t>(layer) + 1);
    if (config_.warm_start && resident_[layer].lcnt.empty()) resident_[layer] = plan;
    TransferPlan tp = plan_persistent_weight_sync(resident(layer), plan, config_.expert);
    if (!tp.copies.empty()) s.weight_sync = std::move(tp);
    resident_[layer] = plan;
    reduce = replicas && (microbatch + 1) % config_.microbatches_per_step == 0;
  }
  if (config_.training && reduce) {
    GradReducePlan gp = plan_grad_reduce(plan, config_.expert);
    if (!gp.pulls.empty()) s.grad_reduce = std::move(gp);
  }
  return s;
}

TransferPlan StepDriver::weight_sync_in_mode(WeightSyncMode mode) const {
  if (!last_.weight_sync) return TransferPlan{};
  if (last_.persistent || last_.weight_sync->mode == mode) return *last_.weight_sync;
  WeightSyncOptions o = config_.weight_sync;
  o.mode = mode;
  return plan_weight_sync(last_.result.plan, config_.expert, o);
}

}  // namespace rackep
