// The Python module `rackep` (pybind11 + NumPy):
//   rackep.plan(loads, shape, balancer="ultraep", **options) -> dict of NumPy arrays
//       loads: int array [N, L] (one record) or [K, N, L] (K records planned in order by one balancer
//       instance, so history-based balancers see the earlier ones; returns a list of dicts). shape: {"slots":
//       R, "domain": G} (N and L come from loads; "ranks" and "masters" are checked when given) or a tuple
//       (N, M, R, G) as ClusterShape. options: ultraep (balance_threshold, eps, min_tokens_per_replica,
//       locality_aware, interleave), eplb_* (window, period, policy, groups, nodes), lplb_* (group,
//       directions, window, period), layer, microbatch.
//   rackep.read_trace(dir) -> iterator of {"layer", "microbatch", "loads": int32 [N, L]}; .manifest is a
//   dict. rackep.simulate(config: dict) -> the report dict of `rackep simulate --json` (keys: SimConfig's
//   fields).
// Bad input raises ValueError naming the field (InputError), other failures RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/balancer.hpp"
#include "core/error.hpp"
#include "core/metrics.hpp"
#include "lplb/lplb.hpp"
#include "sim/config_dict.hpp"
#include "sim/report.hpp"
#include "sim/simulator.hpp"
#include "traces/trace_reader.hpp"

namespace py = pybind11;

