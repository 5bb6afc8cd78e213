// File: tests/traces/test_util.hpp
// Helpers of the traces tests: a fresh scratch directory per test (removed at the end; never the working
// directory), whole-file read/write, and a check that a call throws InputError naming a source and a field.
// Usage:
//   TempDir tmp;
//   std::string out = tmp.path("trace");   // does not exist yet
//   expect_input_error([&] { TraceReader r(out); }, "manifest.json", "manifest");
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "traces/trace_format.hpp"

namespace rackep::test {

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = "rackep-traces-" + std::to_string(::getpid());
    if (info != nullptr) name += std::string("-") + info->test_suite_name() + "-" + info->name();
    root_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// `name` inside the scratch directory (not created).
  std::string path(const std::string& name) const { return (root_ / name).string(); }

 private:
  std::filesystem::path root_;
};

/// Whole file as bytes.
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Replaces the file's contents.
inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Runs fn and expects an InputError whose source contains `source_part` and whose field is `field`.
template <typename Fn>
void expect_input_error(Fn&& fn, const std::string& source_part, const std::string& field) {
  try {
    fn();
    ADD_FAILURE() << "expected InputError(" << source_part << ", " << field << ")";
  } catch (const InputError& e) {
    EXPECT_NE(e.source().find(source_part), std::string::npos)
        << "source: " << e.source() << "; " << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

/// Every remaining record of `s`, in order.
inline std::vector<TraceRecord> drain(RecordStream& s) {
  std::vector<TraceRecord> out;
  TraceRecord r;
  while (s.next(r)) out.push_back(r);
  return out;
}

}  // namespace rackep::test
