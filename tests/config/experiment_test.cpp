// The experiment config (config/experiment.hpp): one strict JSON format (unknown keys, wrong types and
// out-of-range values name the file and the field), --set, command defaults, and the echo that re-runs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "config/experiment.hpp"
#include "core/error.hpp"

namespace rackep::config {
namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string write(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream(path) << text;
  return path;
}

TEST(ExperimentConfig, LoadsNestedSectionsAndTypes) {
  const std::string path =
      write("rackep_cfg_ok.json",
            R"({"ranks": 16, "slots": 1, "balancers": ["none", "ultraep"], "imbalance": 1.5,
                                     "recompute": true, "eplb": {"window": 2, "groups": null},
                                     "lplb": {"group": 4}, "ultraep": {"eps": 0.02, "locality": false}})");
  ExperimentConfig c;
  load_config_file(path, c);
  EXPECT_EQ(c.ranks, 16);
  EXPECT_EQ(c.slots, 1);
  EXPECT_EQ(c.balancers, (std::vector<std::string>{"none", "ultraep"}));
  EXPECT_DOUBLE_EQ(c.imbalance, 1.5);
  EXPECT_TRUE(c.recompute);
  EXPECT_EQ(c.options.eplb.window, 2);
  EXPECT_EQ(c.options.eplb.num_groups, 0);
  EXPECT_EQ(c.options.lplb.group_size, 4);
  EXPECT_DOUBLE_EQ(c.options.ultraep.eps, 0.02);
  EXPECT_FALSE(c.options.ultraep.locality_aware);
}

TEST(ExperimentConfig, StrictErrorsNameFileAndField) {
  struct Case {
    std::string json, expect;
  };
  for (const Case& k :
       {Case{R"({"rankz": 8})", "rankz: unknown key"},
        Case{R"({"eplb": {"windw": 2}})", "eplb.windw: unknown key"},
        Case{R"({"nosuch": {"a": 1}})", "nosuch: unknown section"},
        Case{R"({"ranks": 0})", "ranks: must be in [1, 65536], got 0"},
        Case{R"({"ranks": -1})", "ranks: must be in [1, 65536]"},
        Case{R"({"ranks": 8.5})", "ranks: must be an integer"},
        Case{R"({"slots": -1})", "slots: must be in [0, 1024]"},
        Case{R"({"mode": "train2"})", "mode: unknown value 'train2'"},
        Case{R"({"balancers": ["none", "foo"]})", "balancers: unknown value 'foo'"},
        Case{R"({"balancers": []})", "balancers: must be a non-empty list"},
        Case{R"({"eplb": {"groups": 0}})", "eplb.groups: must be in [1, "},
        Case{R"({"recompute": 1})", "recompute: must be true or false"},
        Case{R"({"pp": 0})", "pp: must be in [1, 1024]"},
        Case{R"({"schedule": "gpipe"})", "schedule: unknown value 'gpipe'"},
        Case{R"([1, 2])", "must be a JSON object"}, Case{R"({"ranks": )", "not valid JSON"}}) {
    const std::string path = write("rackep_cfg_bad.json", k.json);
    ExperimentConfig c;
    const std::string err = error_of([&] { load_config_file(path, c); });
    EXPECT_NE(err.find(path), std::string::npos) << k.json << " -> " << err;
    EXPECT_NE(err.find(k.expect), std::string::npos) << k.json << " -> " << err;
  }
  ExperimentConfig c;
  EXPECT_NE(error_of([&] { load_config_file("/nonexistent/cfg.json", c); }).find("/nonexistent/cfg.json"),
            std::string::npos);
}

TEST(ExperimentConfig, SetAndFlagsUseTheSameChecks) {
  ExperimentConfig c;
  apply_set(c, "eplb.window=3");
  apply_set(c, "balancers=none,eplb");
  apply_set(c, "ranks=null");
  EXPECT_EQ(c.options.eplb.window, 3);
  EXPECT_EQ(c.balancers.size(), 2u);
  EXPECT_FALSE(c.ranks.has_value());
  EXPECT_NE(error_of([&] { apply_set(c, "ranks=-1"); }).find("--set: ranks: must be in [1, 65536]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_set(c, "nosuch=1"); }).find("--set: nosuch: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_set(c, "ranks"); }).find("expected key=value"), std::string::npos);
  EXPECT_NE(error_of([&] {
              set_field(c, "ranks", "12x", "--ranks");
            }).find("--ranks: 12x: '12x' is not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              set_field(c, "slots", "1000000000", "--slots");
            }).find("--slots: 1000000000: must be in"),
            std::string::npos);
  EXPECT_NE(error_of([&] { set_field(c, "microbatches", "0", "--microbatches"); }).find("--microbatches: 0"),
            std::string::npos);
}

TEST(ExperimentConfig, CommandDefaultsAndEchoRoundTrip) {
  ExperimentConfig sim;
  apply_command_defaults(sim, kSimulate);
  EXPECT_EQ(sim.model, "deepseek-v2-lite");
  EXPECT_EQ(sim.balancers, (std::vector<std::string>{"none", "eplb", "lplb", "ultraep", "ideal"}));
  EXPECT_EQ(sim.seed, 1);
  ExperimentConfig plan;
  apply_command_defaults(plan, kPlan);
  EXPECT_TRUE(plan.model.empty()) << "plan takes the trace's model unless --model is given";
  EXPECT_EQ(plan.seed, 0);
  EXPECT_EQ(plan.tokens_per_rank, 256);

  ExperimentConfig c = sim;
  apply_set(c, "lplb.directions=1");
  apply_set(c, "ranks=8");
  apply_set(c, "schedule=1f1b");
  const nlohmann::ordered_json echo = to_json(c, kSimulate);
  EXPECT_EQ(echo["lplb"]["directions"], 1);
  EXPECT_TRUE(echo["domain"].is_null());
  EXPECT_FALSE(echo.contains("max_records")) << "only the keys simulate reads";
  ExperimentConfig back;
  load_config_json(nlohmann::json::parse(echo.dump()), back, "echo");
  EXPECT_EQ(to_json(back, kSimulate).dump(), echo.dump());
}

TEST(ExperimentConfig, OneFlagSpellingPerField) {
  std::set<std::string> flags, keys;
  for (const FieldSpec& f : fields()) {
    EXPECT_TRUE(keys.insert(f.key).second) << f.key;
    if (!f.flag.empty()) {
      EXPECT_TRUE(flags.insert(f.flag).second) << f.flag;
    }
  }
  for (const char* gone :
       {"--weight-sync-mode", "--redundant", "--balancer", "--hidden", "--ffn", "--records"})
    EXPECT_EQ(flags.count(gone), 0u) << gone;
}

}  // namespace
}  // namespace rackep::config
