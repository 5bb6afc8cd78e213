#include "core/error.hpp"

namespace rackep {

int exit_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInput:
      return 2;
    case ErrorKind::kVerification:
      return 3;
    case ErrorKind::kRuntime:
      break;
  }
  return 1;
}

InputError::InputError(std::string source, std::string field, const std::string& message)
    : Error(ErrorKind::kInput, source + ": " + field + ": " + message),
      source_(std::move(source)),
      field_(std::move(field)) {}

void check_failed(const char* condition, const char* file, int line, const std::string& message) {
  throw RuntimeError(std::string("internal check failed at ") + file + ":" + std::to_string(line) + ": " +
                     condition + ": " + message);
}

}  // namespace rackep
