// File: core/output_file.hpp
// The one way rackep writes an output (README "Guarantees"): everything goes to a temporary name beside the
// target ("<dir>/.<name>.partial-<pid>"), every write is checked (a full disk is an error, not a cut file),
// the data is flushed to disk, and only then is the temporary renamed to the target. So a target the user
// already had is never truncated by a failed run; an existing target is refused unless `force`; SIGINT and
// SIGTERM remove the temporary (then the process dies of the signal as usual); a crash (SIGKILL, power loss)
// can leave only a hidden ".<name>.partial-<pid>", which never blocks a rerun.
// Errors are InputError(<target path>, <flag>, ...): they name the user's path and the option that gave it,
// never the temporary.
// Usage:
//   rackep::OutputFile out(path, "--csv", force);   // refuses an existing `path` unless force
//   out.stream() << "a,b\n";                        // or out.write(bytes)
//   out.commit();                                   // flush, fsync, rename; without it nothing appears
//   rackep::OutputDir dir(path, "--out", force);     // a directory: create files under dir.temp_path()
//   ... create dir.temp_path() and fill it ...; dir.commit();
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace rackep {

class InputError;

/// One output file written atomically (see the file banner).
class OutputFile {
 public:
  /// Checks the target (exists and !force: InputError(path, flag, "already exists ...")), creates the
  /// temporary beside it (creating missing parent directories) and arms the signal cleanup.
  OutputFile(std::string path, std::string flag, bool force);
  /// Without commit(): removes the temporary; the target is left as it was.
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  /// The stream to write to; write errors (ENOSPC, EIO) are remembered and reported by commit().
  std::ostream& stream();
  /// Appends `bytes` (the same as stream() << bytes).
  void write(std::string_view bytes);
  /// Flushes, fsyncs and closes the temporary, then renames it to the target. Throws InputError(path, flag,
  /// "write failed: <errno text>") on any write, flush or rename failure; the temporary is removed then.
  void commit();

  const std::string& path() const { return path_; }

 private:
  class Buffer;
  std::string path_, flag_, temp_;
  bool force_ = false;
  int slot_ = -1;
  std::unique_ptr<Buffer> buf_;
  std::unique_ptr<std::ostream> stream_;
};

/// One output directory written atomically: the caller creates and fills temp_path() (a flat directory:
/// files only), commit() fsyncs its files and renames it to the target (see the file banner).
class OutputDir {
 public:
  /// Checks the target like OutputFile; removes nothing of the user's. Does not create temp_path().
  OutputDir(std::string path, std::string flag, bool force);
  /// Without commit(): removes temp_path() and everything in it.
  ~OutputDir();
  OutputDir(const OutputDir&) = delete;
  OutputDir& operator=(const OutputDir&) = delete;

  /// Where to write: "<parent>/.<name>.partial-<pid>".
  const std::string& temp_path() const { return temp_; }
  /// fsyncs every file in temp_path() and renames it to the target (an existing target, with force, is
  /// moved aside first and removed after). Throws InputError(path, flag, ...).
  void commit();

  const std::string& path() const { return path_; }

  /// Rethrows `e` with a source inside temp_path() renamed to the same place under the target, so errors
  /// name the user's path, never the temporary.
  [[noreturn]] void rethrow(const InputError& e) const;

 private:
  std::string path_, flag_, temp_;
  bool force_ = false;
  int slot_ = -1;
};

}  // namespace rackep
