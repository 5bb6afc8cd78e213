#include "report/html_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/error.hpp"
#include "core/output_file.hpp"
#include "report/svg.hpp"

namespace rackep::report {
namespace {

using nlohmann::json;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Defensive readers: a missing or non-numeric key gives the fallback.
double get_num(const json& j, const std::string& key, double fallback = kNaN) {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}
// "a.b" paths into nested objects.
double get_path(const json& j, const std::string& path, double fallback = kNaN) {
  const size_t dot = path.find('.');
  if (dot == std::string::npos) return get_num(j, path, fallback);
  if (!j.is_object() || !j.contains(path.substr(0, dot))) return fallback;
  return get_path(j.at(path.substr(0, dot)), path.substr(dot + 1), fallback);
}
std::string get_str(const json& j, const std::string& key, const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  return it->is_string() ? it->get<std::string>() : it->dump();
}
const json& balancers_of(const json& j) {
  static const json empty = json::array();
  return j.is_object() && j.contains("balancers") && j["balancers"].is_array() ? j["balancers"] : empty;
}

std::string page(const std::string& title, const std::string& subtitle, const json& facts,
                 const std::vector<std::pair<std::string, std::string>>& sections) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\"><head><meta "
       "charset=\"utf-8\"/>"
    << "<title>" << esc(title) << "</title><style>"
    << "body{font-family:sans-serif;margin:24px;color:#222;max-width:900px}"
    << "h1{font-size:22px;margin-bottom:4px}h2{font-size:16px;margin:22px 0 6px}"
    << "p.sub{color:#555;margin-top:0}table.facts{border-collapse:collapse;font-size:13px}"
    << "table.facts td{padding:2px 10px 2px 0;vertical-align:top}table.facts td.k{color:#666}"
    << ".lbl{font-size:12px}.ttl{font-size:13px;font-weight:bold}.tick{font-size:10px;fill:#555}"
    << ".val{font-size:10px;fill:#333}.ax{stroke:#888}.grid{stroke:#e4e4e4}"
    << "</style></head><body><h1>" << esc(title) << "</h1><p class=\"sub\">" << esc(subtitle) << "</p>";
  if (facts.is_object() && !facts.empty()) {
    o << "<table class=\"facts\">";
    for (const auto& [k, v] : facts.items())
      o << "<tr><td class=\"k\">" << esc(k) << "</td><td>"
        << esc(v.is_string() ? v.get<std::string>() : v.dump()) << "</td></tr>";
    o << "</table>";
  }
  for (const auto& [heading, body] : sections)
    if (!body.empty()) o << "<section><h2>" << esc(heading) << "</h2>" << body << "</section>";
  o << "<p class=\"sub\">Written by rackep. Numbers are those of the command's --json "
       "output.</p></body></html>\n";
  return o.str();
}

// Per-record arrays laid out as rows = layers (in first-seen order), columns = microbatches.
struct Grid {
  std::vector<int> layers;
  std::vector<long long> microbatches;
  std::vector<size_t> row, col;  // per record
};
Grid grid_of(const json& records) {
  Grid g;
  if (!records.is_object() || !records.contains("layer") || !records.contains("microbatch")) return g;
  const json& ls = records["layer"];
  const json& ms = records["microbatch"];
  if (!ls.is_array() || !ms.is_array() || ls.size() != ms.size()) return g;
  for (size_t i = 0; i < ls.size(); ++i) {
    const int l = ls[i].get<int>();
    const long long m = ms[i].get<long long>();
    auto li = std::find(g.layers.begin(), g.layers.end(), l);
    if (li == g.layers.end()) li = g.layers.insert(g.layers.end(), l);
    auto mi = std::find(g.microbatches.begin(), g.microbatches.end(), m);
    if (mi == g.microbatches.end()) mi = g.microbatches.insert(g.microbatches.end(), m);
    g.row.push_back(static_cast<size_t>(li - g.layers.begin()));
    g.col.push_back(static_cast<size_t>(mi - g.microbatches.begin()));
  }
  return g;
}
std::vector<std::vector<double>> grid_values(const Grid& g, const json& values) {
  std::vector<std::vector<double>> out(g.layers.size(), std::vector<double>(g.microbatches.size(), kNaN));
  if (!values.is_array()) return out;
  for (size_t i = 0; i < g.row.size() && i < values.size(); ++i)
    if (values[i].is_number()) out[g.row[i]][g.col[i]] = values[i].get<double>();
  return out;
}

// Heatmaps (before, after per balancer) and replicas per layer, from {"records": {"layer", "microbatch"}} and
// balancers[].per_record.{imbalance_before, imbalance_after, replicas}.
std::vector<std::pair<std::string, std::string>> per_record_sections(const json& j) {
  std::vector<std::pair<std::string, std::string>> out;
  const Grid g = grid_of(j.is_object() && j.contains("records") ? j["records"] : json());
  if (g.row.empty()) return out;
  const json& bs = balancers_of(j);
  double hi = 1.0;
  for (const json& b : bs)
    if (b.contains("per_record") && b["per_record"].contains("imbalance_before"))
      for (const json& v : b["per_record"]["imbalance_before"])
        if (v.is_number()) hi = std::max(hi, v.get<double>());
  std::vector<std::string> layer_names;
  for (int l : g.layers) layer_names.push_back(std::to_string(l));
  std::string maps;
  for (const json& b : bs) {
    if (!b.contains("per_record") || !b["per_record"].contains("imbalance_before")) continue;
    maps += heatmap("heatmap-before", "before balancing (masters only): max/mean tokens per rank", "layer",
                    layer_names, "microbatch", grid_values(g, b["per_record"]["imbalance_before"]), 1.0, hi);
    break;
  }
  for (const json& b : bs)
    if (b.contains("per_record") && b["per_record"].contains("imbalance_after"))
      maps +=
          heatmap("heatmap-after-" + get_str(b, "name"), get_str(b, "name") + ": after balancing", "layer",
                  layer_names, "microbatch", grid_values(g, b["per_record"]["imbalance_after"]), 1.0, hi);
  out.emplace_back("Imbalance per layer and microbatch (same colour scale)", maps);
  std::vector<Curve> curves;
  std::vector<std::string> ticks;
  for (int l : g.layers) ticks.push_back(std::to_string(l));
  if (ticks.size() > 30) {
    const size_t every = (ticks.size() + 29) / 30;
    for (size_t i = 0; i < ticks.size(); ++i)
      if (i % every) ticks[i].clear();
  }
  for (const json& b : bs) {
    if (!b.contains("per_record") || !b["per_record"].contains("replicas")) continue;
    const auto grid = grid_values(g, b["per_record"]["replicas"]);
    Curve c{get_str(b, "name"), {}, {}};
    for (size_t r = 0; r < grid.size(); ++r) {
      double sum = 0;
      int n = 0;
      for (double v : grid[r])
        if (std::isfinite(v)) sum += v, ++n;
      c.x.push_back(static_cast<double>(r));
      c.y.push_back(n ? sum / n : kNaN);
    }
    curves.push_back(std::move(c));
  }
  if (!curves.empty())
    out.emplace_back(
        "Replicas per layer",
        line_chart("replicas-per-layer", "replicas (instances beyond one per expert), mean over microbatches",
                   "layer id", "replicas", ticks, curves));
  return out;
}

}  // namespace

