#include "core/output_file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "core/error.hpp"

namespace rackep {
namespace fs = std::filesystem;

namespace {

// Temporaries that a signal must remove. Filled in normal context (under the mutex), read by the handler:
// a slot's path is complete before its kind becomes non-zero.
constexpr int kSlots = 64;
constexpr size_t kPathMax = 4096;
struct Slot {
  volatile std::sig_atomic_t kind = 0;  // 0 free, 1 file, 2 flat directory
  char path[kPathMax] = {};
};
Slot g_slots[kSlots];
std::mutex g_mutex;
struct sigaction g_previous[2];
bool g_installed = false;

// Removes a flat directory with async-signal-safe calls only (open, getdents64, unlinkat, rmdir).
void remove_flat_dir_signal_safe(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) char buf[4096];
    for (int pass = 0; pass < 64; ++pass) {
      bool removed = false;
      ::lseek(fd, 0, SEEK_SET);
      for (;;) {
        const long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
          // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
          unsigned short reclen = 0;
          std::memcpy(&reclen, buf + off + 16, sizeof reclen);
          const char* name = buf + off + 19;
          if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0 && ::unlinkat(fd, name, 0) == 0)
            removed = true;
          off += reclen;
        }
      }
      if (!removed) break;
    }
    ::close(fd);
  }
  ::rmdir(path);
}

void on_signal(int sig) {
  for (Slot& s : g_slots) {
    if (s.kind == 1) ::unlink(s.path);
    if (s.kind == 2) remove_flat_dir_signal_safe(s.path);
  }
  // Die of the signal as without this handler (exit status 128 + sig).
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handlers() {
  if (g_installed) return;
  g_installed = true;
  const int sigs[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; ++i) {
    struct sigaction now {};
    ::sigaction(sigs[i], nullptr, &g_previous[i]);
    if (g_previous[i].sa_handler != SIG_DFL) continue;  // someone else handles it (or ignores it)
    now.sa_handler = &on_signal;
    sigemptyset(&now.sa_mask);
    ::sigaction(sigs[i], &now, nullptr);
  }
}

int arm(const std::string& path, int kind, const std::string& target, const std::string& flag) {
  if (path.size() >= kPathMax) throw InputError(target, flag, "path is too long");
  std::lock_guard<std::mutex> lock(g_mutex);
  install_handlers();
  for (int i = 0; i < kSlots; ++i)
    if (g_slots[i].kind == 0) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      std::atomic_signal_fence(std::memory_order_seq_cst);
      g_slots[i].kind = kind;
      return i;
    }
  throw InputError(target, flag, "too many outputs open at once");
}

void disarm(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_slots[slot].kind = 0;
}

// "<parent>/.<name>.partial-<pid>" for `target`; `target` itself is normalised ("out/" -> "out").
std::string temp_name(std::string& target, const std::string& flag) {
  fs::path p(target);
  if (p.filename().empty()) p = p.parent_path();
  if (p.empty() || p.filename() == "." || p.filename() == "..")
    throw InputError(target, flag, "is not a file or directory name");
  target = p.string();
  return (p.parent_path() / ("." + p.filename().string() + ".partial-" + std::to_string(::getpid())))
      .string();
}

void check_target(const std::string& path, const std::string& flag, bool force, bool want_dir) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (!fs::exists(st)) {
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) {
      fs::create_directories(parent, ec);
      if (ec) throw InputError(path, flag, "cannot create the parent directory: " + ec.message());
    }
    return;
  }
  if (!force)
    throw InputError(
        path, flag,
        "already exists; refusing to overwrite it (choose another path, or --force where offered)");
  if (want_dir ? !fs::is_directory(st) : fs::is_directory(st))
    throw InputError(path, flag,
                     want_dir ? "exists and is not a directory; not replacing it"
                              : "is a directory; not replacing it with a file");
}

[[noreturn]] void fail_errno(const std::string& path, const std::string& flag, const std::string& what,
                             int err) {
  throw InputError(path, flag, what + ": " + std::strerror(err));
}

// rename(from, to) that, without force, never replaces a `to` created meanwhile.
void rename_into_place(const std::string& from, const std::string& to, bool force, const std::string& flag) {
  if (!force) {
#ifdef RENAME_NOREPLACE
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
    if (errno == EEXIST) throw InputError(to, flag, "appeared while writing; refusing to overwrite");
    if (errno != EINVAL && errno != ENOSYS)
      fail_errno(to, flag, "cannot rename the finished output into place", errno);
#endif
    std::error_code ec;
    if (fs::exists(fs::symlink_status(to, ec)))
      throw InputError(to, flag, "appeared while writing; refusing to overwrite");
  }
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail_errno(to, flag, "cannot rename the finished output into place", errno);
}

