// Compiled into every test executable: makes "lplb" (rackep::lplb, GLPK) known to make_balancer(), as the
// rackep CLI does in main(). Test binaries link GLPK anyway; rackep::core itself does not.
#include "lplb/lplb.hpp"

namespace {
const bool registered = [] {
  rackep::register_lplb_balancer();
  return true;
}();
}  // namespace
