// File: core/progress.hpp
// A one-line progress display for long work (simulate over many layers, sweep, large imports): count, rate
// and ETA, redrawn in place on stderr at most 5 times a second. Shown only when stderr is a terminal
// (isatty), so piped or captured output never contains it; RACKEP_PROGRESS=1 forces it on, RACKEP_PROGRESS=0
// off. Usage:
//   rackep::Progress p("simulate", num_microbatches, "microbatches");
//   for (...) { ...; p.add(); }      // the destructor clears the line
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace rackep {

class Progress {
 public:
  /// `total` <= 0: unknown (no percentage, no ETA).
  Progress(std::string label, int64_t total, std::string unit);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(int64_t n = 1);
  /// Clears the line (idempotent).
  void finish();
  bool enabled() const { return enabled_; }

  /// True when progress lines are shown: RACKEP_PROGRESS=1, or unset and stderr is a terminal.
  static bool enabled_by_default();
  /// The line for `done` of `total` after `elapsed_s` seconds, e.g.
  /// "simulate: 12/48 microbatches (25%), 3.1 microbatches/s, ETA 0:11".
  static std::string format(const std::string& label, int64_t done, int64_t total, const std::string& unit,
                            double elapsed_s);

 private:
  std::string label_, unit_;
  int64_t total_ = 0, done_ = 0;
  bool enabled_ = false, drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  size_t last_width_ = 0;
};

}  // namespace rackep
