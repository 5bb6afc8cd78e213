// core/output_file.hpp: outputs appear only complete, never replace a user's file without force, report write
// errors naming the target and its flag, and leave nothing behind on error, SIGINT or SIGTERM; a leftover of
// a killed run does not block the next.
#include "core/output_file.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace rackep {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("rackep-output-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  static void write(const std::string& p, const std::string& text) { std::ofstream(p) << text; }

  fs::path dir_;
};

// Runs `child` in a forked process and returns its wait status.
template <class F>
int in_child(F&& child) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    child();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST_F(OutputFileTest, AppearsOnlyWhenCommitted) {
  const std::string target = path("out.csv");
  {
    OutputFile out(target, "--csv", false);
    out.stream() << "a,b\n";
    out.write("1,2\n");
    EXPECT_FALSE(fs::exists(target));
    out.commit();
  }
  EXPECT_EQ(read(target), "a,b\n1,2\n");
  EXPECT_EQ(entries(), std::vector<std::string>{"out.csv"});
  {
    OutputFile abandoned(path("never.csv"), "--csv", false);
    abandoned.write("partial");
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"out.csv"});
}

TEST_F(OutputFileTest, ExistingTargetRefusedUnlessForced) {
  const std::string target = path("keep.json");
  write(target, "precious");
  try {
    OutputFile out(target, "--timeline", false);
    ADD_FAILURE() << "an existing file was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.source(), target);
    EXPECT_EQ(e.field(), "--timeline");
  }
  EXPECT_EQ(read(target), "precious");
  OutputFile out(target, "--timeline", true);
  out.write("new");
  EXPECT_EQ(read(target), "precious");  // untouched until commit
  out.commit();
  EXPECT_EQ(read(target), "new");
}

TEST_F(OutputFileTest, WriteErrorIsReportedAndKeepsTheOldFile) {
  const std::string target = path("big.csv");
  write(target, "old");
  std::string err;
  const int status = in_child([&] {
    // A file size limit makes write() fail (EFBIG) like a full disk (ENOSPC): the same checked path.
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      OutputFile out(target, "--csv", true);
      out.write(std::string(100000, 'x'));
      out.commit();
    } catch (const InputError& e) {
      if (e.source() == target && e.field() == "--csv" &&
          std::string(e.what()).find("write failed") != std::string::npos)
        ::_exit(7);
    }
    ::_exit(1);
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_EQ(read(target), "old");
  EXPECT_EQ(entries(), std::vector<std::string>{"big.csv"});
}

TEST_F(OutputFileTest, SignalsRemoveTheTemporaries) {
  for (int sig : {SIGINT, SIGTERM}) {
    const int status = in_child([&] {
      OutputFile file(path("timeline.json"), "--timeline", false);
      file.write("{\"traceEvents\": [");
      file.stream().flush();
      OutputDir dir(path("trace"), "--out", false);
      fs::create_directories(dir.temp_path());
      for (int i = 0; i < 3; ++i) std::ofstream(dir.temp_path() + "/chunk-" + std::to_string(i)) << "data";
      std::raise(sig);
    });
    ASSERT_TRUE(WIFSIGNALED(status)) << sig;
    EXPECT_EQ(WTERMSIG(status), sig);
    EXPECT_TRUE(entries().empty()) << entries().front();
  }
}

TEST_F(OutputFileTest, LeftoverOfAKilledRunDoesNotBlockTheNext) {
  const int status = in_child([&] {
    OutputFile file(path("t.json"), "--timeline", false);
    file.write("cut");
    file.stream().flush();
    std::raise(SIGKILL);  // nothing can clean up after this
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(entries().size(), 1u);
  EXPECT_EQ(entries()[0].rfind(".t.json.partial-", 0), 0u) << entries()[0];
  OutputFile again(path("t.json"), "--timeline", false);
  again.write("complete");
  again.commit();
  EXPECT_EQ(read(path("t.json")), "complete");
}

TEST_F(OutputFileTest, DirectoryCommitsWholeAndErrorsNameTheTarget) {
  const std::string target = path("trace");
  {
    OutputDir dir(target, "--out", false);
    fs::create_directories(dir.temp_path());
    std::ofstream(dir.temp_path() + "/manifest.json") << "{}";
    try {
      dir.rethrow(InputError(dir.temp_path() + "/chunk-000000.loads.npy", "loads", "bad"));
    } catch (const InputError& e) {
      EXPECT_EQ(e.source(), target + "/chunk-000000.loads.npy");
      EXPECT_EQ(e.field(), "loads");
      EXPECT_EQ(std::string(e.what()), target + "/chunk-000000.loads.npy: loads: bad");
    }
    EXPECT_FALSE(fs::exists(target));
    dir.commit();
  }
  EXPECT_EQ(read(target + "/manifest.json"), "{}");
  EXPECT_THROW(OutputDir(target, "--out", false), InputError);
  {
    OutputDir dir(target, "--out", true);  // replaces the whole directory
    fs::create_directories(dir.temp_path());
    std::ofstream(dir.temp_path() + "/other") << "x";
    dir.commit();
  }
  EXPECT_FALSE(fs::exists(target + "/manifest.json"));
  EXPECT_TRUE(fs::exists(target + "/other"));
  EXPECT_EQ(entries(), std::vector<std::string>{"trace"});
}

}  // namespace
}  // namespace rackep
