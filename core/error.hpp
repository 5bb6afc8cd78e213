// File: core/error.hpp
// The error policy of rackep (docs/STYLE.md rule 5). Every error rackep throws is a rackep::Error of one
// kind, and the kind decides the exit code of the `rackep` command (README "Exit codes"):
//   - kInput: bad user input (files, configs, flags, shapes) -> InputError naming the source and the field;
//     exit 2;
//   - kRuntime: the machine or the environment failed (no GPU, a CUDA/NCCL/MPI call, a child process, an
//     internal invariant, RACKEP_CHECK) -> RuntimeError (CudaError and GpuUnavailable derive from it); exit
//     1;
//   - kVerification: a result disagrees with its reference (GPU vs CPU, an illegal plan) ->
//     VerificationError; exit 3.
// Library code throws; it never aborts or exits. Usage:
//   if (n < 0) throw rackep::InputError("trace.json", "num_ranks", "must be positive, got " +
//   std::to_string(n)); RACKEP_CHECK(sum == total, "allocation lost tokens");
#pragma once

#include <stdexcept>
#include <string>

namespace rackep {

enum class ErrorKind { kInput, kRuntime, kVerification };

/// The base of every rackep error. what() is the message.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// The process exit code of an error kind: 2 input, 1 runtime, 3 verification.
int exit_code(ErrorKind kind);

/// Thrown for invalid user input. `source` is a file path or a flag group ("--ranks", "cluster shape");
/// `field` names the offending key, column or flag. what() is "<source>: <field>: <message>".
class InputError : public Error {
 public:
  InputError(std::string source, std::string field, const std::string& message);
  const std::string& source() const noexcept { return source_; }
  const std::string& field() const noexcept { return field_; }

 private:
  std::string source_;
  std::string field_;
};

/// A failure of the machine or environment (GPU, driver, MPI, a child process), or a broken invariant.
class RuntimeError : public Error {
 public:
  explicit RuntimeError(const std::string& message) : Error(ErrorKind::kRuntime, message) {}
};

/// A computed result disagrees with its reference. what() is "<what>: <message>".
class VerificationError : public Error {
 public:
  VerificationError(const std::string& what, const std::string& message)
      : Error(ErrorKind::kVerification, what + ": " + message) {}
};

/// Called by RACKEP_CHECK on failure: throws RuntimeError("internal check failed at file:line: condition:
/// message").
[[noreturn]] void check_failed(const char* condition, const char* file, int line, const std::string& message);

}  // namespace rackep

#define RACKEP_CHECK(cond, msg)                                            \
  do {                                                                     \
    if (!(cond)) ::rackep::check_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
