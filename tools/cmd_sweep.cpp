// `rackep sweep`: what-if studies over a grid of simulate options (for example --grid domain=8,36,72,144
// --grid slots=0,1,2,3,4). Every configuration runs as its own `rackep simulate --json` process (SimGrid has
// one engine per process; DESIGN.md "Scaling out"), K at a time with --jobs K; the results are gathered into
// one table and a CSV file.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "tools/commands.hpp"
#include "tools/logging.hpp"
#include "tools/sim_options.hpp"

extern char** environ;

namespace rackep::tools {
namespace {

struct SweepArgs {
  SimCliOptions sim;
  std::vector<std::string> grid;
  int jobs = 1;
  std::string csv;
  bool force = false;
};

// The simulate options a grid may vary, and the flag each one sets.
const std::map<std::string, std::string>& grid_keys() {
  static const std::map<std::string, std::string> keys = {{"domain", "--domain"},
                                                          {"slots", "--slots"},
                                                          {"ranks", "--ranks"},
                                                          {"imbalance", "--imbalance"},
                                                          {"tokens-per-rank", "--tokens-per-rank"},
                                                          {"microbatches", "--microbatches"},
                                                          {"model", "--model"},
                                                          {"topology", "--topology"},
                                                          {"trace", "--trace"},
                                                          {"mode", "--mode"},
                                                          {"fidelity", "--fidelity"},
                                                          {"seed", "--seed"},
                                                          {"precision", "--precision"},
                                                          {"weight-sync", "--weight-sync"},
                                                          {"calibration", "--calibration"}};
  return keys;
}

struct Axis {
  std::string key;
  std::vector<std::string> values;
};

std::vector<Axis> parse_grid(const std::vector<std::string>& specs) {
  std::vector<Axis> axes;
  for (const std::string& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos) throw InputError("--grid", spec, "expected key=v1,v2,...");
    Axis a;
    a.key = spec.substr(0, eq);
    if (grid_keys().count(a.key) == 0) {
      std::string known;
      for (const auto& kv : grid_keys()) known += (known.empty() ? "" : ", ") + kv.first;
      throw InputError("--grid", a.key, "unknown key (known: " + known + ")");
    }
    std::stringstream ss(spec.substr(eq + 1));
    std::string v;
    while (std::getline(ss, v, ','))
      if (!v.empty()) a.values.push_back(v);
    if (a.values.empty()) throw InputError("--grid", spec, "no values");
    axes.push_back(a);
  }
  if (axes.empty()) throw InputError("--grid", "", "give at least one --grid key=v1,v2,...");
  return axes;
}

struct Outcome {
  int status = 0;
  std::string output;
};

// Runs argv, capturing stdout (stderr passes through).
Outcome run_capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  posix_spawn_file_actions_addclose(&actions, fds[1]);
  std::vector<char*> cargv;
  for (const std::string& s : argv) cargv.push_back(const_cast<char*>(s.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  Outcome out;
  if (rc != 0) {
    close(fds[0]);
    out.status = -1;
    return out;
  }
  char buf[65536];
  ssize_t got = 0;
  while ((got = read(fds[0], buf, sizeof(buf))) > 0) out.output.append(buf, static_cast<size_t>(got));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return out;
}

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw std::runtime_error("cannot locate the rackep executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

std::string num(double v, const char* f) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

void run_sweep(const SweepArgs& a) {
  if (a.jobs < 1) throw InputError("--jobs", std::to_string(a.jobs), "must be >= 1");
  to_sim_config(a.sim);  // validate the shared options once, before spawning anything
  const std::vector<Axis> axes = parse_grid(a.grid);
  // Opened (an existing file refused) before the first run; renamed into place when complete.
  std::unique_ptr<OutputFile> csv_file;
  if (!a.csv.empty()) csv_file = std::make_unique<OutputFile>(a.csv, "--csv", a.force);
  std::vector<std::vector<std::string>> configs(1);
  for (const Axis& axis : axes) {
    std::vector<std::vector<std::string>> next;
    for (const auto& c : configs)
      for (const std::string& v : axis.values) {
        next.push_back(c);
        next.back().push_back(v);
      }
    configs = next;
  }
  const std::string self = self_path();
  std::vector<Outcome> outcomes(configs.size());
  std::atomic<size_t> next_config{0};
  auto log = logger("tools");
  log->info("sweep: {} configurations, {} at a time", configs.size(), a.jobs);
  auto worker = [&] {
    for (size_t i = next_config++; i < configs.size(); i = next_config++) {
      std::vector<std::string> argv = {self, "--log-level", "warn", "simulate"};
      // The shared options, minus those the grid sets (to_args gives "--flag value" pairs and lone flags).
      const std::vector<std::string> base = to_args(a.sim);
      for (size_t k = 0; k < base.size(); ++k) {
        bool gridded = false;
        for (const Axis& axis : axes) gridded = gridded || grid_keys().at(axis.key) == base[k];
        const bool has_value = k + 1 < base.size() && base[k + 1].rfind("--", 0) != 0;
        if (gridded) {
          if (has_value) ++k;
          continue;
        }
        argv.push_back(base[k]);
      }
      for (size_t k = 0; k < axes.size(); ++k) {
        argv.push_back(grid_keys().at(axes[k].key));
        argv.push_back(configs[i][k]);
      }
      argv.push_back("--json");
      outcomes[i] = run_capture(argv);
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < a.jobs; ++j) threads.emplace_back(worker);
  for (auto& t : threads) t.join();

  // One table, one CSV, in grid order.
  std::ostringstream table, csv;
  std::string head;
  for (const Axis& axis : axes) {
    head += axis.key + std::string(axis.key.size() < 12 ? 12 - axis.key.size() : 1, ' ');
    csv << axis.key << ",";
  }
  csv << "balancer,imbalance,step_s,tokens_per_s,tflops_per_gpu,pct_of_ideal,speedup_vs_none,exposed_"
         "overhead_s,"
         "replicas,peak_activation_gib,redundant_slot_gib\n";
  table << head
        << "balancer        imbalance    step ms    tokens/s  TFLOPS/GPU  % ideal  vs none  overhead ms\n";
  int failures = 0;
  for (size_t i = 0; i < configs.size(); ++i) {
    std::string prefix, csv_prefix;
    for (size_t k = 0; k < axes.size(); ++k) {
      const std::string& v = configs[i][k];
      prefix += v + std::string(v.size() < 12 ? 12 - v.size() : 1, ' ');
      csv_prefix += v + ",";
    }
    nlohmann::json result;
    bool ok = outcomes[i].status == 0;
    if (ok) {
      try {
        result = nlohmann::json::parse(outcomes[i].output);
      } catch (const nlohmann::json::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      ++failures;
      table << prefix << "FAILED (exit " << outcomes[i].status << ", see the error above)\n";
      csv << csv_prefix << "FAILED,,,,,,,,,,\n";
      continue;
    }
    for (const auto& b : result["balancers"]) {
      char line[256];
      std::snprintf(line, sizeof(line), "%-15s %9.3f %10.3f %11.0f %11.1f %8.1f %7.3fx %12.3f",
                    b["name"].get<std::string>().c_str(), b["imbalance"].get<double>(),
                    b["step_s"].get<double>() * 1e3, b["tokens_per_s"].get<double>(),
                    b["tflops_per_gpu"].get<double>(), b["pct_of_ideal"].get<double>(),
                    b["speedup_vs_none"].get<double>(), b["exposed_overhead_s"].get<double>() * 1e3);
      table << prefix << line << "\n";
      csv << csv_prefix << b["name"].get<std::string>() << "," << num(b["imbalance"].get<double>(), "%.6f")
          << "," << num(b["step_s"].get<double>(), "%.9g") << ","
          << num(b["tokens_per_s"].get<double>(), "%.9g") << ","
          << num(b["tflops_per_gpu"].get<double>(), "%.6g") << ","
          << num(b["pct_of_ideal"].get<double>(), "%.4f") << ","
          << num(b["speedup_vs_none"].get<double>(), "%.6f") << ","
          << num(b["exposed_overhead_s"].get<double>(), "%.9g") << ","
          << num(b["replicas"].get<double>(), "%.4f") << ","
          << num(b["peak_activation_gib"].get<double>(), "%.6f") << ","
          << num(b["redundant_slot_gib"].get<double>(), "%.6f") << "\n";
    }
  }
  std::cout << table.str();
  if (!a.csv.empty()) {
    csv_file->write(csv.str());
    csv_file->commit();
    log->info("sweep: CSV written to {}", a.csv);
  }
  if (failures > 0) throw std::runtime_error(std::to_string(failures) + " sweep configuration(s) failed");
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep", "run `simulate` over a grid of options as separate processes and gather one table and a CSV");
  add_sim_options(*cmd, args->sim);
  cmd->add_option(
         "--grid", args->grid,
         "key=v1,v2,... (repeatable): domain, slots, ranks, imbalance, tokens-per-rank, microbatches, "
         "model, topology, trace, mode, fidelity, seed, precision, weight-sync, calibration")
      ->required();
  cmd->add_option("--jobs,-j", args->jobs, "configurations simulated at once")->capture_default_str();
  cmd->add_option("--csv", args->csv, "also write the results to this CSV file");
  cmd->add_flag("--force", args->force, "replace an existing --csv file");
  cmd->callback([args] { run_sweep(*args); });
}

}  // namespace rackep::tools
