#include "config/experiment.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <type_traits>

#include "core/error.hpp"
#include "core/input_limits.hpp"

namespace rackep::config {
namespace {

using json = nlohmann::json;

constexpr unsigned kSim = kSimulate | kSweep;
constexpr unsigned kAll = kPlan | kSimulate | kSweep | kRunLayer;
constexpr double kBig = 9007199254740992.0;  // 2^53: every integer field fits a double exactly

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
json to_j(const T& v) {
  return json(v);
}
template <class T>
json to_j(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}
template <class T>
void from_j(T& v, const json& j) {
  v = j.get<T>();
}
template <class T>
void from_j(std::optional<T>& v, const json& j) {
  if (j.is_null()) {
    v.reset();
  } else {
    v = j.get<T>();
  }
}

// A field read and written through `acc(config) -> member&`.
template <class Acc>
FieldSpec make(std::string key, std::string flag, FieldType type, unsigned cmds, double lo, double hi,
               std::string help, Acc acc) {
  using M = std::remove_reference_t<decltype(acc(std::declval<ExperimentConfig&>()))>;
  FieldSpec f;
  f.key = std::move(key);
  f.flag = std::move(flag);
  f.type = type;
  f.optional = is_optional<M>::value;
  f.min = lo;
  f.max = hi;
  f.commands = cmds;
  f.help = std::move(help);
  f.get = [acc](const ExperimentConfig& c) { return to_j(acc(const_cast<ExperimentConfig&>(c))); };
  f.set = [acc](ExperimentConfig& c, const json& j) { from_j(acc(c), j); };
  return f;
}

// An int option of core's BalancerOptions where 0 means "derive it": absent in the config, never 0.
template <class Acc>
FieldSpec zero_absent(std::string key, std::string flag, unsigned cmds, double hi, std::string help,
                      Acc acc) {
  FieldSpec f;
  f.key = std::move(key);
  f.flag = std::move(flag);
  f.type = FieldType::kInt;
  f.optional = true;
  f.min = 1;
  f.max = hi;
  f.commands = cmds;
  f.help = std::move(help);
  f.get = [acc](const ExperimentConfig& c) {
    const int v = acc(const_cast<ExperimentConfig&>(c));
    return v == 0 ? json(nullptr) : json(v);
  };
  f.set = [acc](ExperimentConfig& c, const json& j) { acc(c) = j.is_null() ? 0 : j.get<int>(); };
  return f;
}

// A string or list field whose empty value means absent: null in JSON.
FieldSpec empty_absent(FieldSpec f) {
  f.optional = true;
  auto get = f.get;
  auto set = f.set;
  f.get = [get](const ExperimentConfig& c) {
    json v = get(c);
    const bool empty = v.is_string() ? v.get<std::string>().empty() : v.empty();
    return empty ? json(nullptr) : v;
  };
  f.set = [set, type = f.type](ExperimentConfig& c, const json& j) {
    set(c, j.is_null() ? (type == FieldType::kList ? json::array() : json("")) : j);
  };
  return f;
}

FieldSpec with_choices(FieldSpec f, std::vector<std::string> choices) {
  f.choices = std::move(choices);
  return f;
}

FieldSpec inverted(FieldSpec f) {
  f.invert = true;
  return f;
}

std::vector<FieldSpec> build_fields() {
  using C = ExperimentConfig;
  using T = FieldType;
  std::vector<FieldSpec> v;
  // What runs.
  v.push_back(
      empty_absent(make("model", "--model", T::kString, kAll, 0, 0,
                        "model: a bundled name (configs/models/*.json) or a file (plan: default the trace's "
                        "recorded model)",
                        [](C& c) -> std::string& { return c.model; })));
  v.push_back(make("topology", "--topology", T::kString, kSim, 0, 0,
                   "topology: a bundled name (topologies/*.json) or a file",
                   [](C& c) -> std::string& { return c.topology; }));
  v.push_back(empty_absent(
      make("trace", "--trace", T::kString, kAll, 0, 0,
           "routing: a canonical trace directory (simulate also: esft:<task>[,<task>], "
           "synthetic:<zipf|drift|switch>; absent: the shipped ESFT routing, or synthetic:zipf for "
           "models without its 64 experts)",
           [](C& c) -> std::string& { return c.trace; })));
  v.push_back(empty_absent(make("esft", "--esft", T::kList, kPlan, 0, 0,
                                "ESFT task directories to compose instead of a trace",
                                [](C& c) -> std::vector<std::string>& { return c.esft; })));
  v.push_back(make("calibration", "--calibration", T::kString, kSim, 0, 0,
                   "calibration: a bundled name (configs/calibration) or a file",
                   [](C& c) -> std::string& { return c.calibration; }));
  FieldSpec balancers = make("balancers", "--balancers", T::kList, kAll, 0, 0,
                             "balancers by name, comma-separated (run-layer: exactly one)",
                             [](C& c) -> std::vector<std::string>& { return c.balancers; });
  balancers.choices_fn = [] { return balancer_names(); };
  v.push_back(balancers);
  // Shape.
  v.push_back(make("ranks", "--ranks", T::kInt, kAll, 1, kMaxRanks,
                   "EP ranks N (absent: the trace's; plan on ESFT: 8; simulate on generated traces: 32)",
                   [](C& c) -> std::optional<int>& { return c.ranks; }));
  v.push_back(make("slots", "--slots", T::kInt, kAll, 0, kMaxSlots, "redundant expert slots per rank R",
                   [](C& c) -> int& { return c.slots; }));
  v.push_back(make("domain", "--domain", T::kInt, kAll, 1, kMaxRanks,
                   "NVLink domain size G (absent: the topology's; plan and run-layer: all ranks)",
                   [](C& c) -> std::optional<int>& { return c.domain; }));
  // Workload.
  v.push_back(with_choices(
      make("mode", "--mode", T::kString, kSim, 0, 0, "train (forward + backward) or prefill (forward only)",
           [](C& c) -> std::string& { return c.mode; }),
      {"train", "prefill"}));
  v.push_back(
      with_choices(make("fidelity", "--fidelity", T::kString, kSim, 0, 0,
                        "ptask (one SimGrid parallel task per collective) or flow (one comm per pair, <= 144 "
                        "ranks)",
                        [](C& c) -> std::string& { return c.fidelity; }),
                   {"ptask", "flow"}));
  v.push_back(with_choices(
      make("precision", "--precision", T::kString, kSim, 0, 0, "GEMM and dispatch precision: bf16 or fp8",
           [](C& c) -> std::string& { return c.precision; }),
      {"bf16", "fp8"}));
  v.push_back(empty_absent(with_choices(
      make("backward_comm_precision", "--backward-comm-precision", T::kString, kSim, 0, 0,
           "element type of combine_bwd (the gradient before the down-projection): bf16 or fp8 (absent: as "
           "precision)",
           [](C& c) -> std::string& { return c.backward_comm_precision; }),
      {"bf16", "fp8"})));
  v.push_back(empty_absent(with_choices(
      make("schedule", "--schedule", T::kString, kSim, 0, 0,
           "train: sequential, 1f1b or dualpipe; prefill: sequential or two-batch (absent: dualpipe for "
           "training, two-batch for prefill)",
           [](C& c) -> std::string& { return c.schedule; }),
      {"sequential", "1f1b", "dualpipe", "two-batch"})));
  v.push_back(make("pp", "--pp", T::kInt, kSim, 1, 1024, "pipeline-parallel stages",
                   [](C& c) -> int& { return c.pp; }));
  v.push_back(make("dp", "--dp", T::kInt, kSim, 1, 1 << 20,
                   "training memory: data-parallel replicas of the whole EP x PP grid (the optimizer "
                   "state of experts is sharded over them, that of attention and dense layers over EP x DP)",
                   [](C& c) -> int& { return c.dp; }));
  v.push_back(make("zero", "--zero", T::kInt, kSim, 0, 1,
                   "training memory: ZeRO stage, 0 = every data-parallel rank keeps all Adam state, 1 = "
                   "optimizer state sharded over data parallelism (DeepSeek-V3, Megatron distributed "
                   "optimizer)",
                   [](C& c) -> int& { return c.zero; }));
  v.push_back(make("recompute", "--recompute", T::kBool, kSim, 0, 0,
                   "full activation recompute in the backward pass",
                   [](C& c) -> bool& { return c.recompute; }));
  v.push_back(inverted(make("dedup", "--no-dedup", T::kBool, kSim, 0, 0,
                            "dispatch one copy per (token, expert) instead of per (token, rank)",
                            [](C& c) -> bool& { return c.dedup; })));
  v.push_back(inverted(make("ptask_compress", "--no-ptask-compress", T::kBool, kSim, 0, 0,
                            "hand SimGrid the full byte matrix instead of the load-preserving compressed one "
                            "(same result, slower)",
                            [](C& c) -> bool& { return c.ptask_compress; })));
  v.push_back(
      with_choices(make("weight_sync", "--weight-sync", T::kString, kAll, 0, 0,
                        "weight_sync plan mode of fixed-master balancers: direct, adaptive or force_relay",
                        [](C& c) -> std::string& { return c.weight_sync; }),
                   {"direct", "adaptive", "force_relay"}));
  v.push_back(make("check_plans", "--check-plans", T::kBool, kAll, 0, 0,
                   "check every plan against ALGORITHMS.md 2.8 (always on in debug builds)",
                   [](C& c) -> bool& { return c.check_plans; }));
  // Trace composition and generation.
  v.push_back(make("tokens_per_rank", "--tokens-per-rank", T::kInt, kAll & ~kRunLayer, 1, kMaxTokensPerRank,
                   "tokens per rank per microbatch of composed/generated traces (absent: plan 256; simulate "
                   "4096 for esft, 8192 for synthetic)",
                   [](C& c) -> std::optional<int64_t>& { return c.tokens_per_rank; }));
  v.push_back(make("microbatches", "--microbatches", T::kInt, kSim, 1, kMaxMicrobatches,
                   "replay at most this many microbatches (absent: all; synthetic: 8; esft: 4, reusing its "
                   "sequences over shuffled passes when it holds fewer tokens)",
                   [](C& c) -> std::optional<int64_t>& { return c.microbatches; }));
  v.push_back(make("imbalance", "--imbalance", T::kDouble, kSim, 1, kMaxImbalance,
                   "synthetic traces: target rank imbalance", [](C& c) -> double& { return c.imbalance; }));
  v.push_back(make("seed", "--seed", T::kInt, kAll & ~kRunLayer, 0, kBig,
                   "seed of trace composition / generation (absent: plan 0, simulate 1)",
                   [](C& c) -> std::optional<int64_t>& { return c.seed; }));
  v.push_back(make("seq_len", "--seq-len", T::kInt, kSim, 1, kMaxTokensPerRank,
                   "tokens per sequence for traces without sequences (absent: tokens per rank)",
                   [](C& c) -> std::optional<int>& { return c.seq_len; }));
  v.push_back(
      with_choices(make("policy", "--policy", T::kString, kPlan, 0, 0, "ESFT composition: pack or whole",
                        [](C& c) -> std::string& { return c.policy; }),
                   {"pack", "whole"}));
  // Slices and execution.
  v.push_back(make("max_records", "--max-records", T::kInt, kPlan | kRunLayer, 1, kBig,
                   "stop after this many records (absent: plan all; run-layer 4)",
                   [](C& c) -> std::optional<int64_t>& { return c.max_records; }));
  v.push_back(make("skip_records", "--skip-records", T::kInt, kRunLayer, 0, kBig,
                   "records skipped before the slice", [](C& c) -> int64_t& { return c.skip_records; }));
  v.push_back(make("backward", "--backward", T::kBool, kRunLayer, 0, 0, "also run grad_reduce",
                   [](C& c) -> bool& { return c.backward; }));
  v.push_back(inverted(make("check", "--no-check", T::kBool, kRunLayer, 0, 0,
                            "skip the CPU reference check of the first record",
                            [](C& c) -> bool& { return c.check; })));
  v.push_back(make("gpus", "--gpus", T::kInt, kRunLayer, 1, 1024,
                   "GPUs to place the EP ranks on (absent: every GPU found, the largest count dividing the "
                   "EP size; 1: all ranks emulated on GPU 0); not used under mpirun",
                   [](C& c) -> std::optional<int>& { return c.gpus; }));
  // Balancer options.
  const unsigned kB = kAll;
  v.push_back(make("ultraep.eps", "--eps", T::kDouble, kB, 1e-9, 1, "ultraep: QUOTA_ORACLE_EPS",
                   [](C& c) -> double& { return c.options.ultraep.eps; }));
  v.push_back(make("ultraep.balance_threshold", "--balance-threshold", T::kDouble, kB, 1, 1000,
                   "ultraep: balance threshold bt",
                   [](C& c) -> double& { return c.options.ultraep.balance_threshold; }));
  v.push_back(make("ultraep.min_tokens_per_replica", "--min-tokens-per-replica", T::kInt, kB, 1, kBig,
                   "ultraep: static floor q_min of the fallback search",
                   [](C& c) -> int64_t& { return c.options.ultraep.min_tokens_per_replica; }));
  v.push_back(inverted(make("ultraep.locality", "--no-locality", T::kBool, kB, 0, 0,
                            "ultraep: plain proportional per-source split",
                            [](C& c) -> bool& { return c.options.ultraep.locality_aware; })));
  v.push_back(inverted(make("ultraep.interleave", "--no-interleave", T::kBool, kB, 0, 0,
                            "ultraep: reroute without interleave",
                            [](C& c) -> bool& { return c.options.ultraep.interleave; })));
  v.push_back(make("eplb.window", "--eplb-window", T::kInt, kB, 1, 1 << 20,
                   "eplb: microbatches of history per layer",
                   [](C& c) -> int& { return c.options.eplb.window; }));
  v.push_back(make("eplb.period", "--eplb-period", T::kInt, kB, 1, 1 << 20,
                   "eplb: re-plan every K microbatches of a layer",
                   [](C& c) -> int& { return c.options.eplb.period; }));
  FieldSpec policy =
      make("eplb.policy", "--eplb-policy", T::kString, kB, 0, 0, "eplb: auto, hierarchical or global",
           [](C& c) -> EplbPolicy& { return c.options.eplb.policy; });
  policy.choices = {"auto", "hierarchical", "global"};
  policy.get = [](const ExperimentConfig& c) {
    const EplbPolicy p = c.options.eplb.policy;
    return json(p == EplbPolicy::kHierarchical ? "hierarchical"
                : p == EplbPolicy::kGlobal     ? "global"
                                               : "auto");
  };
  policy.set = [](ExperimentConfig& c, const json& j) {
    const std::string s = j.get<std::string>();
    c.options.eplb.policy = s == "hierarchical" ? EplbPolicy::kHierarchical
                            : s == "global"     ? EplbPolicy::kGlobal
                                                : EplbPolicy::kAuto;
  };
  v.push_back(policy);
  v.push_back(zero_absent("eplb.groups", "--eplb-groups", kB, 1 << 20,
                          "eplb: expert groups (absent: one per domain)",
                          [](C& c) -> int& { return c.options.eplb.num_groups; }));
  v.push_back(zero_absent("eplb.nodes", "--eplb-nodes", kB, 1 << 20,
                          "eplb: nodes (absent: one per NVLink domain)",
                          [](C& c) -> int& { return c.options.eplb.num_nodes; }));
  v.push_back(make("lplb.group", "--lplb-group", T::kInt, kB, 1, kMaxRanks,
                   "lplb: ranks per redundancy group",
                   [](C& c) -> int& { return c.options.lplb.group_size; }));
  v.push_back(zero_absent("lplb.directions", "--lplb-directions", kB, 64,
                          "lplb: directions (absent: min(2, R))",
                          [](C& c) -> int& { return c.options.lplb.directions; }));
  v.push_back(make("lplb.window", "--lplb-window", T::kInt, kB, 1, 1 << 20, "lplb: history window",
                   [](C& c) -> int& { return c.options.lplb.window; }));
  v.push_back(make("lplb.period", "--lplb-period", T::kInt, kB, 1, 1 << 20,
                   "lplb: re-select replicated experts every K microbatches",
                   [](C& c) -> int& { return c.options.lplb.period; }));
  return v;
}

std::string known_keys() {
  std::string k;
  for (const FieldSpec& f : fields()) k += (k.empty() ? "" : ", ") + f.key;
  return k;
}

std::string range_text(const FieldSpec& f) {
  std::ostringstream o;
  o.precision(15);
  o << "[" << f.min << ", " << f.max << "]";
  return o.str();
}

// Errors read "<flag>: <value>: why" for the field's own flag and "<file, --set or --grid>: <key>: why"
// otherwise.
std::string where(const FieldSpec& f, const std::string& source, const std::string& text) {
  return source == f.flag ? text : f.key;
}

}  // namespace

const std::vector<FieldSpec>& fields() {
  static const std::vector<FieldSpec> all = build_fields();
  return all;
}

const FieldSpec& field(const std::string& key, const std::string& source) {
  for (const FieldSpec& f : fields())
    if (f.key == key) return f;
  throw InputError(source, key, "unknown key (known: " + known_keys() + ")");
}

void set_field_json(ExperimentConfig& c, const FieldSpec& f, const json& value, const std::string& source,
                    const std::string& what) {
  auto bad = [&](const std::string& why) { throw InputError(source, what, why); };
  if (value.is_null()) {
    if (!f.optional) bad("must not be null");
    f.set(c, value);
    return;
  }
  std::vector<std::string> choices = f.choices_fn ? f.choices_fn() : f.choices;
  auto check_choice = [&](const std::string& s) {
    if (s.empty()) bad("must not be empty");
    if (choices.empty()) return;
    for (const std::string& x : choices)
      if (x == s) return;
    std::string list;
    for (const std::string& x : choices) list += (list.empty() ? "" : ", ") + x;
    bad("unknown value '" + s + "' (known: " + list + ")");
  };
  switch (f.type) {
    case FieldType::kInt: {
      if (!value.is_number_integer()) bad("must be an integer");
      const double x = value.is_number_unsigned() ? static_cast<double>(value.get<uint64_t>())
                                                  : static_cast<double>(value.get<int64_t>());
      if (x < f.min || x > f.max)
        bad("must be in " + range_text(f) + ", got " + value.dump() +
            (f.optional ? " (omit it for the default)" : ""));
      break;
    }
    case FieldType::kDouble: {
      if (!value.is_number()) bad("must be a number");
      const double x = value.get<double>();
      if (!std::isfinite(x) || x < f.min || x > f.max)
        bad("must be in " + range_text(f) + ", got " + value.dump());
      break;
    }
    case FieldType::kBool:
      if (!value.is_boolean()) bad("must be true or false");
      break;
    case FieldType::kString:
      if (!value.is_string()) bad("must be a string");
      check_choice(value.get<std::string>());
      break;
    case FieldType::kList:
      if (!value.is_array() || value.empty()) bad("must be a non-empty list of strings");
      for (const json& e : value) {
        if (!e.is_string()) bad("must be a list of strings");
        check_choice(e.get<std::string>());
      }
      break;
  }
  f.set(c, value);
}

void set_field(ExperimentConfig& c, const std::string& key, const std::string& text,
               const std::string& source) {
  const FieldSpec& f = field(key, source);
  const std::string what = where(f, source, text);
  json value;
  if (f.optional && (text == "null" || text.empty())) {
    value = nullptr;
  } else {
    switch (f.type) {
      case FieldType::kInt: {
        errno = 0;
        char* end = nullptr;
        const long long x = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE)
          throw InputError(source, what, "'" + text + "' is not an integer");
        value = static_cast<int64_t>(x);
        break;
      }
      case FieldType::kDouble: {
        errno = 0;
        char* end = nullptr;
        const double x = std::strtod(text.c_str(), &end);
        if (text.empty() || *end != '\0' || errno == ERANGE)
          throw InputError(source, what, "'" + text + "' is not a number");
        value = x;
        break;
      }
      case FieldType::kBool:
        if (text == "true" || text == "1") {
          value = true;
        } else if (text == "false" || text == "0") {
          value = false;
        } else {
          throw InputError(source, what, "'" + text + "' is not true or false");
        }
        break;
      case FieldType::kString:
        value = text;
        break;
      case FieldType::kList: {
        value = json::array();
        std::stringstream ss(text);
        std::string item;
        while (std::getline(ss, item, ','))
          if (!item.empty()) value.push_back(item);
        break;
      }
    }
  }
  set_field_json(c, f, value, source, what);
}

