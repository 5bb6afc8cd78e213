// File: core/error.hpp
// The error policy of rackep (docs/STYLE.md rule 5):
//   - bad user input (files, configs, flags, shapes) -> rackep::InputError naming the source and the field;
//   - a broken internal invariant -> RACKEP_CHECK, always on, prints the condition and aborts.
// Usage:
//   if (n < 0) throw rackep::InputError("trace.json", "num_ranks", "must be positive, got " +
//   std::to_string(n)); RACKEP_CHECK(sum == total, "allocation lost tokens");
#pragma once

#include <stdexcept>
#include <string>

namespace rackep {

/// Thrown for invalid user input. `source` is a file path or a flag group ("--ranks", "cluster shape");
/// `field` names the offending key, column or flag. what() is "<source>: <field>: <message>".
class InputError : public std::runtime_error {
 public:
  InputError(std::string source, std::string field, const std::string& message);
  const std::string& source() const noexcept { return source_; }
  const std::string& field() const noexcept { return field_; }

 private:
  std::string source_;
  std::string field_;
};

/// Called by RACKEP_CHECK on failure: prints file:line, the condition and the message, then aborts.
[[noreturn]] void check_failed(const char* condition, const char* file, int line, const std::string& message);

}  // namespace rackep

#define RACKEP_CHECK(cond, msg)                                            \
  do {                                                                     \
    if (!(cond)) ::rackep::check_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