void fsync_path(const std::string& path, int flags, const std::string& target, const std::string& flag) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail_errno(target, flag, "cannot reopen to flush", errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Directories on some file systems refuse fsync (EINVAL): that costs durability, not correctness.
  if (rc != 0 && err != EINVAL) fail_errno(target, flag, "flush to disk failed", err);
}

}  // namespace

class OutputFile::Buffer : public std::streambuf {
 public:
  explicit Buffer(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof buf_); }
  ~Buffer() override {
    if (fd_ >= 0) ::close(fd_);
  }
  int error() const { return err_; }
  int fd() const { return fd_; }
  // Closes the descriptor; returns errno of a failing close, else 0.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }
  bool drain() {
    const char* p = pbase();
    size_t n = static_cast<size_t>(pptr() - pbase());
    setp(buf_, buf_ + sizeof buf_);
    if (err_ != 0) return false;
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  int fd_ = -1;
  int err_ = 0;
  char buf_[1 << 16];
};

OutputFile::OutputFile(std::string path, std::string flag, bool force)
    : path_(std::move(path)), flag_(std::move(flag)), force_(force) {
  temp_ = temp_name(path_, flag_);
  check_target(path_, flag_, force_, /*want_dir=*/false);
  slot_ = arm(temp_, 1, path_, flag_);
  ::unlink(temp_.c_str());  // a leftover of a crashed process that had our pid
  const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    const int err = errno;
    disarm(slot_);
    slot_ = -1;
    fail_errno(path_, flag_, "cannot create a file beside it", err);
  }
  buf_ = std::make_unique<Buffer>(fd);
  stream_ = std::make_unique<std::ostream>(buf_.get());
}

OutputFile::~OutputFile() {
  stream_.reset();
  buf_.reset();
  if (slot_ >= 0) {
    ::unlink(temp_.c_str());
    disarm(slot_);
  }
}

std::ostream& OutputFile::stream() {
  RACKEP_CHECK(stream_ != nullptr, "OutputFile written after commit()");
  return *stream_;
}

void OutputFile::write(std::string_view bytes) {
  stream().write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void OutputFile::commit() {
  RACKEP_CHECK(stream_ != nullptr, "OutputFile::commit() called twice");
  stream_->flush();
  if (buf_->error() != 0) fail_errno(path_, flag_, "write failed", buf_->error());
  if (!*stream_) throw InputError(path_, flag_, "write failed");
  if (::fsync(buf_->fd()) != 0) fail_errno(path_, flag_, "flush to disk failed", errno);
  if (const int err = buf_->close()) fail_errno(path_, flag_, "close failed", err);
  stream_.reset();
  buf_.reset();
  rename_into_place(temp_, path_, force_, flag_);
  disarm(slot_);
  slot_ = -1;
}

OutputDir::OutputDir(std::string path, std::string flag, bool force)
    : path_(std::move(path)), flag_(std::move(flag)), force_(force) {
  temp_ = temp_name(path_, flag_);
  check_target(path_, flag_, force_, /*want_dir=*/true);
  slot_ = arm(temp_, 2, path_, flag_);
  std::error_code ec;
  fs::remove_all(temp_, ec);  // a leftover of a crashed process that had our pid
}

OutputDir::~OutputDir() {
  if (slot_ >= 0) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
    disarm(slot_);
  }
}

void OutputDir::commit() {
  RACKEP_CHECK(slot_ >= 0, "OutputDir::commit() called twice");
  std::error_code ec;
  if (!fs::is_directory(temp_, ec)) throw InputError(path_, flag_, "nothing was written");
  for (const auto& entry : fs::directory_iterator(temp_, ec))
    if (entry.is_regular_file()) fsync_path(entry.path().string(), O_RDONLY, path_, flag_);
  if (ec) throw InputError(path_, flag_, "cannot list the finished output: " + ec.message());
  fsync_path(temp_, O_RDONLY | O_DIRECTORY, path_, flag_);
  std::string aside;
  if (force_ && fs::exists(fs::symlink_status(path_, ec))) {
    aside = temp_ + ".old";
    fs::remove_all(aside, ec);
    if (std::rename(path_.c_str(), aside.c_str()) != 0)
      fail_errno(path_, flag_, "cannot move the existing output aside", errno);
  }
  rename_into_place(temp_, path_, force_ || !aside.empty(), flag_);
  disarm(slot_);
  slot_ = -1;
  if (!aside.empty()) fs::remove_all(aside, ec);
}

void OutputDir::rethrow(const InputError& e) const {
  const std::string& src = e.source();
  if (src.compare(0, temp_.size(), temp_) != 0) throw e;
  const std::string prefix = src + ": " + e.field() + ": ";
  const std::string what = e.what();
  throw InputError(path_ + src.substr(temp_.size()), e.field(),
                   what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what);
}

}  // namespace rackep
