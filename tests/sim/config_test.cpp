// Strict loading of the simulator's data files: every bundled file loads, and invalid files give an error
// that names the file and the field.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.hpp"
#include "sim/calibration.hpp"
#include "sim/model_config.hpp"
#include "sim/topology.hpp"
#include "sim/trace_source.hpp"

namespace rackep::sim {
namespace {

const std::string kRoot = RACKEP_SOURCE_DIR;

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

// Expects `fn` to throw an InputError whose source is `file` and whose field is `field`.
template <class Fn>
void expect_input_error(Fn fn, const std::string& file, const std::string& field) {
  try {
    fn();
    FAIL() << "expected an InputError for " << file << " / " << field;
  } catch (const InputError& e) {
    EXPECT_EQ(e.source(), file) << e.what();
    EXPECT_EQ(e.field(), field) << e.what();
  }
}

TEST(SimConfig, EveryBundledTopologyLoads) {
  for (const std::string& name : list_data_files("topologies")) {
    const Topology t = load_topology(resolve_data_file(name, "topologies", "--topology"));
    EXPECT_EQ(t.name, name);
    EXPECT_GT(t.scale_up.port_bytes_per_s.value, 0.0);
    EXPECT_FALSE(t.gpu.bf16_flops_per_s.source.empty());
  }
  EXPECT_GE(list_data_files("topologies").size(), 6u);
}

TEST(SimConfig, EveryBundledModelLoads) {
  // Hand-worked: DeepSeek-V3 MLA projections are 374 MFLOP per token (docs/HARDWARE.md §E.2) and the core
  // 81,920 FLOP per attended key; routed experts 6hf = 88.1 MFLOP per pair.
  const ModelConfig v3 = load_model(resolve_data_file("deepseek-v3", "configs/models", "--model"));
  EXPECT_NEAR(v3.attention_projection_flops_per_token(), 374.2e6, 0.5e6);
  EXPECT_DOUBLE_EQ(v3.attention_core_flops_per_key(), 81920.0);
  EXPECT_DOUBLE_EQ(v3.expert_flops_per_pair(), 6.0 * 7168 * 2048);
  EXPECT_EQ(v3.num_moe_layers(), 58);
  EXPECT_EQ(list_data_files("configs/models").size(), 10u);
  for (const std::string& name : list_data_files("configs/models")) {
    const ModelConfig m = load_model(resolve_data_file(name, "configs/models", "--model"));
    EXPECT_GT(m.num_moe_layers(), 0) << name;
  }
}

TEST(SimConfig, DefaultCalibrationLoadsAndInterpolates) {
  const Calibration c =
      load_calibration(resolve_data_file("default", "configs/calibration", "--calibration"));
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(64), 0.135);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(1e9), 0.65);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(1), 0.135);
  // Halfway (in log2) between 4096 (0.62) and 8192 (0.65).
  EXPECT_NEAR(c.gemm_efficiency(std::sqrt(4096.0 * 8192.0)), 0.635, 1e-12);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(64, GemmPass::kWgrad), 0.135);
  EXPECT_EQ(c.attention_for("hopper", "mla").forward.value, 0.6);
  EXPECT_EQ(c.arch("hopper").scale_up_efficiency.value, 0.77);
  EXPECT_EQ(c.comm_sms.all_to_all.value, 20.0);
  EXPECT_THROW(c.arch("no-such-gpu"), InputError);
  EXPECT_GT(c.planner("ultraep").fixed_s, 0.0);
  EXPECT_EQ(c.planner("some-plugin").fixed_s, 0.0);  // falls back to "default"
}

TEST(SimConfig, InvalidTopologyNamesFileAndField) {
  const std::string base = kRoot + "/tests/sim/data/two_gpu.json";
  std::ifstream in(base);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string bad = text;
  bad.replace(bad.find("\"port_bytes_per_s\""), 18, "\"port_bytes_per_sec\"");
  const std::string p1 = write_temp("bad_topology_unknown.json", bad);
  expect_input_error([&] { load_topology(p1); }, p1, "scale_up.port_bytes_per_s");  // missing comes first
  std::string neg = text;
  neg.replace(neg.find("1e11"), 4, "-1e11");
  const std::string p2 = write_temp("bad_topology_negative.json", neg);
  expect_input_error([&] { load_topology(p2); }, p2, "scale_up.port_bytes_per_s");
  std::string extra = text;
  extra.insert(extra.find("\"gpu\""), "\"colour\": \"green\", ");
  const std::string p3 = write_temp("bad_topology_extra.json", extra);
  expect_input_error([&] { load_topology(p3); }, p3, "colour");
  std::string nosrc = text;
  const std::string sourced_two = "{\"value\": 2, \"source\": \"test fixture\"}";
  nosrc.replace(nosrc.find(sourced_two), sourced_two.size(), "2");
  const std::string p4 = write_temp("bad_topology_nosource.json", nosrc);
  expect_input_error([&] { load_topology(p4); }, p4, "num_gpus");
  const std::string p5 = write_temp("bad_topology_syntax.json", "{ \"name\": ");
  expect_input_error([&] { load_topology(p5); }, p5, "file");
}

TEST(SimConfig, InvalidModelNamesFileAndField) {
  const std::string base = kRoot + "/configs/models/mixtral-8x7b.json";
  std::ifstream in(base);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  text.replace(text.find("\"gqa\""), 5, "\"sparse\"");
  const std::string p = write_temp("bad_model.json", text);
  expect_input_error([&] { load_model(p); }, p, "attention.type");
  expect_input_error([&] { resolve_data_file("no-such-model", "configs/models", "--model"); }, "--model",
                     "no-such-model");
}

TEST(SimConfig, InvalidTraceNamesFileAndField) {
  const std::string dir = ::testing::TempDir() + "bad_trace";
  std::remove((dir + "/manifest.json").c_str());
  std::string cmd = "mkdir -p " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ofstream(dir + "/manifest.json") << "{\"format\": \"rackep-trace\", \"format_version\": 1}";
  TraceSpec spec;
  spec.text = dir;
  try {
    TraceSource s(spec);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.source()).find("manifest.json"), std::string::npos) << e.what();
    EXPECT_FALSE(e.field().empty());
  }
  spec.text = "synthetic:sideways";
  expect_input_error([&] { TraceSource s(spec); }, "--trace", "kind");
}

}  // namespace
}  // namespace rackep::sim