void TimelineExcerpt::begin(const std::string& name) {
  runs_.push_back(PerBalancer{name, {}, {}});
}

void TimelineExcerpt::on_event(const sim::TimelineEvent& e) {
  if (runs_.empty()) begin("");
  PerBalancer& r = runs_.back();
  const int lane = e.lane == 0 ? 0 : 1;
  r.busy[lane][e.rank] += e.end_s - e.start_s;
  if (e.microbatch == 0)
    r.first_microbatch.push_back({e.rank, lane, e.layer, e.name ? e.name : "", e.start_s, e.end_s});
}

json TimelineExcerpt::to_json() const {
  json bs = json::array();
  for (const PerBalancer& r : runs_) {
    int busiest = 0;
    double most = -1;
    for (const auto& [rank, s] : r.busy[0])
      if (s > most) most = s, busiest = rank;
    std::vector<const Event*> mine;
    for (const Event& e : r.first_microbatch)
      if (e.rank == busiest) mine.push_back(&e);
    std::stable_sort(mine.begin(), mine.end(),
                     [](const Event* a, const Event* b) { return a->start_s < b->start_s; });
    // The excerpt: the first kExcerptLayers decoder layers of the first microbatch (the same stretch of the
    // step for every balancer), at most max_events_ events.
    constexpr size_t kExcerptLayers = 4;
    std::vector<int> layers_seen;
    size_t keep = 0;
    for (; keep < mine.size() && keep < max_events_; ++keep) {
      const int layer = mine[keep]->layer;
      if (layer < 0 || std::find(layers_seen.begin(), layers_seen.end(), layer) != layers_seen.end())
        continue;
      if (layers_seen.size() == kExcerptLayers) break;
      layers_seen.push_back(layer);
    }
    mine.resize(keep);
    json events = json::array();
    for (const Event* e : mine)
      events.push_back({{"lane", e->lane},
                        {"name", e->name},
                        {"start_s", e->start_s},
                        {"end_s", e->end_s},
                        {"layer", e->layer}});
    const auto comm = r.busy[1].find(busiest);
    bs.push_back({{"name", r.name},
                  {"busiest_rank", busiest},
                  {"compute_busy_s", std::max(0.0, most)},
                  {"comm_busy_s", comm == r.busy[1].end() ? 0.0 : comm->second},
                  {"events", std::move(events)}});
  }
  return {{"balancers", std::move(bs)}};
}

