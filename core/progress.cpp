#include "core/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace rackep {

namespace {
std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long long t = std::llround(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", t / 60, t % 60);
  return buf;
}
}  // namespace

bool Progress::enabled_by_default() {
  const char* env = std::getenv("RACKEP_PROGRESS");
  if (env != nullptr && *env != '\0') return std::strcmp(env, "0") != 0;
  return isatty(STDERR_FILENO) == 1;
}

std::string Progress::format(const std::string& label, int64_t done, int64_t total, const std::string& unit,
                             double elapsed_s) {
  char buf[256];
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  if (total > 0) {
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : NAN;
    std::snprintf(buf, sizeof(buf), "%s: %lld/%lld %s (%d%%), %.3g %s/s, ETA %s", label.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), unit.c_str(),
                  static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)), rate,
                  unit.c_str(), duration(eta).c_str());
  } else {
    std::snprintf(buf, sizeof(buf), "%s: %lld %s, %.3g %s/s, %s elapsed", label.c_str(),
                  static_cast<long long>(done), unit.c_str(), rate, unit.c_str(),
                  duration(elapsed_s).c_str());
  }
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled_by_default()) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  finish();
}

void Progress::add(int64_t n) {
  done_ += n;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(200) && done_ != total_) return;
  last_draw_ = now;
  const std::string line =
      format(label_, done_, total_, unit_, std::chrono::duration<double>(now - start_).count());
  std::fprintf(stderr, "\r%s%*s", line.c_str(),
               static_cast<int>(last_width_ > line.size() ? last_width_ - line.size() : 0), "");
  std::fflush(stderr);
  last_width_ = line.size();
  drawn_ = true;
}

void Progress::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r%*s\r", static_cast<int>(last_width_), "");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace rackep
