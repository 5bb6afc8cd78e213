// File: config/experiment.hpp
// The experiment config of every `rackep` command that plans, simulates or executes (plan, simulate, sweep,
// run-layer): one typed struct, one strict JSON file format, one table of fields. Each field has one JSON key
// (dotted for the balancer sections: "eplb.window" is {"eplb": {"window": ...}}), one command-line flag
// spelled the same in every command, one valid range, and one default: the struct's initialiser, or, where
// commands differ, apply_command_defaults() (the only other place a default is written). An optional field
// that is absent (null in JSON) means "derive it" (from the trace, the topology, ...); 0 and negative numbers
// are never "default". Precedence: defaults < --config files (in order) < --set key=value (in order) < flags.
// Unknown keys, wrong types and out-of-range values throw InputError(<file or flag>, <field>, ...).
// Usage:
//   ExperimentConfig c;
//   load_config_file("exp.json", c, Command::kSimulate);
//   set_field(c, "eplb.window", "2", "--set");
//   apply_command_defaults(c, Command::kSimulate);
//   nlohmann::ordered_json echo = to_json(c, Command::kSimulate);   // re-runnable with --config
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/balancer.hpp"

namespace rackep::config {

/// Valid ranges shared by the config fields and the options of `rackep trace` / `bench` (one range each).
inline constexpr int kMaxRanks = 65536;
inline constexpr int64_t kMaxTokensPerRank = int64_t{1} << 24;
inline constexpr int64_t kMaxMicrobatches = int64_t{1} << 30;
inline constexpr int kMaxExperts = 1 << 20;
inline constexpr int kMaxTopK = 1024;
inline constexpr int kMaxSlots = 1024;
inline constexpr double kMaxImbalance = 1000.0;

/// The commands a field applies to (bit mask).
enum Command : unsigned { kPlan = 1u, kSimulate = 2u, kSweep = 4u, kRunLayer = 8u };

struct ExperimentConfig {
  // What runs.
  std::string model;  ///< bundled name or file; empty: the command's default (plan: the trace's model)
  std::string topology = "gb200-nvl72";
  std::string trace;  ///< directory, esft:<task>[,<task>] or synthetic:<kind>; empty: the command's default
  std::vector<std::string> esft;  ///< plan: ESFT task directories composed instead of a trace
  std::string calibration = "default";
  std::vector<std::string> balancers;  ///< empty: the command's default list
  // Shape.
  std::optional<int> ranks;   ///< EP ranks; absent: the trace's (generated traces: per command)
  int slots = 2;              ///< redundant expert slots per rank R
  std::optional<int> domain;  ///< NVLink domain size; absent: the topology's (plan, run-layer: all ranks)
  // Workload.
  std::string mode = "train";
  std::string fidelity = "ptask";
  std::string precision = "bf16";
  std::string schedule;  ///< sequential, 1f1b, dualpipe or two-batch; "" = the mode's overlapped schedule
  std::string backward_comm_precision;  ///< "" = as precision
  int pp = 1;                           ///< pipeline-parallel stages
  int dp = 1;    ///< data-parallel replicas of the whole EP x PP grid (memory: optimizer-state sharding)
  int zero = 1;  ///< ZeRO stage: 0 = every data-parallel rank keeps all Adam state, 1 = its 1/Nd share
  bool recompute = false;
  bool dedup = true;
  bool ptask_compress = true;
  std::string weight_sync = "adaptive";  ///< direct, adaptive or force_relay
  bool check_plans = false;              ///< also on in debug builds and with RACKEP_CHECK_PLANS=1
  // Trace composition and generation.
  std::optional<int64_t> tokens_per_rank;
  std::optional<int64_t> microbatches;
  double imbalance = 2.0;
  std::optional<int64_t> seed;
  std::optional<int> seq_len;
  std::string policy = "pack";  ///< plan: ESFT composition, pack or whole
  // Slices and execution.
  std::optional<int64_t> max_records;
  int64_t skip_records = 0;
  bool backward = false;
  bool check = true;
  std::optional<int> gpus;
  // Balancer options (ultraep.*, eplb.*, lplb.*).
  BalancerOptions options;
};

enum class FieldType { kInt, kDouble, kBool, kString, kList };

/// One field of ExperimentConfig: key, flag, type, range, help, the commands that read it, and how to read
/// and write it as JSON (null = absent).
struct FieldSpec {
  std::string key;
  std::string flag;  ///< "--ranks"; bool fields with invert: "--no-dedup" sets false
  FieldType type = FieldType::kInt;
  bool optional = false;
  double min = 0, max = 0;                               ///< numeric range, inclusive
  std::vector<std::string> choices;                      ///< allowed strings (empty: any)
  std::function<std::vector<std::string>()> choices_fn;  ///< allowed strings computed at check time
  bool invert = false;                                   ///< bool flag sets false
  unsigned commands = 0;
  std::string help;
  std::function<nlohmann::json(const ExperimentConfig&)> get;
  std::function<void(ExperimentConfig&, const nlohmann::json&)> set;
};

/// Every field, in echo order.
const std::vector<FieldSpec>& fields();
/// The field with this key; throws InputError(source, key, "unknown key ...") when there is none.
const FieldSpec& field(const std::string& key, const std::string& source);

/// Sets `key` from JSON after checking type and range. `source` names the file or flag in errors.
void set_field_json(ExperimentConfig& c, const FieldSpec& f, const nlohmann::json& value,
                    const std::string& source, const std::string& what);
/// Sets `key` from command-line text ("8", "1.5", "true", "none,ultraep"; "null" or "" for optional fields
/// clears them).
void set_field(ExperimentConfig& c, const std::string& key, const std::string& text,
               const std::string& source);
/// "key=value" of --set.
void apply_set(ExperimentConfig& c, const std::string& assignment);

/// Reads a config file (a JSON object; nested objects for the sections). Unknown keys are rejected.
void load_config_file(const std::string& path, ExperimentConfig& c);
/// Same from a parsed object; `source` names it in errors.
void load_config_json(const nlohmann::json& j, ExperimentConfig& c, const std::string& source);

/// Fills what the command decides itself (model, trace, balancer list, seed, ...) where still unset.
void apply_command_defaults(ExperimentConfig& c, Command command);

/// The config as JSON with every field the command reads (null = absent/derived): feed it back with --config.
nlohmann::ordered_json to_json(const ExperimentConfig& c, Command command);

}  // namespace rackep::config