void apply_set(ExperimentConfig& c, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--set", assignment, "expected key=value (keys: " + known_keys() + ")");
  set_field(c, assignment.substr(0, eq), assignment.substr(eq + 1), "--set");
}

void load_config_json(const json& j, ExperimentConfig& c, const std::string& source) {
  if (!j.is_object()) throw InputError(source, "(top level)", "must be a JSON object");
  std::function<void(const json&, const std::string&)> walk = [&](const json& obj,
                                                                  const std::string& prefix) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const std::string key = prefix + it.key();
      if (it.value().is_object()) {
        bool section = false;
        for (const FieldSpec& f : fields()) section = section || f.key.rfind(key + ".", 0) == 0;
        if (!section) throw InputError(source, key, "unknown section (known keys: " + known_keys() + ")");
        walk(it.value(), key + ".");
        continue;
      }
      const FieldSpec& f = field(key, source);
      set_field_json(c, f, it.value(), source, key);
    }
  };
  walk(j, "");
}

void load_config_file(const std::string& path, ExperimentConfig& c) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "(file)", "cannot open the config file");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError(path, "(file)", "read error");
  check_json_depth(text, path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError(path, "(json)", std::string("not valid JSON: ") + e.what());
  }
  load_config_json(j, c, path);
}

void apply_command_defaults(ExperimentConfig& c, Command command) {
  switch (command) {
    case kSimulate:
    case kSweep:
      if (c.model.empty()) c.model = "deepseek-v2-lite";
      if (c.balancers.empty()) c.balancers = {"none", "eplb", "lplb", "ultraep", "ideal"};
      if (!c.seed) c.seed = 1;
      break;
    case kPlan:
      // The model stays empty when not given: plan takes the trace's recorded model (tools/cmd_plan.cpp).
      if (c.balancers.empty()) c.balancers = {"none", "ultraep-legacy", "eplb", "lplb", "ultraep", "ideal"};
      if (!c.seed) c.seed = 0;
      if (!c.tokens_per_rank) c.tokens_per_rank = 256;
      break;
    case kRunLayer:
      if (c.balancers.empty()) c.balancers = {"ultraep"};
      if (!c.max_records) c.max_records = 4;
      break;
  }
}

nlohmann::ordered_json to_json(const ExperimentConfig& c, Command command) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const FieldSpec& f : fields()) {
    if ((f.commands & command) == 0) continue;
    const json v = f.get(c);
    const auto dot = f.key.find('.');
    if (dot == std::string::npos) {
      out[f.key] = v;
    } else {
      out[f.key.substr(0, dot)][f.key.substr(dot + 1)] = v;
    }
  }
  return out;
}

}  // namespace rackep::config
