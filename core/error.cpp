#include "core/error.hpp"

#include <cstdio>
#include <cstdlib>

namespace rackep {

InputError::InputError(std::string source, std::string field, const std::string& message)
    : std::runtime_error(source + ": " + field + ": " + message),
      source_(std::move(source)),
      field_(std::move(field)) {}

void check_failed(const char* condition, const char* file, int line, const std::string& message) {
  std::fprintf(stderr, "rackep: internal check failed at %s:%d: %s: %s\n", file, line, condition,
               message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace rackep