std::string plan_page(const json& plan) {
  const json& bs = balancers_of(plan);
  std::vector<std::string> names;
  BarSeries mean{"imbalance_after.mean", "after, mean", {}}, p99{"imbalance_after.p99", "after, p99", {}};
  BarSeries reps{"replicas.mean", "replicas per plan, mean", {}};
  for (const json& b : bs) {
    names.push_back(get_str(b, "name"));
    mean.values.push_back(get_path(b, "imbalance_after.mean", 0));
    p99.values.push_back(get_path(b, "imbalance_after.p99", 0));
    reps.values.push_back(get_path(b, "replicas.mean", 0));
  }
  json facts = json::object();
  if (plan.contains("trace")) {
    facts["trace"] = get_str(plan["trace"], "model");
    facts["records"] = get_str(plan["trace"], "records");
  }
  if (plan.contains("shape"))
    for (const char* k : {"ranks", "experts", "redundant_slots_per_rank", "domain_size"})
      facts[k] = get_str(plan["shape"], k);
  facts["imbalance before (mean)"] = bs.empty() ? "" : fmt(get_path(bs[0], "imbalance_before.mean", 0), 3);
  std::vector<std::pair<std::string, std::string>> sections = {
      {"Balance per balancer (max/mean tokens per rank after balancing; 1 = perfect)",
       bar_chart("balancer-imbalance", "imbalance after balancing", "max/mean", names, {mean, p99}, false)},
      {"Replicas", bar_chart("balancer-replicas", "replicas per plan", "replicas", names, {reps}, false)}};
  for (auto& s : per_record_sections(plan)) sections.push_back(std::move(s));
  return page("rackep plan", "balancers planned on every record of the trace", facts, sections);
}

std::string simulate_page(const json& sim, const json& timeline) {
  const json& bs = balancers_of(sim);
  const json& tl =
      timeline.is_object() && timeline.contains("balancers") ? timeline["balancers"] : json::array();
  std::vector<std::string> names;
  BarSeries pct{"pct_of_ideal", "% of ideal", {}};
  BarSeries compute{"compute_s", "compute", {}}, comm{"communication_s", "communication and waiting", {}},
      over{"exposed_overhead_s", "exposed balancing overhead", {}};
  for (const json& b : bs) {
    const std::string name = get_str(b, "name");
    names.push_back(name);
    pct.values.push_back(get_num(b, "pct_of_ideal", 0));
    const double step_ms = get_num(b, "step_s", 0) * 1e3;
    const double over_ms = get_num(b, "exposed_overhead_s", 0) * 1e3;
    // Compute time: the simulator's per-rank compute-busy time per step when the JSON has it, else the
    // busiest rank's compute-stream busy time scaled from the whole replay (total_s) to one step (step_s).
    double compute_ms = std::min(get_num(b, "compute_busy_s") * 1e3, std::max(0.0, step_ms - over_ms));
    if (!std::isfinite(compute_ms)) {
      compute_ms = 0;
      for (const json& t : tl)
        if (get_str(t, "name") == name && get_num(b, "total_s", 0) > 0)
          compute_ms = get_num(t, "compute_busy_s", 0) / get_num(b, "total_s") * step_ms;
      compute_ms = std::clamp(compute_ms, 0.0, std::max(0.0, step_ms - over_ms));
    }
    double comm_ms = get_num(b, "communication_s") * 1e3;
    if (!std::isfinite(comm_ms)) comm_ms = std::max(0.0, step_ms - compute_ms - over_ms);
    compute.values.push_back(compute_ms);
    comm.values.push_back(comm_ms);
    over.values.push_back(over_ms);
  }
  json facts = json::object();
  if (sim.contains("inputs"))
    for (const char* k : {"model", "mode", "topology", "gpu", "ep_ranks", "experts", "domain_size",
                          "trace_description", "microbatches", "moe_layers", "tokens_per_rank", "fidelity"})
      if (sim["inputs"].contains(k)) facts[k] = get_str(sim["inputs"], k);
  std::vector<std::pair<std::string, std::string>> sections = {
      {"Throughput as a share of the force-balanced ideal",
       bar_chart("pct-of-ideal", "% of ideal", "%", names, {pct}, false)},
      {"Step time split",
       bar_chart("step-split", "step time: compute, communication and waiting, exposed balancing overhead",
                 "ms", names, {compute, comm, over}, true)}};
  for (auto& s : per_record_sections(sim)) sections.push_back(std::move(s));
  std::vector<Track> tracks;
  for (const json& t : tl) {
    Track tr{get_str(t, "name") + " r" + get_str(t, "busiest_rank"), {}};
    if (t.contains("events"))
      for (const json& e : t["events"])
        tr.spans.push_back({static_cast<int>(get_num(e, "lane", 0)), get_str(e, "name"),
                            get_num(e, "start_s", 0), get_num(e, "end_s", 0),
                            static_cast<int>(get_num(e, "layer", -1))});
    tracks.push_back(std::move(tr));
  }
  if (!tracks.empty())
    sections.emplace_back(
        "Timeline excerpt of the busiest rank (first microbatch, compute and communication streams)",
        timeline_chart("timeline", "busiest rank per balancer", tracks));
  return page("rackep simulate", "balancers compared on a simulated rack", facts, sections);
}

