// `rackep sweep`: what-if studies over a grid of experiment-config keys (for example --grid
// domain=8,36,72,144
// --grid slots=0,1,2,3,4). Every configuration is written as a config file and runs as its own `rackep
// simulate --config FILE --json` process (SimGrid has one engine per process; docs/DESIGN.md "Scaling out"),
// K at a time with --jobs K. Under `mpirun -np P` the configurations are dealt round-robin to the P processes
// (each running its share K at a time) and gathered on rank 0, which prints the same table and CSV as a local
// run.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "core/progress.hpp"
#include "report/html_report.hpp"
#include "sim/experiment_config.hpp"
#include "tools/commands.hpp"
#include "tools/config_cli.hpp"
#include "tools/logging.hpp"
#include "tools/mpi_job.hpp"

extern char** environ;

namespace rackep::tools {
namespace {

struct SweepArgs {
  ConfigCli cli;
  std::vector<std::string> grid;
  int jobs = 1;
  std::string csv;
  bool force = false;
  bool json = false;
  std::string report;
};

struct Axis {
  std::string name;  // as given (the table and CSV header)
  std::string key;   // the config key
  std::vector<std::string> values;
};

// key=v1,v2,... over any config key simulate reads (dashes accepted for underscores: tokens-per-rank).
std::vector<Axis> parse_grid(const std::vector<std::string>& specs) {
  std::vector<Axis> axes;
  for (const std::string& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos) throw InputError("--grid", spec, "expected key=v1,v2,...");
    Axis a;
    a.name = spec.substr(0, eq);
    a.key = a.name;
    for (char& ch : a.key)
      if (ch == '-') ch = '_';
    const config::FieldSpec& f = config::field(a.key, "--grid");
    if ((f.commands & config::kSimulate) == 0)
      throw InputError("--grid", a.name, "not an option of simulate");
    // Values are separated by commas, except for list keys (balancers), whose values are separated by ';'.
    std::stringstream ss(spec.substr(eq + 1));
    std::string v;
    while (std::getline(ss, v, f.type == config::FieldType::kList ? ';' : ','))
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
  if (pipe(fds) != 0) throw RuntimeError("pipe failed");
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
  if (n <= 0) throw RuntimeError("cannot locate the rackep executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

std::string num(double v, const char* f) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

// Runs configurations `mine` (indices into `files`) --jobs at a time; outcomes[i] for each.
void run_share(const std::vector<size_t>& mine, const std::vector<std::string>& files, int jobs,
               std::vector<Outcome>& outcomes) {
  const std::string self = self_path();
  std::atomic<size_t> next{0};
  Progress progress("sweep", static_cast<int64_t>(mine.size()), "configurations");
  std::mutex progress_mutex;
  auto worker = [&] {
    for (size_t k = next++; k < mine.size(); k = next++) {
      const size_t i = mine[k];
      outcomes[i] = run_capture({self, "--log-level", "warn", "simulate", "--config", files[i], "--json"});
      std::lock_guard<std::mutex> lock(progress_mutex);
      progress.add();
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  progress.finish();
}

std::string cell(const nlohmann::json& b, const char* key, const char* f) {
  return num(b[key].get<double>(), f);
}

void run_sweep(const SweepArgs& a) {
  if (a.jobs < 1 || a.jobs > 1024) throw InputError("--jobs", std::to_string(a.jobs), "must be in [1, 1024]");
  const config::ExperimentConfig base = resolve_config(a.cli, config::kSweep);
  sim::to_sim_config(base);  // validate the shared options once, before spawning anything
  const std::vector<Axis> axes = parse_grid(a.grid);
  std::vector<std::vector<std::string>> combos(1);
  for (const Axis& axis : axes) {
    std::vector<std::vector<std::string>> next;
    for (const auto& c : combos)
      for (const std::string& v : axis.values) {
        next.push_back(c);
        next.back().push_back(v);
      }
    combos = next;
  }
  // One config file per configuration; every value is checked here, before anything runs.
  const int launched = mpi_launcher_world_size();
  if (launched > 1 && RACKEP_TOOLS_MPI == 0)
    throw RuntimeError("sweep: started by an MPI launcher with " + std::to_string(launched) +
                       " processes, but rackep was built without MPI (install libopenmpi-dev, reconfigure "
                       "and rebuild), or run one process with --jobs K");
  int rank = 0, size = 1;
#if RACKEP_TOOLS_MPI
  std::unique_ptr<MpiJob> job;
  if (launched > 1) {
    job = std::make_unique<MpiJob>();
    rank = job->rank();
    size = job->size();
  }
#endif
  // Opened (an existing file refused) before the first run; renamed into place when complete. Process 0
  // writes the outputs for the job.
  std::unique_ptr<OutputFile> csv_file;
  if (!a.csv.empty() && rank == 0) csv_file = std::make_unique<OutputFile>(a.csv, "--csv", a.force);
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("rackep-sweep-" + std::to_string(getpid()) + "-" + std::to_string(rank));
  std::filesystem::create_directories(dir);
  std::vector<std::string> files;
  std::vector<size_t> mine;
  for (size_t i = 0; i < combos.size(); ++i) {
    config::ExperimentConfig c = base;
    for (size_t k = 0; k < axes.size(); ++k) config::set_field(c, axes[k].key, combos[i][k], "--grid");
    files.push_back((dir / ("config-" + std::to_string(i) + ".json")).string());
    if (static_cast<int>(i % static_cast<size_t>(size)) != rank) continue;
    mine.push_back(i);
    std::ofstream out(files.back());
    out << config::to_json(c, config::kSimulate).dump(2) << "\n";
    if (!out) throw RuntimeError("sweep: cannot write " + files.back());
  }
  auto log = logger("tools");
  if (rank == 0)
    log->info("sweep: {} configurations, {} at a time{}", combos.size(), a.jobs,
              size > 1 ? " in each of " + std::to_string(size) + " MPI processes" : "");
  std::vector<Outcome> outcomes(combos.size());
  run_share(mine, files, a.jobs, outcomes);
  std::filesystem::remove_all(dir);
#if RACKEP_TOOLS_MPI
  if (job) {
    nlohmann::json part = nlohmann::json::array();
    for (size_t i : mine)
      part.push_back({{"i", i}, {"status", outcomes[i].status}, {"output", outcomes[i].output}});
    const std::vector<std::string> all = job->gather(part.dump());
    if (rank != 0) return;  // rank 0 prints for the job
    for (const std::string& p : all)
      for (const auto& o : nlohmann::json::parse(p)) {
        Outcome& out = outcomes[o["i"].get<size_t>()];
        out.status = o["status"].get<int>();
        out.output = o["output"].get<std::string>();
      }
  }
#endif

  // One table, one CSV, in grid order.
  std::ostringstream table, csv;
  std::string head;
  for (const Axis& axis : axes) {
    head += axis.name + std::string(axis.name.size() < 12 ? 12 - axis.name.size() : 1, ' ');
    csv << axis.name << ",";
  }
  // The result columns; a failed or refused configuration fills all but its first and last with nothing.
  static constexpr int kResultColumns = 14;
  const std::string empties(kResultColumns - 2, ',');
  csv << "balancer,imbalance,step_s,tokens_per_s,tflops_per_gpu,pct_of_ideal,speedup_vs_none,exposed_"
         "overhead_s,replicas,peak_activation_gib,redundant_slot_gib,memory_gib,oom,refused\n";
  table << head
        << "balancer        imbalance    step ms    tokens/s  TFLOPS/GPU  % ideal  vs none  overhead ms  mem "
           "GiB\n";
  int failures = 0;
  // --json / --report: {"axes": [{"key", "values"}], "runs": [{"values", "ok", "result"}]} in grid order.
  nlohmann::json runs = nlohmann::json::array();
  for (size_t i = 0; i < combos.size(); ++i) {
    std::string prefix, csv_prefix;
    for (size_t k = 0; k < axes.size(); ++k) {
      const std::string& v = combos[i][k];
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
    nlohmann::json values = nlohmann::json::array();
    for (const std::string& v : combos[i]) values.push_back(v);
    runs.push_back({{"values", values}, {"ok", ok}});
    if (ok) runs.back()["result"] = result;
    if (!ok) {
      ++failures;
      table << prefix << "FAILED (exit " << outcomes[i].status << ", see the error above)\n";
      csv << csv_prefix << "FAILED" << empties << ",\n";
      continue;
    }
    for (const auto& b : result["balancers"]) {
      const std::string name = b["name"].get<std::string>();
      if (b.contains("refused")) {
        const std::string why = b["refused"].get<std::string>();
        char line[64];
        std::snprintf(line, sizeof(line), "%-15s ", name.c_str());
        table << prefix << line << "refused: " << why << "\n";
        std::string quoted;
        for (char ch : why) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        csv << csv_prefix << name << empties << ",\"" << quoted << "\"\n";
        continue;
      }
      char line[256], mem[32];
      const bool oom = b["oom"].get<bool>();
      std::snprintf(mem, sizeof(mem), oom ? "OOM %.0f" : "%.1f", b["memory_gib"].get<double>());
      std::snprintf(line, sizeof(line), "%-15s %9.3f %10.3f %11.0f %11.1f %8.1f %7.3fx %12.3f %8s",
                    name.c_str(), b["imbalance"].get<double>(), b["step_s"].get<double>() * 1e3,
                    b["tokens_per_s"].get<double>(), b["tflops_per_gpu"].get<double>(),
                    b["pct_of_ideal"].get<double>(), b["speedup_vs_none"].get<double>(),
                    b["exposed_overhead_s"].get<double>() * 1e3, mem);
      table << prefix << line << "\n";
      csv << csv_prefix << name << "," << cell(b, "imbalance", "%.6f") << "," << cell(b, "step_s", "%.9g")
          << "," << cell(b, "tokens_per_s", "%.9g") << "," << cell(b, "tflops_per_gpu", "%.6g") << ","
          << cell(b, "pct_of_ideal", "%.4f") << "," << cell(b, "speedup_vs_none", "%.6f") << ","
          << cell(b, "exposed_overhead_s", "%.9g") << "," << cell(b, "replicas", "%.4f") << ","
          << cell(b, "peak_activation_gib", "%.6f") << "," << cell(b, "redundant_slot_gib", "%.6f") << ","
          << cell(b, "memory_gib", "%.6f") << "," << (oom ? "true" : "false") << ",\n";
    }
  }
  nlohmann::json sweep_json = {{"axes", nlohmann::json::array()}, {"runs", std::move(runs)}};
  for (const Axis& axis : axes) sweep_json["axes"].push_back({{"key", axis.name}, {"values", axis.values}});
  if (a.json)
    std::cout << sweep_json.dump(2) << "\n";
  else
    std::cout << table.str();
  if (!a.report.empty()) {
    report::write_report(a.report, report::sweep_page(sweep_json), a.force);
    log->info("sweep: report written to {}", a.report);
  }
  if (!a.csv.empty()) {
    csv_file->write(csv.str());
    csv_file->commit();
    log->info("sweep: CSV written to {}", a.csv);
  }
  if (failures > 0) throw RuntimeError(std::to_string(failures) + " sweep configuration(s) failed");
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  CLI::App* cmd = app.add_subcommand(
      "sweep",
      "run `simulate` over a grid of config keys as separate processes (spread over the processes of "
      "mpirun -np P when started by it) and gather one table and a CSV");
  add_config_options(*cmd, config::kSweep, args->cli);
  cmd->add_option("--grid", args->grid,
                  "key=v1,v2,... (repeatable): any config key simulate reads, e.g. domain, slots, ranks, "
                  "tokens_per_rank, eplb.window (list keys such as balancers: values separated by ';')")
      ->required();
  cmd->add_option("--jobs,-j", args->jobs, "configurations simulated at once (per MPI process)")
      ->capture_default_str();
  cmd->add_option("--csv", args->csv, "also write the results to this CSV file");
  cmd->add_flag("--json", args->json,
                "print {axes, runs: [{values, ok, result: simulate JSON}]} instead of the table");
  cmd->add_option("--report", args->report, "write a self-contained HTML page with the sweep curves");
  cmd->add_flag("--force", args->force, "replace existing --csv / --report files");
  cmd->callback([args] { run_sweep(*args); });
}

}  // namespace rackep::tools
