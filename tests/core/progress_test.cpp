#include "core/progress.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace {

TEST(Progress, FormatShowsCountRateAndEta) {
  EXPECT_EQ(rackep::Progress::format("simulate", 12, 48, "microbatches", 4.0),
            "simulate: 12/48 microbatches (25%), 3 microbatches/s, ETA 0:12");
  EXPECT_EQ(rackep::Progress::format("sweep", 1, 2, "configurations", 3600.0),
            "sweep: 1/2 configurations (50%), 0.000278 configurations/s, ETA 1:00:00");
  // Unknown total: no percentage and no ETA.
  EXPECT_EQ(rackep::Progress::format("import", 500, 0, "records", 2.0),
            "import: 500 records, 250 records/s, 0:02 elapsed");
  // Nothing done yet: the ETA is unknown.
  EXPECT_EQ(rackep::Progress::format("sweep", 0, 4, "configurations", 1.0),
            "sweep: 0/4 configurations (0%), 0 configurations/s, ETA ?");
}

TEST(Progress, EnvironmentOverridesTheTerminalCheck) {
  setenv("RACKEP_PROGRESS", "0", 1);
  EXPECT_FALSE(rackep::Progress::enabled_by_default());
  setenv("RACKEP_PROGRESS", "1", 1);
  EXPECT_TRUE(rackep::Progress::enabled_by_default());
  unsetenv("RACKEP_PROGRESS");
  // ctest captures stderr: not a terminal.
  EXPECT_FALSE(rackep::Progress::enabled_by_default());
}

}  // namespace