std::string sweep_page(const json& sweep) {
  const json& axes = sweep.contains("axes") ? sweep["axes"] : json::array();
  const json& runs = sweep.contains("runs") ? sweep["runs"] : json::array();
  std::vector<std::pair<std::string, std::string>> sections;
  if (axes.empty()) return page("rackep sweep", "no grid", json::object(), sections);
  const std::string key = get_str(axes[0], "key");
  std::vector<std::string> xs;
  for (const json& v : axes[0]["values"]) xs.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  // Numeric x axis when every value is a number, else the values' positions.
  std::vector<double> xpos;
  bool numeric = true;
  for (const std::string& s : xs) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    numeric = numeric && end && *end == '\0' && !s.empty();
    xpos.push_back(v);
  }
  if (!numeric)
    for (size_t i = 0; i < xpos.size(); ++i) xpos[i] = static_cast<double>(i);
  // One curve per (balancer, values of the other axes).
  for (const auto& [metric, label, scale] : std::vector<std::tuple<std::string, std::string, double>>{
           {"pct_of_ideal", "% of ideal", 1.0}, {"step_s", "step ms", 1e3}}) {
    std::vector<Curve> curves;
    for (const json& run : runs) {
      if (!run.value("ok", false) || !run.contains("values")) continue;
      const json& vals = run["values"];
      std::string rest;
      for (size_t k = 1; k < vals.size() && k < axes.size(); ++k)
        rest += " " + get_str(axes[k], "key") + "=" +
                (vals[k].is_string() ? vals[k].get<std::string>() : vals[k].dump());
      const std::string xv = vals[0].is_string() ? vals[0].get<std::string>() : vals[0].dump();
      const size_t xi = static_cast<size_t>(std::find(xs.begin(), xs.end(), xv) - xs.begin());
      if (xi >= xs.size()) continue;
      const json result = run.contains("result") ? run["result"] : json();
      for (const json& b : balancers_of(result)) {
        const std::string label_b = get_str(b, "name") + rest;
        auto it =
            std::find_if(curves.begin(), curves.end(), [&](const Curve& c) { return c.label == label_b; });
        if (it == curves.end()) it = curves.insert(curves.end(), Curve{label_b, {}, {}});
        it->x.push_back(xpos[xi]);
        it->y.push_back(get_num(b, metric) * scale);
      }
    }
    for (Curve& c : curves) {  // points in x order
      std::vector<size_t> idx(c.x.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return c.x[a] < c.x[b]; });
      Curve s{c.label, {}, {}};
      for (size_t i : idx) s.x.push_back(c.x[i]), s.y.push_back(c.y[i]);
      c = std::move(s);
    }
    std::vector<std::string> ticks = xs;
    if (numeric) {  // ticks at the sorted numeric positions of the first curve
      ticks.clear();
      if (!curves.empty())
        for (double x : curves[0].x)
          ticks.push_back(xs[static_cast<size_t>(std::find(xpos.begin(), xpos.end(), x) - xpos.begin())]);
    }
    sections.emplace_back(label + " against " + key, line_chart("sweep-" + metric, label + " against " + key,
                                                                key, label, ticks, curves));
  }
  json facts = json::object();
  for (const json& a : axes) {
    std::string vs;
    for (const json& v : a["values"])
      vs += (vs.empty() ? "" : ", ") + (v.is_string() ? v.get<std::string>() : v.dump());
    facts["grid " + get_str(a, "key")] = vs;
  }
  int failed = 0;
  for (const json& run : runs) failed += run.value("ok", false) ? 0 : 1;
  facts["configurations"] =
      std::to_string(runs.size()) + (failed ? " (" + std::to_string(failed) + " failed)" : "");
  return page("rackep sweep", "what-if grid, one simulation per configuration", facts, sections);
}

void write_report(const std::string& path, const std::string& html, bool force) {
  OutputFile out(path, "--report", force);
  out.write(html);
  out.commit();
}

}  // namespace rackep::report
