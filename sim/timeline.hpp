// File: sim/timeline.hpp
// Observer of simulated timelines (STYLE.md rule 14): the simulator fires one event per operation and rank
// after each balancer's step, writers (sim/report.hpp's ChromeTraceWriter) subscribe.
#pragma once

#include <cstdint>

namespace rackep::sim {

/// One interval of the simulated timeline.
struct TimelineEvent {
  int rank = 0;
  int lane = 0;  ///< stream (sim/step_graph.hpp Stream): compute, comm, comm (lane 1), background
  const char* name = "";
  double start_s = 0.0;
  double end_s = 0.0;
  int layer = -1;  ///< decoder layer, -1 when none
  int64_t microbatch = 0;
  int sms = 0;  ///< SMs a communication kernel holds (0 for compute)
};

class TimelineSink {
 public:
  virtual ~TimelineSink() = default;
  virtual void on_event(const TimelineEvent& event) = 0;
};

}  // namespace rackep::sim
