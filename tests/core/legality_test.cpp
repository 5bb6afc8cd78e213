// The one legality checker (core/legality.hpp) against ALGORITHMS.md §2.8: a legal plan passes, and a plan
// that breaks each rule once is rejected with a message naming the rule. Rule 9 (distributed: weight_sync
// copies bitwise equal to the masters, grad_reduce sums) is checked by `rackep run-layer` on the GPU.
// The StepDriver runs this checker on every plan when asked (and in this test suite: RACKEP_CHECK_PLANS=1).
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/legality.hpp"
#include "core/reroute.hpp"
#include "core/step_driver.hpp"

namespace rackep {
namespace {

// N = 4 ranks, M = 2 masters, R = 1 redundant slot, NVLink domains {0, 1} and {2, 3}; S = 3, L = 8.
const ClusterShape kShape{4, 2, 1, 2};

LoadMatrix loads() {
  LoadMatrix m(4, 8);
  for (int s = 0; s < 4; ++s)
    for (int l = 0; l < 8; ++l) m.at(s, l) = 1 + (s + 3 * l) % 5;
  return m;
}

// Expert 0 (master: rank 0, physical 0) with a replica on rank 1's redundant slot (physical 5); quotas and
// the allocation give each source's tokens of expert 0 to instance 0 except one token to instance 1.
struct Legal {
  LoadMatrix routed = loads();
  Plan plan;
  Allocation alloc;
  Legal() {
    plan = Plan::masters_only(kShape, routed.expert_totals());
    plan.l2p[1] = 5;
    plan.p2l[5] = 0;
    plan.lcnt[0] = 2;
    alloc = Allocation::shaped_for(plan);
    for (int s = 0; s < 4; ++s)
      for (int l = 0; l < 8; ++l) alloc.at(s, l, 0) = routed.at(s, l);
    alloc.at(0, 0, 0) -= 1;
    alloc.at(0, 0, 1) = 1;
    plan.quota[0] -= 1;
    plan.quota[1] = 1;
  }
  std::vector<std::string> check() const { return check_plan(plan, &routed, &alloc); }
  std::vector<std::string> check_plan_only() const { return check_plan(plan); }
};

bool mentions(const std::vector<std::string>& bad, const std::string& text) {
  for (const std::string& b : bad)
    if (b.find(text) != std::string::npos) return true;
  return false;
}

std::string all(const std::vector<std::string>& bad) {
  std::string s;
  for (const std::string& b : bad) s += b + "\n";
  return s;
}

TEST(Legality, LegalPlanPasses) {
  const Legal p;
  EXPECT_TRUE(p.check().empty()) << all(p.check());
}

TEST(Legality, Rule1InstanceZeroIsTheMaster) {
  Legal p;
  std::swap(p.plan.l2p[0], p.plan.l2p[1]);
  std::swap(p.plan.quota[0], p.plan.quota[1]);
  const auto bad = p.check();
  EXPECT_TRUE(mentions(bad, "instance 0 is not the master")) << all(bad);
}

TEST(Legality, Rule2LcntCountsTheInstances) {
  Legal p;
  p.plan.lcnt[3] = 2;
  const auto bad = p.check_plan_only();
  EXPECT_TRUE(mentions(bad, "lcnt 2 but 1 instances")) << all(bad);
}

TEST(Legality, Rule3InstancesStayInTheMastersDomain) {
  Legal p;
  p.plan.p2l[5] = -1;
  p.plan.p2l[8] = 0;  // rank 2: the other domain
  p.plan.l2p[1] = 8;
  const auto bad = p.check();
  EXPECT_TRUE(mentions(bad, "outside the master's NVLink domain")) << all(bad);
}

TEST(Legality, Rule4OneInstancePerRank) {
  Legal p;
  p.plan.p2l[5] = -1;
  p.plan.p2l[2] = 0;  // rank 0's redundant slot: the master's own rank
  p.plan.l2p[1] = 2;
  const auto bad = p.check();
  EXPECT_TRUE(mentions(bad, "two instances on rank 0")) << all(bad);
}

TEST(Legality, Rule5ReplicasOnlyInRedundantSlots) {
  Legal p;
  // Expert 2's master slot (physical 3) takes expert 0's replica; expert 2 moves to the redundant slot 5.
  p.plan.p2l[3] = 0;
  p.plan.l2p[1] = 3;
  p.plan.p2l[5] = 2;
  p.plan.l2p[2 * 4] = 5;
  const auto bad = check_plan(p.plan);
  EXPECT_TRUE(mentions(bad, "replica in master slot 3")) << all(bad);
  EXPECT_TRUE(mentions(bad, "master slot 3 does not hold its master")) << all(bad);
}

TEST(Legality, Rule6AtMostNTimesRRedundantSlots) {
  // Redundant slots used <= N*R holds by construction for arrays of the shape's size; a plan claiming more
  // slots than the shape has is rejected as a shape mismatch.
  Legal p;
  p.plan.p2l.push_back(1);
  const auto bad = p.check();
  EXPECT_TRUE(mentions(bad, "plan arrays do not match the cluster shape")) << all(bad);
}

TEST(Legality, Rule7QuotasAndAllocationsConserveTokens) {
  Legal p;
  p.alloc.at(2, 5, 0) += 1;
  auto bad = p.check();
  EXPECT_TRUE(mentions(bad, "source 2 allocates")) << all(bad);
  Legal q;
  q.plan.quota[1] += 1;
  bad = q.check();
  EXPECT_TRUE(mentions(bad, "quotas sum to")) << all(bad);
}

TEST(Legality, Rule8RerouteKeepsTopKEntriesPerToken) {
  const Legal p;
  // Source 0 routes two tokens with top-2: (0, 1) and (0, 2).
  const std::vector<int32_t> topk = {0, 1, 0, 2};
  Allocation alloc = Allocation::shaped_for(p.plan);
  alloc.at(0, 0, 0) = 1;
  alloc.at(0, 0, 1) = 1;
  alloc.at(0, 1, 0) = 1;
  alloc.at(0, 2, 0) = 1;
  const std::vector<int32_t> phys = reroute_tokens(p.plan, alloc, 0, topk, 2, false);
  EXPECT_TRUE(check_reroute(p.plan, topk, phys, 2).empty()) << all(check_reroute(p.plan, topk, phys, 2));
  std::vector<int32_t> lost = phys;
  lost.pop_back();
  EXPECT_TRUE(mentions(check_reroute(p.plan, topk, lost, 2), "lost or gained"));
  std::vector<int32_t> wrong = phys;
  wrong[1] = 0;  // expert 1's entry sent to expert 0's master
  EXPECT_TRUE(mentions(check_reroute(p.plan, topk, wrong, 2), "does not host expert 1"));
  EXPECT_TRUE(mentions(check_reroute(p.plan, topk, wrong, 2), "twice in one token row"));
}

// A balancer whose allocations lose a token (rule 7, which nothing downstream notices): the StepDriver must
// refuse its plan when checking is on.
class BrokenBalancer : public Balancer {
 public:
  std::string name() const override { return "broken-for-test"; }
  PlanResult plan(const LoadMatrix& l, const StepContext&) override {
    Legal legal;
    PlanResult r{legal.plan, legal.alloc, l};
    r.alloc.at(2, 5, 0) += 1;
    return r;
  }
};

TEST(Legality, StepDriverRejectsAnIllegalPlanWhenChecking) {
  register_balancer("broken-for-test", [](const ClusterShape&, const BalancerOptions&) {
    return std::make_unique<BrokenBalancer>();
  });
  StepDriverConfig cfg;
  cfg.shape = kShape;
  cfg.balancer = "broken-for-test";
  cfg.expert = ExpertBytes{256, 272, 2};
  cfg.check_legality = true;
  StepDriver checked(cfg);
  try {
    checked.step(loads(), 0, 0);
    ADD_FAILURE() << "an illegal plan was accepted";
  } catch (const VerificationError& e) {
    EXPECT_NE(std::string(e.what()).find("source 2 allocates"), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kVerification);
  }
  cfg.check_legality = false;
  StepDriver unchecked(cfg);
  EXPECT_NO_THROW(unchecked.step(loads(), 0, 0));
}

TEST(Errors, OneBaseThreeKindsThreeExitCodes) {
  // The exit codes of README "Exit codes": main() returns exit_code(kind) for every rackep::Error.
  EXPECT_EQ(exit_code(InputError("f", "k", "m").kind()), 2);
  EXPECT_EQ(exit_code(RuntimeError("no GPU").kind()), 1);
  EXPECT_EQ(exit_code(VerificationError("run-layer", "differs").kind()), 3);
  try {
    RACKEP_CHECK(1 + 1 == 3, "arithmetic");
    ADD_FAILURE() << "RACKEP_CHECK did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find("internal check failed"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rackep