namespace {

using rackep::InputError;

template <typename T>
py::array_t<T> array_of(const std::vector<T>& v, std::vector<py::ssize_t> dims) {
  py::array_t<T> a(dims);
  std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return a;
}

nlohmann::json to_json(const py::handle& obj) {
  const std::string text = py::module_::import("json").attr("dumps")(obj).cast<std::string>();
  return nlohmann::json::parse(text);
}
py::object from_json(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

rackep::ClusterShape shape_from(const py::object& shape, int n, int l) {
  rackep::ClusterShape s;
  if (py::isinstance<py::tuple>(shape) || py::isinstance<py::list>(shape)) {
    const auto v = shape.cast<std::vector<int>>();
    if (v.size() != 4) throw InputError("shape", "tuple", "expected (ranks, masters, redundant, domain)");
    s = {v[0], v[1], v[2], v[3]};
  } else if (py::isinstance<py::dict>(shape)) {
    const py::dict d = shape.cast<py::dict>();
    for (const auto& kv : d) {
      const std::string k = kv.first.cast<std::string>();
      if (k != "ranks" && k != "masters" && k != "slots" && k != "redundant" && k != "domain")
        throw InputError("shape", k, "unknown key (known: ranks, masters, slots/redundant, domain)");
    }
    s.num_ranks = d.contains("ranks") ? d["ranks"].cast<int>() : n;
    s.num_masters = d.contains("masters") ? d["masters"].cast<int>() : (n > 0 ? l / n : 0);
    s.num_redundant = d.contains("slots")       ? d["slots"].cast<int>()
                      : d.contains("redundant") ? d["redundant"].cast<int>()
                                                : 2;
    s.domain_size = d.contains("domain") ? d["domain"].cast<int>() : s.num_ranks;
  } else {
    throw InputError("shape", "type", "expected a dict {slots, domain[, ranks, masters]} or a 4-tuple");
  }
  s.validate("shape");
  if (s.num_ranks != n || s.num_experts() != l)
    throw InputError("shape", "ranks",
                     "loads are [" + std::to_string(n) + ", " + std::to_string(l) + "] but the shape has " +
                         std::to_string(s.num_ranks) + " ranks x " + std::to_string(s.num_masters) +
                         " masters");
  return s;
}

rackep::BalancerOptions options_from(const py::kwargs& kw, int& layer, int64_t& microbatch) {
  rackep::BalancerOptions o;
  for (const auto& kv : kw) {
    const std::string k = kv.first.cast<std::string>();
    const py::handle v = kv.second;
    if (k == "layer")
      layer = v.cast<int>();
    else if (k == "microbatch")
      microbatch = v.cast<int64_t>();
    else if (k == "balance_threshold")
      o.ultraep.balance_threshold = v.cast<double>();
    else if (k == "eps")
      o.ultraep.eps = v.cast<double>();
    else if (k == "min_tokens_per_replica")
      o.ultraep.min_tokens_per_replica = v.cast<int64_t>();
    else if (k == "allow_zero_master_quota")
      o.ultraep.allow_zero_master_quota = v.cast<bool>();
    else if (k == "locality_aware")
      o.ultraep.locality_aware = v.cast<bool>();
    else if (k == "interleave")
      o.ultraep.interleave = v.cast<bool>();
    else if (k == "eplb_window")
      o.eplb.window = v.cast<int>();
    else if (k == "eplb_period")
      o.eplb.period = v.cast<int>();
    else if (k == "eplb_groups")
      o.eplb.num_groups = v.cast<int>();
    else if (k == "eplb_nodes")
      o.eplb.num_nodes = v.cast<int>();
    else if (k == "eplb_policy") {
      const std::string p = v.cast<std::string>();
      if (p == "auto")
        o.eplb.policy = rackep::EplbPolicy::kAuto;
      else if (p == "hierarchical")
        o.eplb.policy = rackep::EplbPolicy::kHierarchical;
      else if (p == "global")
        o.eplb.policy = rackep::EplbPolicy::kGlobal;
      else
        throw InputError("options", k, "expected auto, hierarchical or global, got '" + p + "'");
    } else if (k == "lplb_group")
      o.lplb.group_size = v.cast<int>();
    else if (k == "lplb_directions")
      o.lplb.directions = v.cast<int>();
    else if (k == "lplb_window")
      o.lplb.window = v.cast<int>();
    else if (k == "lplb_period")
      o.lplb.period = v.cast<int>();
    else
      throw InputError("options", k, "unknown option");
  }
  return o;
}

py::dict plan_to_dict(const rackep::LoadMatrix& loads, const rackep::PlanResult& r) {
  const rackep::Plan& p = r.plan;
  const int n = p.shape.num_ranks, l = p.num_experts();
  const rackep::PlanMetrics m = rackep::measure_plan(loads, r);
  py::dict d;
  d["p2l"] = array_of(p.p2l, {n, p.shape.slots_per_rank()});
  d["l2p"] = array_of(p.l2p, {l, n});
  d["lcnt"] = array_of(p.lcnt, {l});
  d["quota"] = array_of(p.quota, {l, n});
  d["has_quota"] = p.has_quota;
  d["domain_threshold"] = array_of(p.domain_threshold, {static_cast<py::ssize_t>(p.domain_threshold.size())});
  d["alloc_offset"] = array_of(r.alloc.offset, {static_cast<py::ssize_t>(r.alloc.offset.size())});
  d["alloc_tokens"] = array_of(r.alloc.tokens, {n, r.alloc.num_instances()});
  d["rank_loads"] = array_of(rackep::rank_loads_after(p, r.alloc), {n});
  d["imbalance_before"] = m.imbalance_before;
  d["imbalance_after"] = m.imbalance_after;
  d["replicas"] = m.total_replicas;
  d["max_instances"] = m.max_instances;
  return d;
}

rackep::LoadMatrix matrix_of(const py::array_t<int32_t, py::array::c_style | py::array::forcecast>& a,
                             size_t k) {
  const int n = static_cast<int>(a.shape(a.ndim() - 2)), l = static_cast<int>(a.shape(a.ndim() - 1));
  const int32_t* base = a.data() + k * static_cast<size_t>(n) * l;
  rackep::LoadMatrix m(n, l, std::vector<int32_t>(base, base + static_cast<size_t>(n) * l));
  m.validate("loads");
  return m;
}

py::object plan(const py::array& loads_in, const py::object& shape, const std::string& balancer,
                const py::kwargs& kw) {
  const auto loads = py::array_t<int32_t, py::array::c_style | py::array::forcecast>::ensure(loads_in);
  if (!loads || (loads.ndim() != 2 && loads.ndim() != 3))
    throw InputError("loads", "shape", "expected an integer array [N, L] or [K, N, L]");
  int layer = 0;
  int64_t microbatch = 0;
  const rackep::BalancerOptions options = options_from(kw, layer, microbatch);
  const int n = static_cast<int>(loads.shape(loads.ndim() - 2)),
            l = static_cast<int>(loads.shape(loads.ndim() - 1));
  const rackep::ClusterShape s = shape_from(shape, n, l);
  auto b = rackep::make_balancer(balancer, s, options);
  if (loads.ndim() == 2) {
    const rackep::LoadMatrix m = matrix_of(loads, 0);
    return plan_to_dict(m, b->plan(m, {layer, microbatch}));
  }
  py::list out;
  for (py::ssize_t k = 0; k < loads.shape(0); ++k) {
    const rackep::LoadMatrix m = matrix_of(loads, static_cast<size_t>(k));
    out.append(plan_to_dict(m, b->plan(m, {layer, microbatch + k})));
  }
  return out;
}

class TraceIterator {
 public:
  explicit TraceIterator(const std::string& dir) : reader_(std::make_unique<rackep::TraceReader>(dir)) {}
  py::dict manifest() const {
    const rackep::TraceManifest& m = reader_->manifest();
    py::dict d;
    d["model"] = m.model;
    d["num_ranks"] = m.num_ranks;
    d["num_experts"] = m.num_experts;
    d["top_k"] = m.top_k;
    d["tokens_per_rank"] = m.tokens_per_rank;
    d["layers"] = m.layers;
    d["num_records"] = m.num_records;
    return d;
  }
  py::dict next() {
    rackep::TraceRecord r;
    if (!reader_->next(r)) throw py::stop_iteration();
    py::dict d;
    d["layer"] = r.layer;
    d["microbatch"] = r.microbatch;
    d["loads"] = array_of(r.loads.values(), {r.loads.num_ranks(), r.loads.num_experts()});
    return d;
  }

 private:
  std::unique_ptr<rackep::TraceReader> reader_;
};

// One SimGrid engine per process: every simulation runs in a forked child that sends back its JSON report
// (or its error) through a pipe, so rackep.simulate can be called any number of times.
py::object simulate(const py::dict& config) {
  const rackep::sim::SimConfig c = rackep::sim::sim_config_from_json(to_json(config), "config");
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    nlohmann::json out;
    try {
      out = {{"report", rackep::sim::report_to_json(rackep::sim::run_simulation(c))}};
    } catch (const InputError& e) {
      out = {{"input_error", e.what()}};
    } catch (const std::exception& e) {
      out = {{"error", e.what()}};
    }
    const std::string text = out.dump();
    size_t off = 0;
    while (off < text.size()) {
      const ssize_t w = write(fds[1], text.data() + off, text.size() - off);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[65536];
  {
    py::gil_scoped_release release;
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(r));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  nlohmann::json out;
  try {
    out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw std::runtime_error("simulate: the simulation process ended without a report");
  }
  if (out.contains("input_error")) throw py::value_error(out["input_error"].get<std::string>());
  if (out.contains("error")) throw std::runtime_error(out["error"].get<std::string>());
  return from_json(out["report"]);
}

}  // namespace

PYBIND11_MODULE(rackep, m) {
  m.doc() = "rackep: expert-parallel MoE load balancing (planners, traces, rack simulator)";
  rackep::register_lplb_balancer();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  m.def("plan", &plan, py::arg("loads"), py::arg("shape"), py::arg("balancer") = "ultraep",
        "Plan one record [N, L] (or K records [K, N, L] in order) with a balancer; returns the plan as "
        "arrays.");
  m.def("balancers", &rackep::balancer_names, "Names accepted by plan().");
  py::class_<TraceIterator>(m, "TraceIterator")
      .def_property_readonly("manifest", &TraceIterator::manifest)
      .def(
          "__iter__", [](TraceIterator& it) -> TraceIterator& { return it; },
          py::return_value_policy::reference_internal)
      .def("__next__", &TraceIterator::next);
  m.def(
      "read_trace", [](const std::string& dir) { return TraceIterator(dir); }, py::arg("dir"),
      "Iterate a canonical trace directory: dicts {layer, microbatch, loads: int32 [N, L]}.");
  m.def("simulate", &simulate, py::arg("config"),
        "Run one simulation (keys: SimConfig's fields, e.g. model, topology, trace, balancers, ranks); "
        "returns the report dict of `rackep simulate --json`.");
}
