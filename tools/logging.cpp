#include "tools/logging.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <sstream>

#include "core/error.hpp"

namespace rackep::tools {
namespace {

spdlog::level::level_enum parse_level(const std::string& text) {
  const auto level = spdlog::level::from_str(text);
  // from_str maps unknown names to "off"; only accept "off" when it was asked for.
  if (level == spdlog::level::off && text != "off")
    throw InputError("--log-level", text,
                     "unknown level (use trace, debug, info, warn, error, critical, off)");
  return level;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
  auto found = spdlog::get(module);
  if (found) return found;
  auto created = spdlog::stderr_color_mt(module);
  created->set_pattern("[%^%l%$] [%n] %v");
  return created;
}

void setup_logging(const std::string& spec) {
  for (const char* m : {"core", "traces", "sim", "kernels", "tools"}) logger(m);
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos) {
      spdlog::set_level(parse_level(item));
    } else {
      logger(item.substr(0, eq))->set_level(parse_level(item.substr(eq + 1)));
    }
  }
}

}  // namespace rackep::tools
