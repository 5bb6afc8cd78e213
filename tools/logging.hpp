// File: tools/logging.hpp
// Named spdlog loggers per module ("core", "traces", "sim", "kernels", "tools"), all writing to stderr, with
// levels from `--log-level` ("info", or "sim=debug,traces=warn"). Library code in core/ never logs.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace rackep::tools {

/// Creates the module loggers and applies `spec`; throws InputError("--log-level", ...) on a bad spec.
void setup_logging(const std::string& spec);
/// The logger of a module (created on first use with the default level).
std::shared_ptr<spdlog::logger> logger(const std::string& module);

}  // namespace rackep::tools
