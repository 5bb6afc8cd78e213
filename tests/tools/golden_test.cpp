// Golden outputs: every case of tests/goldens/cases.txt runs `rackep <args>` and its JSON must equal the
// checked-in tests/goldens/<name>.json up to the case's relative tolerance (strings, booleans, keys and array
// lengths exactly), so a change of prediction shows in the diff of the goldens. Paths under the source tree
// are written as "<src>". With RACKEP_REGEN_GOLDENS=1 the test rewrites the files instead (tools/
// regen_goldens.sh; RACKEP_GOLDENS_ONLY=<prefix> limits it to matching names, e.g. simulate).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli_util.hpp"

namespace rackep {
namespace {

struct Case {
  std::string name, args;
  double tolerance = 0.0;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<Case> cases() {
  std::ifstream in(std::string(RACKEP_SOURCE_DIR) + "/tests/goldens/cases.txt");
  std::vector<Case> out;
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    const auto a = line.find('|');
    const auto b = line.rfind('|');
    Case c{trim(line.substr(0, a)), trim(line.substr(a + 1, b - a - 1)), std::stod(line.substr(b + 1))};
    out.push_back(c);
  }
  return out;
}

void normalise(nlohmann::json& j) {
  const std::string src = RACKEP_SOURCE_DIR;
  if (j.is_string()) {
    std::string s = j.get<std::string>();
    for (auto at = s.find(src); at != std::string::npos; at = s.find(src)) s.replace(at, src.size(), "<src>");
    j = s;
  } else if (j.is_structured()) {
    for (auto& v : j) normalise(v);
  }
}

// The first difference beyond the tolerance, as "path: expected vs got"; empty when equal.
std::string diff(const nlohmann::json& want, const nlohmann::json& got, double tol, const std::string& path) {
  if (want.is_number() && got.is_number()) {
    const double a = want.get<double>(), b = got.get<double>();
    if (std::fabs(a - b) <= tol * std::max(std::fabs(a), std::fabs(b)) + 1e-12) return "";
    return path + ": " + want.dump() + " vs " + got.dump();
  }
  if (want.type() != got.type()) return path + ": " + want.dump() + " vs " + got.dump();
  if (want.is_object()) {
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key())) return path + "/" + it.key() + ": missing";
      const std::string d = diff(it.value(), got[it.key()], tol, path + "/" + it.key());
      if (!d.empty()) return d;
    }
    for (auto it = got.begin(); it != got.end(); ++it)
      if (!want.contains(it.key())) return path + "/" + it.key() + ": not in the golden";
    return "";
  }
  if (want.is_array()) {
    if (want.size() != got.size())
      return path + ": " + std::to_string(want.size()) + " vs " + std::to_string(got.size()) + " elements";
    for (size_t i = 0; i < want.size(); ++i) {
      const std::string d = diff(want[i], got[i], tol, path + "/" + std::to_string(i));
      if (!d.empty()) return d;
    }
    return "";
  }
  return want == got ? "" : path + ": " + want.dump() + " vs " + got.dump();
}

TEST(Goldens, PlanAndSimulateOutputsMatch) {
  const char* regen = std::getenv("RACKEP_REGEN_GOLDENS");
  const char* only = std::getenv("RACKEP_GOLDENS_ONLY");
  const std::vector<Case> all = cases();
  ASSERT_GE(all.size(), 4u);
  for (const Case& c : all) {
    if (only != nullptr && c.name.rfind(only, 0) != 0) continue;
    const test::CliRun r = test::run_rackep("--log-level error " + c.args + " 2>/dev/null");
    ASSERT_EQ(r.exit_code, 0) << c.name << ": rackep " << c.args << "\n" << r.out;
    nlohmann::json got = nlohmann::json::parse(r.out);
    normalise(got);
    const std::string path = std::string(RACKEP_SOURCE_DIR) + "/tests/goldens/" + c.name + ".json";
    if (regen != nullptr && std::string(regen) == "1") {
      std::ofstream(path) << got.dump(2) << "\n";
      continue;
    }
    std::ifstream in(path);
    ASSERT_TRUE(in.good()) << path << " is missing: run tools/regen_goldens.sh";
    const nlohmann::json want = nlohmann::json::parse(in);
    const std::string d = diff(want, got, c.tolerance, "");
    EXPECT_TRUE(d.empty()) << c.name << " (rackep " << c.args << ") differs from " << path << " at " << d
                           << "\n(if the change is intended: tools/regen_goldens.sh, then review the diff)";
  }
}

}  // namespace
}  // namespace rackep
